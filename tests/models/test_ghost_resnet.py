"""Ghost-ResNet-50: parity with the official ghost_resnet.py, its documented quirks, the paper's numbers
(the model surface: tests/test_model_contract.py)."""

from __future__ import annotations

import re

import pytest
import torch

import ghostzoo
from ghostzoo.cli import main
from ghostzoo.profile import profile_model

from golden import check_golden

OFFICIAL_PARAMS = 14_218_472


def test_matches_official_logits(tmp_path):
    check_golden("ghost_resnet50", tmp_path)


def test_published_numbers():
    # the model's params and MACs equal the official ones: test_model_contract.py, test_profile.py
    cfg = ghostzoo.get_pretrained_cfg("ghost_resnet50")
    assert cfg.published.params == OFFICIAL_PARAMS
    prof = profile_model(ghostzoo.create_model("ghost_resnet50"))
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


def test_any_input_size_and_batch_1():
    model = ghostzoo.create_model("ghost_resnet50").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 97, 130)).shape == (1, 1000)
    assert [(f["num_chs"], f["reduction"]) for f in model.feature_info] == [
        (64, 2),
        (256, 4),
        (512, 8),
        (1024, 16),
        (2048, 32),
    ]


def test_cli_lists_and_profiles(capsys):
    assert main(["list", "ghost*"]) == 0
    assert "ghost_resnet50" in capsys.readouterr().out
    assert main(["profile", "ghost_resnet50", "--input-size", "160"]) == 0
    assert "14,218,472 params" in capsys.readouterr().out
