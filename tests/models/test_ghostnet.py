"""GhostNet v1: official parity, timm parity, published sizes, any input size, features_only with
out_indices (the model surface: tests/test_model_contract.py)."""

from __future__ import annotations

import pytest
import torch

import ghostzoo
from ghostzoo.profile import profile_model

from golden import check_golden
from reference import small_variants_first, timm_checkpoint

WIDTHS = ["ghostnet_050", "ghostnet_100", "ghostnet_130"]
OFFICIAL_PARAMS = {"ghostnet_050": 2_587_292, "ghostnet_100": 5_182_508, "ghostnet_130": 7_358_820}


@pytest.mark.parametrize("name", small_variants_first(WIDTHS))
def test_matches_official_logits(name, tmp_path):
    check_golden(name, tmp_path)


@pytest.mark.parametrize("name", small_variants_first(WIDTHS))
def test_published_numbers(name):
    # the model's params and MACs equal the official ones: test_model_contract.py, test_profile.py
    cfg = ghostzoo.get_pretrained_cfg(name)
    assert cfg.published.params == OFFICIAL_PARAMS[name]
    # the paper's FLOP column counts convolutions and the classifier only
    assert profile_model(ghostzoo.create_model(name)).conv_linear_macs == pytest.approx(cfg.published.macs, rel=0.02)


def test_timm_weights_give_identical_logits(tmp_path):
    # timm initialises BN to identity; the checkpoint's running stats get real values so they matter
    reference, path = timm_checkpoint("ghostnet_100", tmp_path)
    model = ghostzoo.create_model("ghostnet_100", checkpoint_path=path).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


@pytest.mark.parametrize("size", [32, 33, 47, 64, 97, 160, 224, 320])
def test_any_input_size_from_32_at_batch_1(size):
    model = ghostzoo.create_model("ghostnet_050").eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, size, size))
    assert y.shape == (1, 1000) and torch.isfinite(y).all()


def test_non_square_input_and_batch_1_equals_batch_row():
    model = ghostzoo.create_model("ghostnet_100").eval()
    x = torch.randn(3, 3, 96, 160)
    with torch.no_grad():
        full = model(x)
        single = model(x[1:2])
    torch.testing.assert_close(single, full[1:2], rtol=1e-4, atol=1e-5)


def test_features_only_out_indices_and_pruning(tmp_path):
    model = ghostzoo.create_model("ghostnet_100").eval()
    assert [(f["num_chs"], f["reduction"]) for f in model.feature_info] == [
        (16, 2),
        (24, 4),
        (40, 8),
        (112, 16),
        (960, 32),
    ]
    path = tmp_path / "w.pth"
    torch.save(model.state_dict(), path)
    backbone = ghostzoo.create_model(
        "ghostnet_100", checkpoint_path=path, features_only=True, out_indices=(2, 3, 4)
    ).eval()
    assert [f["reduction"] for f in backbone.feature_info] == [8, 16, 32]
    x = torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        maps = backbone(x)
        torch.testing.assert_close(maps[-1], model.forward_features(x))
    assert [m.shape[-2:] for m in maps] == [(16, 20), (8, 10), (4, 5)]
    shallow = ghostzoo.create_model("ghostnet_100", features_only=True, out_indices=(0, 1))
    # everything after the stride-4 tap is gone: far fewer parameters than the classifier model
    assert ghostzoo.count_params(shallow) < 10_000
    with pytest.raises(ghostzoo.GhostzooError, match="out of range"):
        ghostzoo.create_model("ghostnet_100", features_only=True, out_indices=(5,))
