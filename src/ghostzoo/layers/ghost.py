"""The Ghost module (Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020).

Half of the output channels come from an ordinary convolution (the "intrinsic" maps); the other
half are "ghosts" made from those by a cheap depthwise convolution, which is where GhostNet's
FLOP savings come from. GhostNetV2 adds an optional DFC attention gate (``attn=True``), and
GhostNetV3 swaps the two convolutions for re-parameterizable branches (``RepGhostModule``, which
builds on this class through ``_build`` / ``_primary`` / ``_cheap``).
"""

import math
from typing import Callable, Optional

import torch
import torch.nn as nn

from .dfc_attention import DFCAttention

ActLayer = Optional[Callable[..., nn.Module]]


def make_act(act_layer: ActLayer) -> nn.Module:
    """``act_layer(inplace=True)``, or ``nn.Identity`` for a linear output."""
    return act_layer(inplace=True) if act_layer is not None else nn.Identity()


class GhostModule(nn.Module):
    """``cat(primary, cheap(primary))``, trimmed to ``out_chs``, optionally gated by DFC attention.

    The trim only exists when ``out_chs`` is odd for ``ratio=2``; it is skipped otherwise, so the
    traced graph of the usual widths holds no slice at all. Keys follow the official code
    (``primary_conv.{0,1}``, ``cheap_operation.{0,1}``, and GhostNetV2's ``short_conv.*``).
    ``conv_layer`` builds both convolutions (ParameterNet's ``DynamicConv``; ``nn.Conv2d``'s signature).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        ratio: int = 2,
        dw_size: int = 3,
        stride: int = 1,
        act_layer: ActLayer = nn.ReLU,
        attn: bool = False,
        conv_layer: Callable[..., nn.Module] = nn.Conv2d,
    ) -> None:
        super().__init__()
        self.out_chs = out_chs
        self.conv_layer = conv_layer
        init_chs = math.ceil(out_chs / ratio)
        new_chs = init_chs * (ratio - 1)
        self.trim = init_chs + new_chs != out_chs
        self._build(in_chs, init_chs, new_chs, kernel_size, dw_size, stride, act_layer)
        self.short_conv = DFCAttention(in_chs, out_chs, kernel_size, stride) if attn else None

    def _build(
        self, in_chs: int, init_chs: int, new_chs: int, kernel_size: int, dw_size: int, stride: int, act_layer: ActLayer
    ) -> None:
        """Create the primary and cheap operations (a subclass may build them differently)."""
        self.primary_conv = nn.Sequential(
            self.conv_layer(in_chs, init_chs, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(init_chs),
            make_act(act_layer),
        )
        self.cheap_operation = nn.Sequential(
            self.conv_layer(init_chs, new_chs, dw_size, 1, dw_size // 2, groups=init_chs, bias=False),
            nn.BatchNorm2d(new_chs),
            make_act(act_layer),
        )

    def _primary(self, x: torch.Tensor) -> torch.Tensor:
        return self.primary_conv(x)

    def _cheap(self, x1: torch.Tensor) -> torch.Tensor:
        return self.cheap_operation(x1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self._primary(x)
        out = torch.cat([x1, self._cheap(x1)], dim=1)
        if self.trim:
            out = out[:, : self.out_chs]
        if self.short_conv is not None:
            out = out * self.short_conv(x, out.shape[-2:])
        return out
