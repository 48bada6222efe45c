"""G-Ghost RegNet: official parity for all twelve sizes, released checkpoints, stage kinds, odd input
sizes (the model surface: tests/test_model_contract.py)."""

from __future__ import annotations

import pytest
import torch

import ghostzoo
from ghostzoo.cli import main
from ghostzoo.models.g_ghost_regnet import GGhostStage
from ghostzoo.profile import profile_model

from golden import check_golden, load_golden
from reference import small_variants_first

SIZES = ["002", "004", "006", "008", "016", "032", "040", "064", "080", "120", "160", "320"]
NAMES = [f"g_ghost_regnetx_{s}" for s in SIZES]
# official g_ghost_pytorch/readme.md: file, params, FLOPs, top-1
RELEASED = {
    "g_ghost_regnetx_032": ("g_ghost_regnet_3.2g_77.8.pth", 10.5e6, 1.8e9, 77.8),
    "g_ghost_regnetx_040": ("g_ghost_regnet_4.0g_78.6.pth", 15.7e6, 2.2e9, 78.6),
    "g_ghost_regnetx_080": ("g_ghost_regnet_8.0g_79.0.pth", 24.6e6, 4.2e9, 79.0),
    "g_ghost_regnetx_160": ("g_ghost_regnet_16.0g_79.9.pth", 32.4e6, 9.0e9, 79.9),
}


def test_all_twelve_sizes_are_registered():
    assert ghostzoo.list_models("g_ghost_regnetx_*") == NAMES


@pytest.mark.parametrize("name", small_variants_first(NAMES))
def test_matches_official_logits(name, tmp_path):
    check_golden(name, tmp_path)


def test_published_params_are_the_official_counts():
    # strict loading in test_matches_official_logits already proves every key and shape
    assert [ghostzoo.get_pretrained_cfg(n).published.params for n in NAMES] == [load_golden(n)["params"] for n in NAMES]


@pytest.mark.parametrize("name", ["g_ghost_regnetx_002", "g_ghost_regnetx_032"])
def test_params_and_macs_match_official(name):
    """002 has a plain second stage and G-Ghost third and fourth; 032 the reverse at the end."""
    prof = profile_model(ghostzoo.create_model(name))
    assert prof.params == load_golden(name)["params"]
    assert prof.macs == load_golden(name)["macs_batch1"]["value"]


def test_released_checkpoints_and_published_numbers():
    assert ghostzoo.list_models("g_ghost*", pretrained=True) == sorted(RELEASED)
    for name, (file, params, flops, top1) in RELEASED.items():
        cfg = ghostzoo.get_pretrained_cfg(name)
        assert cfg.tag == "in1k"
        assert (
            cfg.url == f"https://github.com/huawei-noah/Efficient-AI-Backbones/releases/download/g_ghost_regnet/{file}"
        )
        assert cfg.published.top1 == top1 and cfg.published.macs == flops
        assert cfg.published.params == pytest.approx(params, rel=0.005)  # the table rounds to 0.1M


def test_stage_kinds_follow_the_official_rule():
    """Stages 2-4 are G-Ghost stages when they have more than two blocks; stage 1 never is."""
    model = ghostzoo.create_model("g_ghost_regnetx_002")
    assert [isinstance(getattr(model, f"layer{i}"), GGhostStage) for i in range(1, 5)] == [False, False, True, True]
    model = ghostzoo.create_model("g_ghost_regnetx_160")
    assert [isinstance(getattr(model, f"layer{i}"), GGhostStage) for i in range(1, 5)] == [False, True, True, False]


def test_any_input_size_and_batch_1():
    """Odd, non-square inputs: every stride-2 stage rounds up."""
    model = ghostzoo.create_model("g_ghost_regnetx_002").eval()
    backbone = ghostzoo.create_model("g_ghost_regnetx_002", features_only=True).eval()
    x = torch.randn(1, 3, 65, 97)
    with torch.no_grad():
        y = model(x)
        maps = backbone(x)
    assert y.shape == (1, 1000) and torch.isfinite(y).all()
    assert [(m.shape[1], *m.shape[-2:]) for m in maps] == [
        (32, 33, 49),
        (24, 17, 25),
        (56, 9, 13),
        (152, 5, 7),
        (368, 3, 4),
    ]


def test_cli_lists_and_profiles(capsys):
    # the official names start with g_ (g_ghost_regnetx_*), so `list ghost*` cannot match them
    assert main(["list", "*ghost*"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in NAMES + ["ghost_resnet50", "ghostnetv2_100", "ghostnetv3_100"])
    assert "77.80" in out
    assert main(["profile", "g_ghost_regnetx_002"]) == 0
    out = capsys.readouterr().out
    assert "1,825,440 params" in out and "0.1350 GMACs" in out
