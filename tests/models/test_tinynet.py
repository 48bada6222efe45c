"""TinyNet A-E: official parity, timm checkpoints, sizes, any input size, and the model surface."""

from __future__ import annotations

import pytest
import timm
import torch
from fvcore.nn import FlopCountAnalysis

import ghostzoo
from ghostzoo.profile import profile_model
from ghostzoo.registry import IMAGENET_MEAN, IMAGENET_STD

from golden import check_golden, load_golden
from reference import randomize_batchnorm

# native resolution int(224 * r) of the official eval.py
NATIVE = {"tinynet_a": 192, "tinynet_b": 188, "tinynet_c": 184, "tinynet_d": 152, "tinynet_e": 106}
NAMES = list(NATIVE)


@pytest.mark.parametrize("name", NAMES)
def test_matches_official_logits_at_native_resolution(name, tmp_path):
    assert load_golden(name)["input"]["shape"][2:] == [NATIVE[name]] * 2
    check_golden(name, tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_sizes_match_official_and_published(name):
    model = ghostzoo.create_model(name).eval()
    golden = load_golden(name)
    cfg = ghostzoo.get_pretrained_cfg(name)
    assert ghostzoo.count_params(model) == golden["params"] == cfg.published.params
    x = torch.zeros(1, *cfg.input_size)
    macs = FlopCountAnalysis(model, x).total()
    assert macs == golden["macs_batch1"]["value"]  # fvcore's count of the official model
    # the readme's FLOPs count convolutions and the classifier only
    conv_linear = profile_model(model, cfg.input_size).conv_linear_macs
    assert conv_linear == pytest.approx(cfg.published.macs, rel=0.02)


@pytest.mark.parametrize("name", NAMES)
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
    torch.manual_seed(0)
    reference = timm.create_model(name).eval()
    randomize_batchnorm(reference)
    path = tmp_path / f"timm_{name}.pth"
    torch.save(reference.state_dict(), path)
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


def test_forward_features_head_and_pre_logits():
    model = ghostzoo.create_model("tinynet_c").eval()
    x = torch.randn(2, 3, 184, 184)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 1280, 6, 6)
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (2, 1280)
        torch.testing.assert_close(model.forward_head(feats), model(x))
        torch.testing.assert_close(model.classifier(pre), model(x))


def test_reset_classifier_and_arguments():
    model = ghostzoo.create_model("tinynet_d", num_classes=10, drop_rate=0.3).eval()
    assert model.classifier.out_features == 10 and model.drop_rate == 0.3
    model.reset_classifier(37)
    assert model.num_classes == 37 and model(torch.randn(1, 3, 96, 96)).shape == (1, 37)
    model.reset_classifier(0)
    assert model(torch.randn(1, 3, 96, 96)).shape == (1, 1280)


def test_feature_info_and_features_only(tmp_path):
    model = ghostzoo.create_model("tinynet_a").eval()
    info = model.feature_info
    assert [f["reduction"] for f in info] == [2, 4, 8, 16, 32]
    assert [f["num_chs"] for f in info] == [16, 24, 40, 112, 320]
    torch.save(model.state_dict(), tmp_path / "w.pth")
    backbone = ghostzoo.create_model("tinynet_a", checkpoint_path=tmp_path / "w.pth",
                                     features_only=True).eval()
    x = torch.randn(1, 3, 192, 192)
    with torch.no_grad():
        maps = backbone(x)
        last = model.blocks(model.bn1(model.conv_stem(x)))
    assert [m.shape[1] for m in maps] == [f["num_chs"] for f in info]
    assert [192 // m.shape[-1] for m in maps] == [2, 4, 8, 16, 32]
    torch.testing.assert_close(maps[-1], last)
