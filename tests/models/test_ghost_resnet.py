"""Ghost-ResNet-50: parity with the official ghost_resnet.py, its documented quirks, model surface."""

from __future__ import annotations

import re

import pytest
import torch

import ghostzoo
from ghostzoo.cli import main
from ghostzoo.profile import profile_model

from golden import check_golden, load_golden

OFFICIAL_PARAMS = 14_218_472


def test_matches_official_logits(tmp_path):
    check_golden("ghost_resnet50", tmp_path)


def test_sizes_match_official_and_published():
    cfg = ghostzoo.get_pretrained_cfg("ghost_resnet50")
    prof = profile_model(ghostzoo.create_model("ghost_resnet50"))
    assert prof.params == load_golden("ghost_resnet50")["params"] == OFFICIAL_PARAMS == cfg.published.params
    assert prof.macs == load_golden("ghost_resnet50")["macs_batch1"]["value"]
    assert prof.conv_linear_macs == pytest.approx(cfg.published.macs, rel=0.02)  # paper: 1.2B (s=4)
    assert cfg.published.top1 == 74.1 and not cfg.has_weights


def test_unused_official_parameters_are_kept_but_do_not_compute():
    """The official Ghost convolution registers weight1/weight2/bn1/bn2 that forward() never uses."""
    model = ghostzoo.create_model("ghost_resnet50").eval()
    unused = [n for n in model.state_dict() if re.match(r"layer.*\.(weight1|weight2|bn1\..*|bn2\..*)$", n)]
    assert "layer1.0.conv1.weight1" in unused and "layer4.2.conv3.bn2.running_var" in unused
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        for name, tensor in model.state_dict().items():
            if name in unused and tensor.is_floating_point():
                tensor.add_(1.0)
        torch.testing.assert_close(model(x), before, rtol=0, atol=0)


def test_docstring_and_info_document_the_difference_from_the_paper(capsys):
    assert main(["info", "ghost_resnet50"]) == 0
    out = capsys.readouterr().out
    assert "14,218,472" in out
    assert "no BatchNorm" in out and "unused" in out and "weight1" in out


def test_any_input_size_batch_1_and_features_only(tmp_path):
    model = ghostzoo.create_model("ghost_resnet50").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 97, 130)).shape == (1, 1000)
    assert [f["reduction"] for f in model.feature_info] == [2, 4, 8, 16, 32]
    torch.save(model.state_dict(), tmp_path / "w.pth")
    backbone = ghostzoo.create_model("ghost_resnet50", checkpoint_path=tmp_path / "w.pth", features_only=True,
                                     out_indices=(1, 2, 3, 4)).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        maps = backbone(x)
        torch.testing.assert_close(maps[-1], model.forward_features(x))
    assert [m.shape[1] for m in maps] == [256, 512, 1024, 2048]
    assert [tuple(m.shape[-2:]) for m in maps] == [(16, 24), (8, 12), (4, 6), (2, 3)]


def test_reset_classifier_and_pre_logits():
    model = ghostzoo.create_model("ghost_resnet50", num_classes=37).eval()
    x = torch.randn(1, 3, 64, 64)
    assert model(x).shape == (1, 37)
    model.reset_classifier(0)
    assert model(x).shape == (1, 2048)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (1, 2048)


def test_cli_lists_and_profiles(capsys):
    assert main(["list", "ghost*"]) == 0
    assert "ghost_resnet50" in capsys.readouterr().out
    assert main(["profile", "ghost_resnet50", "--input-size", "160"]) == 0
    assert "14,218,472 params" in capsys.readouterr().out
