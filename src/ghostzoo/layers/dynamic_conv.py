"""Dynamic convolution (ParameterNet): a convolution whose kernel is a per-image mixture of experts.

Each image's kernel is ``sum_e sigmoid(routing(pool(x)))_e * W_e``: the routing looks at the
globally pooled input, so the layer adds parameters (``num_experts`` kernels) at almost no extra
FLOPs. The mixing and the per-image convolution are timm's ``CondConv2d``; the sigmoid routing on
the pooled input is ParameterNet's.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import CondConv2d


class DynamicConv(nn.Module):
    """``nn.Conv2d``'s positional signature, ``num_experts`` kernels mixed per image. Keys
    (``routing``, ``cond_conv``) follow the official ``parameternet_pytorch/cv/parameternet.py``."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
        num_experts: int = 4,
    ) -> None:
        super().__init__()
        self.routing = nn.Linear(in_chs, num_experts)
        self.cond_conv = CondConv2d(in_chs, out_chs, kernel_size, stride, padding, dilation, groups, bias, num_experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        routing = torch.sigmoid(self.routing(F.adaptive_avg_pool2d(x, 1).flatten(1)))
        return self.cond_conv(x, routing)
