"""The Ghost module (Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020).

Half of the output channels come from an ordinary convolution (the "intrinsic" maps); the other
half are "ghosts" made from those by a cheap depthwise convolution, which is where GhostNet's
FLOP savings come from.
"""

import math
from typing import Callable, Optional

import torch
import torch.nn as nn


class GhostModule(nn.Module):
    """``cat(primary, cheap(primary))``, trimmed to ``out_chs``.

    The trim only exists when ``out_chs`` is odd for ``ratio=2``; it is skipped otherwise, so the
    traced graph of the usual widths holds no slice at all. Keys follow the official code
    (``primary_conv.{0,1}``, ``cheap_operation.{0,1}``).
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, ratio: int = 2,
                 dw_size: int = 3, stride: int = 1,
                 act_layer: Optional[Callable[..., nn.Module]] = nn.ReLU) -> None:
        super().__init__()
        self.out_chs = out_chs
        init_chs = math.ceil(out_chs / ratio)
        new_chs = init_chs * (ratio - 1)
        self.trim = init_chs + new_chs != out_chs

        def act() -> nn.Module:
            return act_layer(inplace=True) if act_layer is not None else nn.Identity()

        self.primary_conv = nn.Sequential(
            nn.Conv2d(in_chs, init_chs, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(init_chs),
            act(),
        )
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(init_chs, new_chs, dw_size, 1, dw_size // 2, groups=init_chs, bias=False),
            nn.BatchNorm2d(new_chs),
            act(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary_conv(x)
        out = torch.cat([x1, self.cheap_operation(x1)], dim=1)
        return out[:, :self.out_chs] if self.trim else out
