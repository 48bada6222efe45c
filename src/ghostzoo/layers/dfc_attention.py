"""DFC attention (Tang et al., "GhostNetV2: Enhance Cheap Operation with Long-Range Attention",
NeurIPS 2022, https://arxiv.org/abs/2211.12905).

A Ghost module only sees a 3x3 neighbourhood through its cheap operation. DFC ("decoupled fully
connected") attention gives it a long-range view cheaply: from the module's input, at half
resolution, a 1x1 convolution followed by a horizontal (1 x 5) and a vertical (5 x 1) depthwise
convolution, each with BatchNorm; the sigmoid of that map, upsampled (nearest) to the output size,
gates the Ghost features. Working at half resolution is what keeps it fast on mobile hardware.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F


def half_resolution(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling (floor), as in the official code, except along a side of length 1.

    The official pooling fails on a 1-pixel side, which the stride-32 stage has for an input side
    of 32 pixels or less; keeping such a side as it is extends the model to those sizes without
    changing the result anywhere the official code runs.
    """
    h, w = x.shape[-2:]
    return F.avg_pool2d(x, kernel_size=(min(2, h), min(2, w)))


def resize_nearest(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Nearest upsampling to exactly ``size`` (not by a factor of 2 only, so odd sizes line up).

    Sizes are read as plain ints and a whole factor (the usual 2, or 1) is passed as a scale: an
    exporter then writes a Resize with constant scales, which needs no Shape / Gather / Concat
    arithmetic even with a free batch dimension (converters such as ncnn and TensorRT handle that
    arithmetic badly). Nearest upsampling by a whole factor picks the same pixels as by size.
    """
    size = [int(s) for s in size]
    factors = [s / int(n) for s, n in zip(size, x.shape[-2:])]
    if all(f.is_integer() for f in factors):
        return F.interpolate(x, scale_factor=factors, mode="nearest")
    return F.interpolate(x, size=size, mode="nearest")


# The pooling window and the output size depend on the input size, which torch.fx cannot see while
# tracing; marking the functions as leaves keeps models with DFC attention traceable
# (deploy.reparameterize uses fx).
torch.fx.wrap("half_resolution")
torch.fx.wrap("resize_nearest")


class DFCAttention(nn.Sequential):
    """The DFC gate: ``forward(x, size)`` returns sigmoid attention of spatial size ``size``.

    It is an ``nn.Sequential`` of conv, BN, (1, k) depthwise conv, BN, (k, 1) depthwise conv, BN,
    so its keys (``0.weight`` ... ``5.running_var``) equal the official ``short_conv``.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, dfc_kernel: int = 5) -> None:
        pad = dfc_kernel // 2
        super().__init__(
            nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_chs),
            nn.Conv2d(out_chs, out_chs, (1, dfc_kernel), 1, (0, pad), groups=out_chs, bias=False),
            nn.BatchNorm2d(out_chs),
            nn.Conv2d(out_chs, out_chs, (dfc_kernel, 1), 1, (pad, 0), groups=out_chs, bias=False),
            nn.BatchNorm2d(out_chs),
        )

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        return resize_nearest(torch.sigmoid(super().forward(half_resolution(x))), size)
