"""Evaluation preprocessing and class names."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision import transforms as T

import ghostzoo
from ghostzoo.data import create_transform, imagenet_class_names, imagenet_wnids, read_image

from conftest import DATA_DIR, require


def _official_pipeline() -> T.Compose:
    """What the official GhostNet validate.py (and the model-zoo docs) prescribe."""
    return T.Compose(
        [
            T.Resize(256),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )


def _sample_images() -> list:
    imagenet = sorted(require(DATA_DIR / "imagenet-val-sample" / "images").glob("*.JPEG"))[:6]
    pets = sorted(require(DATA_DIR / "oxford-pets-sample" / "images").glob("*.jpg"))[:6]
    return imagenet + pets  # 227x227 squares and pets of assorted aspect ratios


def test_default_cfg_equals_torchvision_pipeline_exactly():
    ours = create_transform(ghostzoo.get_pretrained_cfg("ghostnet_100"))
    official = _official_pipeline()
    images = _sample_images()
    sizes = set()
    for path in images:
        img = read_image(path)
        sizes.add(img.size)
        a, b = ours(img), official(img)
        assert a.shape == (3, 224, 224) and a.dtype == torch.float32
        assert torch.equal(a, b), path.name
    assert len(sizes) > 2  # the check covered differently shaped photos


def test_cfg_drives_size_crop_interpolation_and_normalisation():
    cfg = dict(input_size=(3, 160, 160), crop_pct=0.9, interpolation="bicubic", mean=(0.5,) * 3, std=(0.5,) * 3)
    ours = create_transform(cfg)
    reference = T.Compose(
        [
            T.Resize(177, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(160),
            T.ToTensor(),
            T.Normalize([0.5] * 3, [0.5] * 3),
        ]
    )
    img = read_image(_sample_images()[-1])
    assert torch.equal(ours(img), reference(img))
    with pytest.raises(ValueError, match="unknown interpolation"):
        create_transform({**cfg, "interpolation": "lanczos9"})


def test_grayscale_and_rgba_images_become_rgb(tmp_path):
    Image.new("L", (50, 40), 128).save(tmp_path / "gray.png")
    Image.new("RGBA", (40, 50), (10, 20, 30, 0)).save(tmp_path / "rgba.png")
    t = create_transform(ghostzoo.get_pretrained_cfg("ghostnet_100"))
    assert t(read_image(tmp_path / "gray.png")).shape == (3, 224, 224)
    assert t(read_image(tmp_path / "rgba.png")).shape == (3, 224, 224)


def test_unreadable_image_raises_image_error(tmp_path):
    (tmp_path / "fake.jpg").write_text("not really a jpeg")
    with pytest.raises(ghostzoo.ImageError, match="cannot read image .*fake.jpg: not an image"):
        read_image(tmp_path / "fake.jpg")
    good = _sample_images()[0].read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 3])
    with pytest.raises(ghostzoo.ImageError, match="cut.jpg"):
        read_image(tmp_path / "cut.jpg")


def test_imagenet_class_names_follow_the_ilsvrc_index_order():
    names, wnids = imagenet_class_names(), imagenet_wnids()
    assert len(names) == len(wnids) == 1000
    synsets = (require(DATA_DIR / "imagenet-val-sample" / "synset_words.txt")).read_text().splitlines()
    assert wnids == [line.split()[0] for line in synsets]
    for name, line in zip(names, synsets):  # our short name is one of the synset's names
        assert name.split()[0].lower() in line.lower()
    assert names[207] == "golden retriever" and wnids[207] == "n02099601"
