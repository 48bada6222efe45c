"""ParameterNet.

Kai Han, Yunhe Wang, Jianyuan Guo, Enhua Wu. "ParameterNet: Parameters Are All You Need for
Large-scale Visual Pretraining of Mobile Networks." CVPR 2024. https://arxiv.org/abs/2306.14525

Low-FLOPs networks gain little from large-scale pretraining because they have too few parameters;
ParameterNet adds parameters, not FLOPs, by turning the convolutions into dynamic ones
(:class:`~ghostzoo.layers.DynamicConv`: four expert kernels mixed per image). ParameterNet-600M is
GhostNet (:class:`~ghostzoo.models.ghostnet.GhostNet`) at width 1.9 with more blocks, Hardswish
activations, and dynamic convolutions everywhere but the strided depthwise ones and the head.
Module names equal the official ``parameternet_pytorch/cv/parameternet.py``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, List

import torch.nn as nn

from ..layers import DynamicConv, SqueezeExcite
from ..registry import IMAGENET_MEAN, IMAGENET_STD, PretrainedCfg, Published, register_model
from .ghostnet import BlockCfg, GhostBottleneck, GhostNet

__all__ = ["PARAMETERNET_600M_CFG"]

# kernel, expansion width, output width, SE ratio, stride; one inner list per block of `blocks`.
PARAMETERNET_600M_CFG: List[List[BlockCfg]] = [
    [(3, 16, 16, 0, 1)],
    [(3, 48, 24, 0, 2)],
    [(3, 72, 24, 0, 1)],
    [(5, 72, 40, 0.25, 2)],
    [(3, 120, 40, 0.25, 1), (3, 120, 40, 0.25, 1)],
    [(3, 240, 80, 0, 2)],
    [
        (3, 200, 80, 0, 1),
        (3, 200, 80, 0, 1),
        (3, 200, 80, 0, 1),
        (3, 480, 112, 0.25, 1),
        (3, 672, 112, 0.25, 1),
        (3, 672, 112, 0.25, 1),
    ],
    [(5, 672, 160, 0.25, 2)],
    [(3, 960, 160, 0.25, 1)] * 5,
]

_PAPER = "https://arxiv.org/abs/2306.14525"


@register_model(
    "parameternet",
    [
        PretrainedCfg(
            tag="untrained",
            input_size=(3, 224, 224),
            crop_pct=0.875,
            interpolation="bilinear",
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            first_conv="conv_stem",
            classifier="classifier",
            license="apache-2.0",
            paper=_PAPER,
            published=Published(
                params=34_504_504,
                macs=600_000_000,
                top1=81.6,
                source="ParameterNet paper (CVPR 2024): 81.6% after ImageNet-22K pretraining, 0.6G FLOPs; "
                "params: the official code",
            ),
            notes="No weights were released (the official readme: train it with timm).",
        )
    ],
)
def parameternet_600m(**kwargs: Any) -> GhostNet:
    """ParameterNet-600M: GhostNet 1.9x with dynamic convolutions (4 experts) and Hardswish."""
    conv = partial(DynamicConv, num_experts=4)
    se = partial(SqueezeExcite, mean_pool=True)  # as the reference's (timm's) SE, for its MAC count
    block = partial(GhostBottleneck, conv_layer=conv, act_layer=nn.Hardswish, se_layer=se)
    return GhostNet(PARAMETERNET_600M_CFG, width=1.9, block=block, conv_layer=conv, act_layer=nn.Hardswish, **kwargs)
