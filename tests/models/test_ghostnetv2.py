"""GhostNetV2: official parity, release and timm checkpoints, DFC attention on any input size (the
model surface: tests/test_model_contract.py)."""

from __future__ import annotations

import pytest
import torch

import ghostzoo
from ghostzoo.cli import main
from ghostzoo.profile import profile_model

from golden import check_golden, golden_weights_module, load_golden, relative_error
from reference import small_variants_first, timm_checkpoint

WIDTHS = ["ghostnetv2_100", "ghostnetv2_130", "ghostnetv2_160"]
OFFICIAL_PARAMS = {"ghostnetv2_100": 6_156_908, "ghostnetv2_130": 8_960_404, "ghostnetv2_160": 12_392_698}


@pytest.fixture(scope="module")
def timm_and_ours(tmp_path_factory):
    """timm's GhostNetV2 1.0x (BN given real statistics) and ours loaded from its state_dict."""
    reference, path = timm_checkpoint("ghostnetv2_100", tmp_path_factory.mktemp("timm"))
    return reference, ghostzoo.create_model("ghostnetv2_100", checkpoint_path=path).eval()


@pytest.mark.parametrize("name", small_variants_first(WIDTHS))
def test_matches_official_logits(name, tmp_path):
    check_golden(name, tmp_path)


@pytest.mark.parametrize("name", small_variants_first(WIDTHS))
def test_published_numbers(name):
    # the model's params and MACs equal the official ones: test_model_contract.py, test_profile.py
    cfg = ghostzoo.get_pretrained_cfg(name)
    assert cfg.published.params == OFFICIAL_PARAMS[name]
    prof = profile_model(ghostzoo.create_model(name))
    assert prof.conv_linear_macs == pytest.approx(cfg.published.macs, rel=0.01)  # the paper's FLOPs


def test_release_checkpoint_wrapper_loads(tmp_path):
    """The release files (ck_ghostnetv2_*.pth.tar) hold {'state_dict': ...}."""
    g = load_golden("ghostnetv2_100")
    gw = golden_weights_module()
    path = tmp_path / "ck_ghostnetv2_10.pth.tar"
    torch.save({"epoch": 450, "state_dict": gw.state_dict_from_golden(g)}, path)
    model = ghostzoo.create_model("ghostnetv2_100", checkpoint_path=path).eval()
    with torch.no_grad():
        y = model(gw.input_from_golden(g))
    assert relative_error(y, torch.tensor(g["output"]["logits"])) <= 1e-4
    cfg = ghostzoo.get_pretrained_cfg("ghostnetv2_100")
    assert cfg.url.endswith("/releases/download/GhostNetV2/ck_ghostnetv2_10.pth.tar")
    assert cfg.hf_hub_id == "timm/ghostnetv2_100.in1k"


def test_timm_weights_give_identical_logits(timm_and_ours):
    reference, model = timm_and_ours
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


def test_dfc_follows_odd_and_non_square_sizes(timm_and_ours):
    """At 97x75 the stride-8..32 maps have odd sides (13x10, 7x5, 4x3): pool floors, upsample
    goes back to the exact size, as in timm / the official code."""
    reference, model = timm_and_ours
    x = torch.randn(1, 3, 97, 75)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


@pytest.mark.parametrize("size", [32, 33, 47, 63])
def test_any_input_size_from_32_at_batch_1(size, timm_and_ours):
    """At 32 px the stride-32 maps are 1 pixel wide, where the official (and timm's) DFC pooling fails."""
    _, model = timm_and_ours
    x = torch.randn(3, 3, size, size + 5)
    with torch.no_grad():
        full = model(x)
        single = model(x[1:2])
    assert single.shape == (1, 1000) and torch.isfinite(single).all()
    torch.testing.assert_close(single, full[1:2], rtol=1e-4, atol=1e-5)


def test_feature_info(timm_and_ours):
    _, model = timm_and_ours
    assert [(f["num_chs"], f["reduction"]) for f in model.feature_info] == [
        (16, 2),
        (24, 4),
        (40, 8),
        (112, 16),
        (960, 32),
    ]


def test_cli_lists_and_profiles(capsys):
    assert main(["list", "ghost*"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in WIDTHS)
    assert main(["profile", "ghostnetv2_100"]) == 0
    out = capsys.readouterr().out
    assert "6,156,908 params" in out and "0.1781 GMACs" in out
