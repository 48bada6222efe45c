"""Spatial versatile filters (Wang et al., "Learning Versatile Filters for Efficient CNNs", NeurIPS 2018).

Each stored k x k filter is also applied as its centred (k-2) x (k-2), (k-4) x (k-4), ... sub-filters,
so one stored filter yields ceil(k/2) output channels with nested receptive fields: same output
width as a plain convolution from 1/ceil(k/2) of its weights and fewer multiply-adds.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class VConv2d(nn.Module):
    """Drop-in for ``nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding)`` with versatile filters.

    ``weight`` is ``[out_chs / s, in_chs, k, k]`` with ``s = ceil(k / 2)``; output channel block
    ``i`` (of ``out_chs / s``) comes from the filters cropped by ``i`` on every side, padded by
    ``padding - i`` (or, where that is negative, applied to the input cropped by the difference) so
    that every block has the output size of the full filter. ``bias`` has one entry per output
    channel. Keys and shapes are those of the official ``VConv2d``.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True) -> None:
        super().__init__()
        self.num_scales = math.ceil(kernel_size / 2)
        if out_chs % self.num_scales:
            raise ValueError(f"VConv2d: out_chs ({out_chs}) must be a multiple of ceil(kernel_size / 2) "
                             f"({self.num_scales})")
        self.in_chs, self.out_chs = in_chs, out_chs
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.weight = nn.Parameter(torch.empty(out_chs // self.num_scales, in_chs, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_chs)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official VGG initialisation: He normal over the stored filters' fan-out, zero bias."""
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, block = self.kernel_size, self.out_chs // self.num_scales
        outs = []
        for s in range(self.num_scales):
            pad = self.padding - s
            xs = x if pad >= 0 else x[..., -pad:x.shape[-2] + pad, -pad:x.shape[-1] + pad]
            bias = self.bias[s * block:(s + 1) * block] if self.bias is not None else None
            outs.append(F.conv2d(xs, self.weight[:, :, s:k - s, s:k - s], bias, self.stride, max(pad, 0)))
        return torch.cat(outs, 1)

    def extra_repr(self) -> str:
        return (f"{self.in_chs}, {self.out_chs}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.bias is not None}")
