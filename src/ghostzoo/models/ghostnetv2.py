"""GhostNetV2.

Yehui Tang, Kai Han, Jianyuan Guo, Chang Xu, Chao Xu, Yunhe Wang. "GhostNetV2: Enhance Cheap
Operation with Long-Range Attention." NeurIPS 2022. https://arxiv.org/abs/2211.12905

GhostNet v1 with DFC attention (``layers.DFCAttention``) gating the expanding Ghost module of
every bottleneck from the third on. Everything else (stages, widths, SE, head) is GhostNet v1's,
so the model is ``models.ghostnet.GhostNet`` with ``attn_from=2``. Module names equal the official
``ghostnetv2_pytorch/model/ghostnetv2_torch.py`` and timm's ``ghostnetv2_*``: both load unchanged
(the release files wrap the weights as ``{'state_dict': ...}``, which the loader unwraps).

One extension of the official code: the DFC branch pools 2x2 except along a 1-pixel side, so the
model runs on any input from 32x32 (the official code needs more than 32 pixels a side).
"""

from __future__ import annotations

from typing import Any

from ..registry import PretrainedCfg, Published, register_model
from .ghostnet import GHOSTNET_CFG, GhostNet

_PAPER = "https://arxiv.org/abs/2211.12905"
_PAPER_TABLE = "GhostNetV2 paper (NeurIPS 2022), ImageNet comparison table"
_RELEASE = "https://github.com/huawei-noah/Efficient-AI-Backbones/releases/download/GhostNetV2"


def _create(width: float, **kwargs: Any) -> GhostNet:
    return GhostNet(GHOSTNET_CFG, width=width, attn_from=2, **kwargs)


def _cfg(file: str, hub: str, published: Published) -> PretrainedCfg:
    # the official train.py evaluates with timm's defaults: bicubic, crop 0.875, ImageNet mean/std
    return PretrainedCfg(
        tag="in1k",
        url=f"{_RELEASE}/{file}",
        hf_hub_id=hub,
        first_conv="conv_stem",
        classifier="classifier",
        interpolation="bicubic",
        crop_pct=0.875,
        license="apache-2.0",
        paper=_PAPER,
        published=published,
        notes=f"Official release {file} (weights under 'state_dict'); timm's hub copy was converted "
        f"from it and uses the same keys.",
    )


@register_model(
    "ghostnetv2",
    [
        _cfg(
            "ck_ghostnetv2_10.pth.tar",
            "timm/ghostnetv2_100.in1k",
            Published(params=6_156_908, macs=167_000_000, top1=75.3, source=_PAPER_TABLE),
        ),
    ],
)
def ghostnetv2_100(**kwargs: Any) -> GhostNet:
    """GhostNetV2 1.0x: GhostNet with DFC attention, 75.3% top-1 at 167M MACs."""
    return _create(1.0, **kwargs)


@register_model(
    "ghostnetv2",
    [
        _cfg(
            "ck_ghostnetv2_13.pth.tar",
            "timm/ghostnetv2_130.in1k",
            Published(params=8_960_404, macs=269_000_000, top1=76.9, source=_PAPER_TABLE),
        ),
    ],
)
def ghostnetv2_130(**kwargs: Any) -> GhostNet:
    """GhostNetV2 1.3x."""
    return _create(1.3, **kwargs)


@register_model(
    "ghostnetv2",
    [
        _cfg(
            "ck_ghostnetv2_16.pth.tar",
            "timm/ghostnetv2_160.in1k",
            Published(params=12_392_698, macs=399_000_000, top1=77.8, source=_PAPER_TABLE),
        ),
    ],
)
def ghostnetv2_160(**kwargs: Any) -> GhostNet:
    """GhostNetV2 1.6x."""
    return _create(1.6, **kwargs)
