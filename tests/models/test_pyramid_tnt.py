"""PyramidTNT: official parity, other resolutions (position-embedding and attention-bias resampling),
the published numbers, stage features (the model surface: tests/test_model_contract.py)."""

from __future__ import annotations

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from timm.layers import resample_abs_pos_embed

import ghostzoo
from ghostzoo.layers import resize_rel_pos_bias
from ghostzoo.profile import profile_model

from golden import check_golden, load_golden
from reference import randomize_batchnorm, small_variants_first

NATIVE = {"ptnt_ti_patch16_192": 192, "ptnt_s_patch16_256": 256, "ptnt_m_patch16_256": 256, "ptnt_b_patch16_256": 256}
NAMES = list(NATIVE)
# official tnt_pytorch/readme.md: Params (M), FLOPs (B), Top-1
README = {
    "ptnt_ti_patch16_192": (10.6, 0.6, 75.2),
    "ptnt_s_patch16_256": (32.0, 3.3, 82.0),
    "ptnt_m_patch16_256": (85.0, 8.2, 83.5),
    "ptnt_b_patch16_256": (157.0, 16.0, 84.1),
}


@pytest.fixture(scope="module")
def ti_checkpoint(tmp_path_factory):
    """Random PyramidTNT-Ti weights at 192 whose BatchNorm statistics are not the identity."""
    torch.manual_seed(0)
    model = ghostzoo.create_model("ptnt_ti_patch16_192").eval()
    randomize_batchnorm(model)
    path = tmp_path_factory.mktemp("ptnt") / "ptnt_ti_192.pth"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.mark.parametrize("name", small_variants_first(NAMES))
def test_matches_official_logits(name, tmp_path):
    assert load_golden(name)["input"]["shape"][2:] == [NATIVE[name]] * 2
    check_golden(name, tmp_path)


@pytest.mark.parametrize("name", small_variants_first(NAMES))
def test_cfg_matches_official_and_published(name):
    cfg = ghostzoo.get_pretrained_cfg(name)
    params = cfg.published.params  # = the model's count: the contract test
    assert params == load_golden(name)["params"]
    readme_params, readme_gflops, readme_top1 = README[name]
    assert params / 1e6 == pytest.approx(readme_params, rel=0.01)  # the readme rounds loosely (84.94 -> 85.0)
    assert cfg.published.macs == pytest.approx(readme_gflops * 1e9) and cfg.published.top1 == readme_top1
    assert cfg.input_size == (3, NATIVE[name], NATIVE[name])
    assert (cfg.crop_pct, cfg.interpolation, cfg.mean, cfg.std) == (0.9, "bicubic", (0.5,) * 3, (0.5,) * 3)


def test_macs_match_official_and_published():
    model = ghostzoo.create_model("ptnt_ti_patch16_192").eval()
    x = torch.zeros(1, 3, 192, 192)
    macs = FlopCountAnalysis(model, x).total()
    assert macs == load_golden("ptnt_ti_patch16_192")["macs_batch1"]["value"]
    conv_linear = profile_model(model, (3, 192, 192)).conv_linear_macs
    assert conv_linear == pytest.approx(README["ptnt_ti_patch16_192"][1] * 1e9, abs=0.05e9)


@pytest.mark.parametrize("size", [224, 160])
def test_checkpoint_from_another_size_equals_forward_time_resampling(size, ti_checkpoint):
    """At ``size`` != 192 (224: odd grid 7 at stage 3; 160: grids 20-10-5-3), a model built at
    ``size`` from the 192 checkpoint equals the 192 model fed ``size`` images."""
    model_192, path = ti_checkpoint
    model = ghostzoo.create_model("ptnt_ti_patch16_192", img_size=size, checkpoint_path=path).eval()
    grid = size // 8
    assert model.outer_pos.shape == (1, grid * grid, 80)
    assert model.stages[0].relative_pos.shape == (1, 2, grid * grid, (grid // 4) ** 2)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        y = model(x)
        torch.testing.assert_close(model_192(x), y, rtol=1e-5, atol=1e-5)
    assert y.shape == (2, 1000) and torch.isfinite(y).all()
    assert (y[0] - y[1]).abs().max() > 1e-2 * y.abs().max()  # the input still matters


def test_inputs_not_multiple_of_8_and_batch_1_equals_batch_row(ti_checkpoint):
    model, _ = ti_checkpoint
    x = torch.randn(2, 3, 203, 171)
    with torch.no_grad():
        full = model(x)
        single = model(x[1:2])
    assert full.shape == (2, 1000) and torch.isfinite(full).all()
    torch.testing.assert_close(single, full[1:2], rtol=1e-4, atol=1e-5)


def test_rel_pos_bias_resampling_keeps_query_and_key_axes_apart():
    """A bias that varies with the query position only (or the key position only) must be resampled
    as that grid's position embedding, on non-square grids, and stay constant along the other."""
    torch.manual_seed(0)
    heads, old_q, new_q, old_k, new_k = 3, (6, 8), (9, 5), (3, 4), (4, 2)
    per_query = torch.randn(1, heads, old_q[0] * old_q[1], 1)
    per_key = torch.randn(1, heads, 1, old_k[0] * old_k[1])

    def reference(values, old, new):  # [heads, N] on the grid `old` -> [heads, N']
        return resample_abs_pos_embed(values.T[None], list(new), list(old), num_prefix_tokens=0)[0].T

    out = resize_rel_pos_bias(per_query.expand(-1, -1, -1, 12), old_q, new_q, old_k, new_k)
    assert out.shape == (1, heads, 45, 8)
    expected = reference(per_query[0, :, :, 0], old_q, new_q)
    torch.testing.assert_close(out, expected[None, :, :, None].expand_as(out))
    out = resize_rel_pos_bias(per_key.expand(-1, -1, 48, -1), old_q, new_q, old_k, new_k)
    expected = reference(per_key[0, :, 0], old_k, new_k)
    torch.testing.assert_close(out, expected[None, :, None].expand_as(out))


def test_feature_info_and_shallow_features_only(ti_checkpoint):
    model, _ = ti_checkpoint
    info = model.feature_info
    assert [(f["num_chs"], f["reduction"]) for f in info] == [(80, 8), (160, 16), (320, 32), (320, 64)]
    shallow = ghostzoo.create_model("ptnt_ti_patch16_192", features_only=True, out_indices=(0, 1))
    assert len(shallow.model.stages) == 2 and len(shallow.model.word_merges) == 1
    assert [f["reduction"] for f in shallow.feature_info] == [8, 16]
