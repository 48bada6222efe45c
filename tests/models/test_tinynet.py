"""TinyNet A-E: official parity, timm checkpoints, published sizes, any input size (the model surface:
tests/test_model_contract.py)."""

from __future__ import annotations

import pytest
import timm
import torch

import ghostzoo
from ghostzoo.profile import profile_model
from ghostzoo.registry import IMAGENET_MEAN, IMAGENET_STD

from golden import check_golden, load_golden
from reference import small_variants_first, timm_checkpoint

# native resolution int(224 * r) of the official eval.py
NATIVE = {"tinynet_a": 192, "tinynet_b": 188, "tinynet_c": 184, "tinynet_d": 152, "tinynet_e": 106}
NAMES = list(NATIVE)


@pytest.mark.parametrize("name", small_variants_first(NAMES))
def test_matches_official_logits_at_native_resolution(name, tmp_path):
    assert load_golden(name)["input"]["shape"][2:] == [NATIVE[name]] * 2
    check_golden(name, tmp_path)


@pytest.mark.parametrize("name", small_variants_first(NAMES))
def test_published_flops(name):
    # the model's params and MACs equal the official ones: test_model_contract.py, test_profile.py
    cfg = ghostzoo.get_pretrained_cfg(name)
    # the readme's FLOPs count convolutions and the classifier only
    conv_linear = profile_model(ghostzoo.create_model(name), cfg.input_size).conv_linear_macs
    assert conv_linear == pytest.approx(cfg.published.macs, rel=0.02)


@pytest.mark.parametrize("name", small_variants_first(NAMES))
def test_eval_cfg_and_release_match_timm(name):
    cfg = ghostzoo.get_pretrained_cfg(name)
    ref = timm.models.get_pretrained_cfg(f"{name}.in1k")
    assert cfg.input_size == ref.input_size == (3, NATIVE[name], NATIVE[name])
    assert (cfg.crop_pct, cfg.interpolation) == (ref.crop_pct, ref.interpolation) == (0.875, "bicubic")
    assert cfg.mean == IMAGENET_MEAN == tuple(ref.mean) and cfg.std == IMAGENET_STD == tuple(ref.std)
    release = "https://github.com/huawei-noah/CV-Backbones/releases/download/v1.2.0"
    assert cfg.url == ref.url == f"{release}/{name}.pth"
    assert cfg.hf_hub_id == f"timm/{name}.in1k"


@pytest.mark.parametrize("name", ["tinynet_b"])
def test_timm_checkpoint_gives_identical_logits(name, tmp_path):
    reference, path = timm_checkpoint(name, tmp_path)
    model = ghostzoo.create_model(name, checkpoint_path=path).eval()
    x = torch.randn(2, 3, NATIVE[name], NATIVE[name])
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


@pytest.mark.parametrize("size", [(640, 640), (97, 131), (320, 480)])
def test_runs_at_other_resolutions(size):
    """Detection uses TinyNet at 640; odd and non-square sizes work as well."""
    model = ghostzoo.create_model("tinynet_e").eval()
    backbone = ghostzoo.create_model("tinynet_e", features_only=True, out_indices=(2, 3, 4)).eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        y = model(x)
        maps = backbone(x)
    assert y.shape == (1, 1000) and torch.isfinite(y).all()
    assert [m.shape[-2:] for m in maps] == [(-(-size[0] // r), -(-size[1] // r)) for r in (8, 16, 32)]


def test_feature_info():
    model = ghostzoo.create_model("tinynet_a")
    assert [(f["num_chs"], f["reduction"]) for f in model.feature_info] == [
        (16, 2),
        (24, 4),
        (40, 8),
        (112, 16),
        (320, 32),
    ]
