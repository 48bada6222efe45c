"""Wave-MLP: official parity, published sizes, eval cfgs and the common surface."""

from __future__ import annotations

import pytest
import torch

import ghostzoo
from ghostzoo.profile import profile_model

from golden import check_golden, load_golden

NAMES = ["wavemlp_t_dw", "wavemlp_t", "wavemlp_s", "wavemlp_m", "wavemlp_b"]
# official wavemlp_pytorch/README.md: params (M), FLOPs (G), top-1; Wave-MLP-B is not in the table
README = {"wavemlp_t_dw": (15, 2.1, 80.1), "wavemlp_t": (17, 2.4, 80.9), "wavemlp_s": (30, 4.5, 82.9),
          "wavemlp_m": (44, 7.9, 83.3)}


@pytest.mark.parametrize("name", NAMES)
def test_matches_official_logits(name, tmp_path):
    check_golden(name, tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_sizes_match_official_and_published(name):
    model = ghostzoo.create_model(name)
    golden, cfg = load_golden(name), ghostzoo.get_pretrained_cfg(name)
    prof = profile_model(model)
    assert prof.params == golden["params"] == cfg.published.params
    assert prof.macs == golden["macs_batch1"]["value"]  # GroupNorm counted as fvcore does (S/M/B)
    if name in README:
        params_m, gmacs, top1 = README[name]
        assert int(prof.params / 1e6) == params_m  # the readme truncates to whole millions
        assert prof.macs / 1e9 == pytest.approx(gmacs, rel=0.05) and cfg.published.macs == pytest.approx(gmacs * 1e9)
        assert cfg.published.top1 == top1 and cfg.has_weights
    else:
        assert not cfg.has_weights


def test_eval_cfgs():
    for name in NAMES:
        cfg = ghostzoo.get_pretrained_cfg(name)
        assert cfg.interpolation == "bicubic" and cfg.mean == (0.485, 0.456, 0.406)
        assert cfg.crop_pct == (0.875 if name == "wavemlp_b" else 0.9)  # official default_cfgs
    assert ghostzoo.get_pretrained_cfg("wavemlp_t_dw").url.endswith("/releases/download/wavemlp/WaveMLP_T_dw.pth.tar")


@pytest.mark.parametrize("size", [(64, 64), (96, 160), (256, 256)])
def test_other_input_sizes(size):
    model = ghostzoo.create_model("wavemlp_t").eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, *size))
    assert y.shape == (1, 1000) and torch.isfinite(y).all()


def test_batch_1_equals_batch_row():
    model = ghostzoo.create_model("wavemlp_s").eval()  # GroupNorm: per-sample statistics
    x = torch.randn(3, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(x[1:2]), model(x)[1:2], rtol=1e-4, atol=1e-5)


def test_forward_features_head_pre_logits_and_reset_classifier():
    model = ghostzoo.create_model("wavemlp_t", num_classes=10, drop_rate=0.2).eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 512, 4, 4)
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (2, 512)
        torch.testing.assert_close(model.head(pre), model(x))
    assert model.head.out_features == 10 and model.drop_rate == 0.2
    model.reset_classifier(37)
    assert model.num_classes == 37 and model(x[:1]).shape == (1, 37)
    model.reset_classifier(0)
    assert model(x[:1]).shape == (1, 512)


def test_features_only(tmp_path):
    model = ghostzoo.create_model("wavemlp_s").eval()
    path = tmp_path / "w.pth"
    torch.save(model.state_dict(), path)
    backbone = ghostzoo.create_model("wavemlp_s", checkpoint_path=path, features_only=True).eval()
    assert [f["reduction"] for f in backbone.feature_info] == [4, 8, 16, 32]
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        maps = backbone(x)
        torch.testing.assert_close(model.norm(maps[-1]), model.forward_features(x))
    assert [m.shape[1] for m in maps] == [64, 128, 320, 512]
    assert [tuple(m.shape[-2:]) for m in maps] == [(24, 32), (12, 16), (6, 8), (3, 4)]
    shallow = ghostzoo.create_model("wavemlp_s", features_only=True, out_indices=(0,))
    assert ghostzoo.count_params(shallow) < 0.05 * ghostzoo.count_params(model)
