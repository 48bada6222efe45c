"""LegoNet: official parity (CIFAR-10 Lego-VGG-16), the published numbers, the LegoConv2d layer, other
input sizes (the model surface: tests/test_model_contract.py)."""

from __future__ import annotations

import pytest
import torch

import ghostzoo
from ghostzoo.layers import LegoConv2d

from golden import check_golden


def test_matches_official_logits(tmp_path):
    check_golden("lego_vgg16", tmp_path)


def test_published_numbers():
    # the model's params and MACs equal the official ones: test_model_contract.py, test_profile.py
    model = ghostzoo.create_model("lego_vgg16")
    cfg = ghostzoo.get_pretrained_cfg("lego_vgg16")
    # official README: 93.88% on CIFAR-10 and "the lego filters occupy ~3.8M parameters"
    assert cfg.published.top1 == 93.88
    legos = sum(m.lego.numel() for m in model.modules() if isinstance(m, LegoConv2d))
    assert legos / 1e6 == pytest.approx(3.8, abs=0.1)


def test_eval_cfg_is_cifar10():
    cfg = ghostzoo.get_pretrained_cfg("lego_vgg16")
    assert cfg.num_classes == 10 and cfg.input_size == (3, 32, 32) and cfg.label_names == "cifar-10"
    assert cfg.mean == (0.4914, 0.4822, 0.4465) and cfg.std == (0.2023, 0.1994, 0.2010)  # official train.py
    assert ghostzoo.create_model("lego_vgg16").classifier.out_features == 10


def test_lego_conv_uses_the_chosen_legos_only_and_learns_the_choice():
    torch.manual_seed(0)
    conv = LegoConv2d(8, 6, 3, n_split=2, n_lego=0.5)
    assert conv.lego.shape == (3, 4, 3, 3) and conv.aux_combination.shape == (2, 6, 3, 1, 1)
    x = torch.randn(2, 8, 7, 7)
    y = conv(x)
    assert y.shape == (2, 6, 7, 7)
    # a lego that no output picks does not influence the output
    with torch.no_grad():
        conv.aux_combination[:, :, 0] = -100.0
        before = conv(x)
        conv.lego[0].normal_()
        torch.testing.assert_close(conv(x), before, rtol=0, atol=0)
    # the one-hot choice passes its gradient straight through: for a chosen lego,
    # d/d(choice) = d/d(kernel) * coefficient and d/d(coefficient) = d/d(kernel)
    conv.zero_grad()
    conv(x).square().sum().backward()
    chosen = torch.zeros_like(conv.aux_combination, dtype=torch.bool).scatter_(
        2, conv.aux_combination.argmax(2, keepdim=True), True
    )
    torch.testing.assert_close(
        conv.aux_combination.grad[chosen], (conv.aux_coefficients.grad * conv.aux_coefficients)[chosen]
    )
    assert (conv.aux_coefficients.grad[~chosen] == 0).all()
    assert (conv.aux_combination.grad[~chosen] != 0).any()


def test_lego_conv_rejects_indivisible_splits():
    with pytest.raises(ValueError, match="divisible"):
        LegoConv2d(9, 8, 3, n_split=2)


@pytest.mark.parametrize("size", [32, 64, 96])
def test_input_sizes(size):
    model = ghostzoo.create_model("lego_vgg16").eval()
    with torch.no_grad():
        y = model(torch.randn(2, 3, size, size))
    assert y.shape == (2, 10) and torch.isfinite(y).all()


def test_feature_info():
    model = ghostzoo.create_model("lego_vgg16")
    assert [(f["num_chs"], f["reduction"]) for f in model.feature_info] == [
        (64, 1),
        (128, 2),
        (256, 4),
        (512, 8),
        (512, 16),
        (512, 32),
    ]
