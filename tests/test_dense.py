"""Dense-prediction backbones: output stride 16 or 8 by dilation, from the same weights."""

from __future__ import annotations

import math

import pytest
import torch

import ghostzoo
from ghostzoo.errors import GhostzooError
from ghostzoo.models import create_feature_net

from reference import randomize_batchnorm

CNNS = [
    "ghostnet_050",
    "ghostnet_x0_5",
    "ghostnetv2_100",
    "ghostnetv3_050",
    "tinynet_e",
    "g_ghost_regnetx_002",
    "ghost_resnet50",
]


@pytest.mark.parametrize("output_stride", [16, 8])
@pytest.mark.parametrize("name", CNNS)
def test_dilated_backbones_give_maps_at_the_requested_stride_from_stride_32_weights(name, output_stride):
    torch.manual_seed(0)
    weights = ghostzoo.create_model(name).state_dict()
    dense = ghostzoo.create_model(name, output_stride=output_stride)
    dense.load_state_dict(weights)  # the same parameters and buffers: a stride-32 checkpoint loads
    backbone = create_feature_net(dense.eval())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        maps = backbone(x)
    stride32 = [f["reduction"] for f in ghostzoo.create_model(name).feature_info]  # 2 (or 4) to 32
    assert backbone.feature_info.reduction() == [min(r, output_stride) for r in stride32]
    for fmap, reduction in zip(maps, backbone.feature_info.reduction()):
        assert fmap.shape[-2:] == (math.ceil(64 / reduction), math.ceil(96 / reduction))
        assert torch.isfinite(fmap).all()


def test_a_dilated_network_of_convolutions_is_the_undilated_one_at_every_other_position():
    """Ghost-ResNet has only convolutions, BatchNorm, ReLU and residual sums in its blocks: at output
    stride 16 its last map, taken at even positions, is the stride-32 map. In float64, because the
    float32 maps reach ~2e3 and the two orders of summation then differ by ~1e-3."""
    torch.manual_seed(0)
    plain = randomize_batchnorm(ghostzoo.create_model("ghost_resnet50")).double().eval()
    dense = ghostzoo.create_model("ghost_resnet50", output_stride=16).double().eval()
    dense.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 128, 128, dtype=torch.float64)
    with torch.no_grad():
        expected, got = plain.forward_features(x), dense.forward_features(x)
    assert got.shape[-2:] == (8, 8) and expected.shape[-2:] == (4, 4)
    torch.testing.assert_close(got[..., ::2, ::2], expected)


def test_output_stride_is_refused_where_it_does_not_apply():
    with pytest.raises(GhostzooError, match="output_stride must be one of"):
        ghostzoo.create_model("ghostnet_050", output_stride=4)
    with pytest.raises(GhostzooError, match=r"vig_ti_224_gelu \(vig\) has no output_stride"):
        ghostzoo.create_model("vig_ti_224_gelu", features_only=True, output_stride=16)
