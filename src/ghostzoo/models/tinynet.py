"""TinyNet A-E.

Kai Han, Yunhe Wang, Qiulin Zhang, Wei Zhang, Chunjing Xu, Tong Zhang. "Model Rubik's Cube:
Twisting Resolution, Depth and Width for TinyNets." NeurIPS 2020. https://arxiv.org/abs/2010.14819

TinyNets are EfficientNet-B0 shrunk by the paper's "tiny formula", which, unlike EfficientNet's
compound scaling, gives resolution and depth priority over width. The network itself is plain
EfficientNet, so it is built with timm's EfficientNet builder (``decode_arch_def`` +
``EfficientNet``) rather than re-written: module names equal the official
``tinynet_pytorch/tinynet.py`` (which also used timm) and timm's ``tinynet_*``, so both sets of
checkpoints load without a key remap. Being fully convolutional, it runs at any input size.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch.nn as nn
from timm.models._efficientnet_builder import decode_arch_def, round_channels
from timm.models.efficientnet import EfficientNet

from ..layers.dilation import check_output_stride
from ..registry import PretrainedCfg, Published, register_model
from ._contract import TimmContract

__all__ = ["TinyNet"]

# EfficientNet-B0's stages in timm's block-string notation (block type, repeats, kernel, stride,
# expansion, output channels, SE ratio); the tiny formula only rescales depth and width.
EFFICIENTNET_B0_ARCH = [
    ["ds_r1_k3_s1_e1_c16_se0.25"],
    ["ir_r2_k3_s2_e6_c24_se0.25"],
    ["ir_r2_k5_s2_e6_c40_se0.25"],
    ["ir_r3_k3_s2_e6_c80_se0.25"],
    ["ir_r3_k5_s1_e6_c112_se0.25"],
    ["ir_r4_k5_s2_e6_c192_se0.25"],
    ["ir_r1_k3_s1_e6_c320_se0.25"],
]


class TinyNet(EfficientNet, TimmContract):
    """EfficientNet-B0 at ``width`` x channels and ``depth`` x blocks per stage, with Swish.

    The stem keeps 32 channels at every width and the head at least 1280, as in the official code.
    Everything else (``forward_features``, ``forward_head``, timm's model methods, and a
    ``feature_info`` tapping ``blocks.{0,1,2,4,6}`` at strides 2..32) is timm's EfficientNet;
    ``TimmContract``, after it, adds only what timm's EfficientNet lacks: ``no_weight_decay``.
    """

    def __init__(
        self,
        width: float = 1.0,
        depth: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        output_stride: int = 32,
    ) -> None:
        check_output_stride(output_stride)
        super().__init__(
            block_args=decode_arch_def(EFFICIENTNET_B0_ARCH, depth, depth_trunc="round"),
            num_classes=num_classes,
            num_features=max(1280, round_channels(1280, width, 8, None)),
            in_chans=in_chans,
            stem_size=32,
            fix_stem=True,
            round_chs_fn=partial(round_channels, multiplier=width),
            act_layer=nn.SiLU,
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
            output_stride=output_stride,  # timm's builder dilates the later stages
        )


_PAPER = "https://arxiv.org/abs/2010.14819"
_README = "official tinynet_pytorch/readme.md (FLOPs, Top-1)"
_RELEASE = "https://github.com/huawei-noah/CV-Backbones/releases/download/v1.2.0"


def _cfg(variant: str, resolution: int, params: int, macs: int, top1: float) -> PretrainedCfg:
    """Official release (also mirrored by timm on the HF hub); evaluated at int(224 * r)."""
    return PretrainedCfg(
        tag="in1k",
        url=f"{_RELEASE}/{variant}.pth",
        hf_hub_id=f"timm/{variant}.in1k",
        input_size=(3, resolution, resolution),
        crop_pct=0.875,
        interpolation="bicubic",
        first_conv="conv_stem",
        classifier="classifier",
        license="apache-2.0",
        paper=_PAPER,
        published=Published(params=params, macs=macs, top1=top1, source=_README),
        notes="Evaluated by the official eval.py with timm's EfficientNet defaults: bicubic resize, "
        "crop 0.875, ImageNet mean/std. Runs at any input size (e.g. 640 for detection).",
    )


@register_model("tinynet", [_cfg("tinynet_a", 192, 6_187_972, 339_000_000, 76.8)])
def tinynet_a(**kwargs: Any) -> TinyNet:
    """TinyNet-A: r=0.86 (192 px), width 1.0, depth 1.2."""
    return TinyNet(1.0, 1.2, **kwargs)


@register_model("tinynet", [_cfg("tinynet_b", 188, 3_730_562, 202_000_000, 75.0)])
def tinynet_b(**kwargs: Any) -> TinyNet:
    """TinyNet-B: r=0.84 (188 px), width 0.75, depth 1.1."""
    return TinyNet(0.75, 1.1, **kwargs)


@register_model("tinynet", [_cfg("tinynet_c", 184, 2_457_234, 100_000_000, 71.2)])
def tinynet_c(**kwargs: Any) -> TinyNet:
    """TinyNet-C: r=0.825 (184 px), width 0.54, depth 0.85."""
    return TinyNet(0.54, 0.85, **kwargs)


@register_model("tinynet", [_cfg("tinynet_d", 152, 2_338_446, 52_000_000, 67.0)])
def tinynet_d(**kwargs: Any) -> TinyNet:
    """TinyNet-D: r=0.68 (152 px), width 0.54, depth 0.695."""
    return TinyNet(0.54, 0.695, **kwargs)


@register_model("tinynet", [_cfg("tinynet_e", 106, 2_042_972, 24_000_000, 59.9)])
def tinynet_e(**kwargs: Any) -> TinyNet:
    """TinyNet-E: r=0.475 (106 px), width 0.51, depth 0.60."""
    return TinyNet(0.51, 0.60, **kwargs)
