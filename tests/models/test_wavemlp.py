"""Wave-MLP: official parity, published sizes, eval cfgs, other input sizes (the model surface:
tests/test_model_contract.py)."""

from __future__ import annotations

import pytest
import torch

import ghostzoo
from ghostzoo.profile import profile_model

from golden import check_golden
from reference import small_variants_first

NAMES = ["wavemlp_t_dw", "wavemlp_t", "wavemlp_s", "wavemlp_m", "wavemlp_b"]
# official wavemlp_pytorch/README.md: params (M), FLOPs (G), top-1; Wave-MLP-B is not in the table
README = {
    "wavemlp_t_dw": (15, 2.1, 80.1),
    "wavemlp_t": (17, 2.4, 80.9),
    "wavemlp_s": (30, 4.5, 82.9),
    "wavemlp_m": (44, 7.9, 83.3),
}


@pytest.mark.parametrize("name", small_variants_first(NAMES))
def test_matches_official_logits(name, tmp_path):
    check_golden(name, tmp_path)


@pytest.mark.parametrize("name", small_variants_first(NAMES))
def test_published_numbers(name):
    # the model's params and MACs equal the official ones (GroupNorm counted as fvcore does, S/M/B):
    # test_model_contract.py, test_profile.py
    cfg = ghostzoo.get_pretrained_cfg(name)
    if name not in README:
        assert not cfg.has_weights
        return
    prof = profile_model(ghostzoo.create_model(name))
    params_m, gmacs, top1 = README[name]
    assert int(prof.params / 1e6) == params_m  # the readme truncates to whole millions
    assert prof.macs / 1e9 == pytest.approx(gmacs, rel=0.05) and cfg.published.macs == pytest.approx(gmacs * 1e9)
    assert cfg.published.top1 == top1 and cfg.has_weights


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


def test_feature_info_and_shallow_features_only():
    model = ghostzoo.create_model("wavemlp_s")
    assert [(f["num_chs"], f["reduction"]) for f in model.feature_info] == [(64, 4), (128, 8), (320, 16), (512, 32)]
    shallow = ghostzoo.create_model("wavemlp_s", features_only=True, out_indices=(0,))
    assert ghostzoo.count_params(shallow) < 0.05 * ghostzoo.count_params(model)
