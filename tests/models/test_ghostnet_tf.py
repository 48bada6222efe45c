"""The authors' TensorFlow GhostNet: the real V2 bundle, read without TensorFlow, gives the official TF
graph's logits (../shared/golden/tf), with and without the graph's own BGR preprocessing."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from timm.layers.padding import pad_same as timm_pad_same

import ghostzoo
from ghostzoo.cli import main
from ghostzoo.layers.same_pad import SamePad2d

from conftest import GOLDEN_DIR, require

TF = GOLDEN_DIR / "tf"
INDEX = TF / "ghostnet_tf_100.index"


@pytest.fixture(scope="module")
def golden():
    require(INDEX)
    if str(TF) not in sys.path:
        sys.path.insert(0, str(TF))
    import tf_golden

    return tf_golden, json.loads((TF / "ghostnet_tf_100.json").read_text())


@pytest.fixture(scope="module")
def model(golden):
    return ghostzoo.create_model("tf_ghostnet_100", checkpoint_path=str(INDEX)).eval()


def _relative(y: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(y - ref).max() / np.abs(ref).max())


def test_the_released_bundle_format_gives_the_official_logits(golden, model):
    """(tests/test_formats.py checks that the reader gives back the arrays TensorFlow wrote.)"""
    tg, g = golden
    # the golden input is already preprocessed, in BGR order: this model takes RGB
    x = torch.from_numpy(tg.make_input(g)).permute(0, 3, 1, 2).flip(1)
    with torch.no_grad():
        assert _relative(model(x).numpy(), tg.logits(g)) <= 1e-4


def test_rgb_photos_normalised_as_usual_give_the_tf_graphs_logits(golden, model):
    """The whole TF graph (BGR pixels, its own normalisation) equals the model on the same pixels in RGB
    with the cfg's transform numbers: predict needs nothing special for these weights."""
    tg, g = golden
    cfg = model.pretrained_cfg
    rgb = torch.from_numpy(tg.make_pixels(g)).permute(0, 3, 1, 2).flip(1) / 255
    x = (rgb - torch.tensor(cfg.mean).view(1, 3, 1, 1)) / torch.tensor(cfg.std).view(1, 3, 1, 1)
    with torch.no_grad():
        assert _relative(model(x).numpy(), tg.logits(g, "output_with_preprocess")) <= 1e-4
    assert (cfg.interpolation, cfg.crop_pct) == ("bicubic", 0.875)  # shortest edge 256, center crop 224


@pytest.mark.parametrize("size", [7, 8, 15, 16])
@pytest.mark.parametrize("kernel", [3, 5])
def test_same_padding_is_tensorflows(size, kernel):
    """Odd and even sizes (the golden covers the even ones of 224 px): the same padding as timm's port
    of TF's SAME rule, and TF's output size, ceil(size / 2)."""
    x = torch.randn(1, 2, size, size, generator=torch.Generator().manual_seed(0))
    padded = SamePad2d(kernel, 2)(x)
    torch.testing.assert_close(padded, timm_pad_same(x, [kernel, kernel], [2, 2]), rtol=0, atol=0)
    assert F.conv2d(padded, torch.ones(1, 2, kernel, kernel), stride=2).shape[-1] == -(-size // 2)


def test_cli_predicts_from_the_index_file(golden, tmp_path, imagenet_val_images):
    out = tmp_path / "p.json"
    argv = ["predict", "tf_ghostnet_100", str(imagenet_val_images[0]), "--checkpoint", str(INDEX)]
    assert main([*argv, "--output", str(out), "--backend", "eager"]) == 0
    assert len(json.loads(out.read_text())["predictions"]) == 1
