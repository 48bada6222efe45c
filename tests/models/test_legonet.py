"""LegoNet: official parity (CIFAR-10 Lego-VGG-16), sizes, the LegoConv2d layer and the surface."""

from __future__ import annotations

import pytest
import torch

import ghostzoo
from ghostzoo.layers import LegoConv2d
from ghostzoo.profile import profile_model

from golden import check_golden, load_golden


def test_matches_official_logits(tmp_path):
    check_golden("lego_vgg16", tmp_path)


def test_sizes_match_official_and_published():
    model = ghostzoo.create_model("lego_vgg16")
    golden, cfg = load_golden("lego_vgg16"), ghostzoo.get_pretrained_cfg("lego_vgg16")
    prof = profile_model(model, (3, 32, 32))
    assert prof.params == golden["params"] == cfg.published.params
    assert prof.macs == golden["macs_batch1"]["value"]
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
        2, conv.aux_combination.argmax(2, keepdim=True), True)
    torch.testing.assert_close(conv.aux_combination.grad[chosen],
                               (conv.aux_coefficients.grad * conv.aux_coefficients)[chosen])
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


def test_forward_features_head_and_reset_classifier():
    model = ghostzoo.create_model("lego_vgg16").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 512, 1, 1)
        pre = model.forward_head(feats, pre_logits=True)
        torch.testing.assert_close(model.classifier(pre), model(x))
    model.reset_classifier(100)
    assert model.num_classes == 100 and model(x).shape == (2, 100)
    model.reset_classifier(0)
    assert model(x).shape == (2, 512)


def test_features_only():
    backbone = ghostzoo.create_model("lego_vgg16", features_only=True).eval()
    assert [f["reduction"] for f in backbone.feature_info] == [1, 2, 4, 8, 16, 32]
    with torch.no_grad():
        maps = backbone(torch.randn(1, 3, 32, 32))
    assert [m.shape[1] for m in maps] == [64, 128, 256, 512, 512, 512]
    assert [m.shape[-1] for m in maps] == [32, 16, 8, 4, 2, 1]
