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
from torch.nn.utils.fusion import fuse_conv_bn_weights


class VConv2d(nn.Module):
    """Drop-in for ``nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding)`` with versatile filters.

    ``weight`` is ``[out_chs / s, in_chs, k, k]`` with ``s = ceil(k / 2)``; output channel block
    ``i`` (of ``out_chs / s``) comes from the filters cropped by ``i`` on every side, padded by
    ``padding - i`` (or, where that is negative, applied to the input cropped by the difference) so
    that every block has the output size of the full filter. ``bias`` has one entry per output
    channel. Keys and shapes are those of the official ``VConv2d``.

    ``reparameterize()`` switches to the deploy form: one plain ``nn.Conv2d`` per block, holding its
    cropped filters (still the versatile multiply-adds, not a dense k x k convolution's), which can
    then absorb a following BatchNorm (``fold_batchnorm``).
    """

    def __init__(
        self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = True
    ) -> None:
        super().__init__()
        self.num_scales = math.ceil(kernel_size / 2)
        if out_chs % self.num_scales:
            raise ValueError(
                f"VConv2d: out_chs ({out_chs}) must be a multiple of ceil(kernel_size / 2) ({self.num_scales})"
            )
        self.in_chs, self.out_chs = in_chs, out_chs
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.weight = nn.Parameter(torch.empty(out_chs // self.num_scales, in_chs, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_chs)) if bias else None
        self.deployed = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official VGG initialisation: He normal over the stored filters' fan-out, zero bias."""
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    @staticmethod
    def _crop(x: torch.Tensor, pad: int) -> torch.Tensor:
        """The input of a block whose padding ``pad`` is negative: cropped by ``-pad`` on every side
        (constant slice bounds, so exported graphs hold no shape arithmetic)."""
        return x if pad >= 0 else x[..., -pad:pad, -pad:pad]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deployed:
            return torch.cat([conv(self._crop(x, self.padding - s)) for s, conv in enumerate(self.blocks)], 1)
        k, block = self.kernel_size, self.out_chs // self.num_scales
        outs = []
        for s in range(self.num_scales):
            pad = self.padding - s
            bias = self.bias[s * block : (s + 1) * block] if self.bias is not None else None
            outs.append(
                F.conv2d(self._crop(x, pad), self.weight[:, :, s : k - s, s : k - s], bias, self.stride, max(pad, 0))
            )
        return torch.cat(outs, 1)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Deploy form: ``blocks``, one ``nn.Conv2d`` (with bias) per filter size. Idempotent."""
        if self.deployed:
            return
        k, block = self.kernel_size, self.out_chs // self.num_scales
        blocks = nn.ModuleList()
        for s in range(self.num_scales):
            conv = nn.Conv2d(
                self.in_chs,
                block,
                k - 2 * s,
                self.stride,
                max(self.padding - s, 0),
                device=self.weight.device,
                dtype=self.weight.dtype,
            )
            conv.weight.copy_(self.weight[:, :, s : k - s, s : k - s])
            conv.bias.copy_(self.bias[s * block : (s + 1) * block] if self.bias is not None else 0)
            blocks.append(conv)
        self.blocks = blocks
        del self.weight, self.bias
        self.deployed = True

    @torch.no_grad()
    def fold_batchnorm(self, bn: nn.BatchNorm2d) -> None:
        """Fold the eval-mode BatchNorm that follows this layer into the deploy form's convolutions."""
        self.reparameterize()
        for s, conv in enumerate(self.blocks):
            c = slice(s * conv.out_channels, (s + 1) * conv.out_channels)
            conv.weight, conv.bias = fuse_conv_bn_weights(
                conv.weight, conv.bias, bn.running_mean[c], bn.running_var[c], bn.eps, bn.weight[c], bn.bias[c]
            )

    def extra_repr(self) -> str:
        return (
            f"{self.in_chs}, {self.out_chs}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}" + ("" if self.deployed else f", bias={self.bias is not None}")
        )
