"""Dataset layouts on the real folders in ../shared/data, and bad images inside them."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

import ghostzoo
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
