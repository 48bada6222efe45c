"""Convolution, BatchNorm, activation: the unit every CNN of the zoo is made of."""

from typing import Callable, Optional

import torch
import torch.nn as nn


class ConvBnAct(nn.Module):
    """``act(bn1(conv(x)))`` with 'same' padding; ``act_layer=None`` leaves the output linear.

    Keys (``conv``, ``bn1``) follow the official GhostNet ``ConvBnAct`` so its checkpoints load.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        stride: int = 1,
        act_layer: Optional[Callable[..., nn.Module]] = nn.ReLU,
        conv_layer: Callable[..., nn.Module] = nn.Conv2d,
    ) -> None:
        super().__init__()
        self.conv = conv_layer(in_chs, out_chs, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.act1 = act_layer(inplace=True) if act_layer is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act1(self.bn1(self.conv(x)))
