"""Squeeze-and-excitation with the hard-sigmoid gate used across the Ghost family."""

from typing import Callable, Optional

import torch
import torch.nn as nn
from timm.layers import make_divisible


class SqueezeExcite(nn.Module):
    """Channel attention: global pool, 1x1 reduce, ReLU, 1x1 expand, gate.

    The reduced width is ``make_divisible(chs * se_ratio, 4)`` as in the official GhostNet code;
    the gate defaults to hard-sigmoid (``relu6(x + 3) / 6``), which is what GhostNet was trained
    with, and is cheaper than a sigmoid on mobile hardware. PaddleClas's GhostNet reduces to
    ``chs // 4`` (``reduced_chs``) and gates with ``clip(x, 0, 1)`` (``nn.Hardtanh(0, 1)``).
    """

    def __init__(
        self,
        in_chs: int,
        se_ratio: float = 0.25,
        divisor: int = 4,
        act_layer: Callable[..., nn.Module] = nn.ReLU,
        gate_layer: Callable[..., nn.Module] = nn.Hardsigmoid,
        mean_pool: bool = False,
        reduced_chs: Optional[int] = None,
    ) -> None:
        super().__init__()
        reduced_chs = reduced_chs or make_divisible(in_chs * se_ratio, divisor)
        self.avg_pool = _GlobalMean() if mean_pool else nn.AdaptiveAvgPool2d(1)
        self.conv_reduce = nn.Conv2d(in_chs, reduced_chs, 1, bias=True)
        self.act1 = act_layer(inplace=True)
        self.conv_expand = nn.Conv2d(reduced_chs, in_chs, 1, bias=True)
        self.gate = gate_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_se = self.conv_expand(self.act1(self.conv_reduce(self.avg_pool(x))))
        return x * self.gate(x_se)


class _GlobalMean(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)
