"""Versatile filters: official parity of the VGG family, the published numbers, the VConv2d layer, other
input sizes (the model surface, params included: tests/test_model_contract.py; MACs: test_profile.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import ghostzoo
from ghostzoo.layers import VConv2d

from golden import check_golden
from reference import small_variants_first

NAMES = [f"vcnn_vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]


@pytest.mark.parametrize("name", small_variants_first(NAMES))
def test_matches_official_logits(name, tmp_path):
    check_golden(name, tmp_path)


def test_published_result_and_eval_cfg():
    cfg = ghostzoo.get_pretrained_cfg("vcnn_vgg16")
    assert (cfg.published.top1, cfg.published.top5) == (72.2, 91.1)  # official readme
    # official imagenet-vcnn.py evaluation: Resize(256), CenterCrop(224), ImageNet mean/std
    assert cfg.input_size == (3, 224, 224) and round(224 / cfg.crop_pct) == 256
    assert cfg.mean == (0.485, 0.456, 0.406) and cfg.std == (0.229, 0.224, 0.225)


def _masked_full_kernel_reference(conv: VConv2d, x: torch.Tensor) -> torch.Tensor:
    """Block s as an ordinary k x k convolution whose outer s rings are zero."""
    k, outs = conv.kernel_size, []
    block = conv.out_chs // conv.num_scales
    for s in range(conv.num_scales):
        w = torch.zeros(block, conv.in_chs, k, k)
        w[:, :, s : k - s, s : k - s] = conv.weight[:, :, s : k - s, s : k - s]
        outs.append(F.conv2d(x, w, conv.bias[s * block : (s + 1) * block], conv.stride, conv.padding))
    return torch.cat(outs, 1)


@pytest.mark.parametrize("kernel_size,stride,padding,size", [(3, 1, 1, 9), (5, 2, 2, 11), (7, 1, 0, 7), (7, 1, 1, 10)])
def test_vconv_equals_nested_sub_filters(kernel_size, stride, padding, size):
    torch.manual_seed(0)
    conv = VConv2d(6, 4 * ((kernel_size + 1) // 2), kernel_size, stride, padding)
    torch.nn.init.normal_(conv.bias)
    x = torch.randn(2, 6, size, size + 2)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), _masked_full_kernel_reference(conv, x), rtol=1e-5, atol=1e-5)
    assert conv.weight.shape == (4, 6, kernel_size, kernel_size)  # 1/ceil(k/2) of a plain conv's filters


def test_vconv_rejects_widths_it_cannot_split():
    with pytest.raises(ValueError, match="multiple"):
        VConv2d(8, 9, 3)


@pytest.mark.parametrize("size", [(64, 64), (256, 192)])
def test_other_input_sizes(size):
    model = ghostzoo.create_model("vcnn_vgg11_bn").eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, *size))
    assert y.shape == (1, 1000) and torch.isfinite(y).all()


def test_features_only_drops_fc6_and_the_classifier():
    model = ghostzoo.create_model("vcnn_vgg16_bn")
    assert [(f["num_chs"], f["reduction"]) for f in model.feature_info] == [
        (64, 1),
        (128, 2),
        (256, 4),
        (512, 8),
        (512, 16),
        (512, 32),
    ]
    backbone = ghostzoo.create_model("vcnn_vgg16_bn", features_only=True, out_indices=(2, 3, 4))
    assert ghostzoo.count_params(backbone) < 0.5 * ghostzoo.count_params(model)
