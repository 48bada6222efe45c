"""Dataset layouts on the real folders in ../shared/data, and bad images inside them."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

import ghostzoo
from ghostzoo.cli import main
from ghostzoo.data import build_dataset, imagenet_target_map, imagenet_wnids

from conftest import DATA_DIR, require


def test_imagefolder_with_split_folders():
    root = require(DATA_DIR / "imagenette-160")
    val = build_dataset(root, "val")
    assert val.layout == "imagefolder" and len(val) == 3925 and len(val.classes) == 10
    assert imagenet_target_map(val.classes) == [imagenet_wnids().index(c) for c in val.classes]
    with pytest.raises(ghostzoo.GhostzooError, match="has no 'test' split folder"):
        build_dataset(root, "test")


def test_ilsvrc_val_layout_reads_ground_truth():
    root = require(DATA_DIR / "imagenet-val-sample")
    ds = build_dataset(root, "val")
    lines = (root / "val.txt").read_text().split()
    assert ds.layout == "ilsvrc-val" and len(ds) == 200 == len(lines) // 2
    assert (ds.samples[0][0].name, ds.samples[0][1]) == (lines[0], int(lines[1]))


def test_oxford_pet_layout_stratified_split_without_official_lists():
    root = require(DATA_DIR / "oxford-pets-sample")
    train, test = build_dataset(root, "train"), build_dataset(root, "test")
    assert train.layout == test.layout == "oxford-pet"
    assert len(train.classes) == 37 and train.classes[0] == "Abyssinian"
    assert len(train) + len(test) == 370 and not {p for p, _ in train.samples} & {p for p, _ in test.samples}
    assert set(Counter(test.targets).values()) == {2}  # 20% of each breed's 10 images
    assert build_dataset(root, "test").samples == test.samples  # deterministic


def test_oxford_pet_official_split_files_win(tmp_path):
    root = require(DATA_DIR / "oxford-pets-sample")
    (tmp_path / "annotations").mkdir()
    shutil.copy(root / "annotations" / "list.txt", tmp_path / "annotations" / "list.txt")
    (tmp_path / "images").symlink_to(root / "images")
    (tmp_path / "annotations" / "test.txt").write_text("Abyssinian_101 1 1 1\n")
    test = build_dataset(tmp_path, "test")
    assert [(p.name, t) for p, t in test.samples] == [("Abyssinian_101.jpg", 0)]


def test_bad_dataset_arguments(tmp_path):
    with pytest.raises(ghostzoo.GhostzooError, match="dataset folder not found"):
        build_dataset(tmp_path / "nope")
    with pytest.raises(ghostzoo.GhostzooError, match="no images found"):
        build_dataset(tmp_path)
    with pytest.raises(ghostzoo.GhostzooError, match="labels file not found"):
        build_dataset(tmp_path, labels=tmp_path / "val.txt")


def _pet_subset(tmp_path, class_ids):
    """An Oxford-IIIT Pet folder holding only the breeds ``class_ids`` of the sample (ids with gaps)."""
    root = require(DATA_DIR / "oxford-pets-sample")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "images").symlink_to(root / "images")
    lines = [
        line
        for line in (root / "annotations" / "list.txt").read_text().splitlines()
        if line and not line.startswith("#") and int(line.split()[1]) in class_ids
    ]
    (tmp_path / "annotations" / "list.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_oxford_pet_subset_of_breeds_with_gaps_in_class_ids(tmp_path):
    root = _pet_subset(tmp_path, {1, 2, 6})
    train, test = build_dataset(root, "train"), build_dataset(root, "test")
    assert train.classes == test.classes == ["Abyssinian", "american bulldog", "Bengal"]
    assert sorted(set(train.targets)) == [0, 1, 2] and len(train) + len(test) == 30
    assert all(p.name.rsplit("_", 1)[0].replace("_", " ") == train.classes[t] for p, t in train.samples)


def test_oxford_pet_malformed_lines_name_file_and_line(tmp_path, capsys):
    root = _pet_subset(tmp_path, {1, 2})
    list_txt = root / "annotations" / "list.txt"
    list_txt.write_text(list_txt.read_text() + "Bengal_1 six 2 1\n")
    with pytest.raises(ghostzoo.GhostzooError, match=rf"{list_txt}:21: expected '<image> <class id>"):
        build_dataset(root, "train")
    assert main(["validate", "ghostnet_100.imagenette", "--data", str(root), "--split", "test"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"ghostzoo validate: error: {list_txt}:21: expected '<image> <class id> <species> <breed id>', "
        "got 'Bengal_1 six 2 1'"
    ]
    list_txt.write_text("Abyssinian_100 1 1 1\n")
    (root / "annotations" / "test.txt").write_text("Abyssinian_100 1 1 1\nBengal_1 6 1 1\n")
    with pytest.raises(ghostzoo.GhostzooError, match=r"test.txt:2: 'Bengal_1' is not in .*list.txt"):
        build_dataset(root, "test")


def test_ilsvrc_labels_outside_imagenet_are_refused_at_read(tmp_path):
    root = require(DATA_DIR / "imagenet-val-sample")
    labels = tmp_path / "val.txt"
    first = (root / "val.txt").read_text().splitlines()[0].split()[0]
    for bad in ("1000", "-3"):
        labels.write_text(f"{first} {bad}\n")
        with pytest.raises(ghostzoo.GhostzooError, match=rf"val.txt:1: class index {bad} is outside ImageNet's 0..999"):
            build_dataset(root, labels=labels)
