"""TensorFlow's ``"SAME"`` padding, for weights that TensorFlow trained.

TensorFlow pads a strided convolution so that the output has ``ceil(size / stride)`` positions and
puts the odd pixel after: a 3x3 stride-2 convolution on an even-sized map pads (0, 1), where
PyTorch's ``padding=1`` pads (1, 1) and samples every window one pixel earlier. Weights trained with
one rule give different numbers under the other (14% of the logits, for the official TF GhostNet).

The amount depends on the input size, so it is computed when the model runs: :func:`pad_same` is
one ``torch.fx`` call (quantization and BatchNorm folding trace around it), and it reads the size as
Python integers, so an exported graph (ghostzoo exports at a fixed resolution) gets constant pads
and no shape arithmetic.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["SamePad2d", "pad_same", "same_conv2d"]


def _same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> Tuple[int, int]:
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: int, stride: int, dilation: int = 1) -> torch.Tensor:
    """``x`` zero-padded as TensorFlow's ``"SAME"`` pads it for a ``kernel`` x ``kernel`` convolution."""
    height, width = (int(s) for s in x.shape[-2:])
    top, bottom = _same_pads(height, kernel, stride, dilation)
    left, right = _same_pads(width, kernel, stride, dilation)
    return F.pad(x, (left, right, top, bottom))


torch.fx.wrap("pad_same")


class SamePad2d(nn.Module):
    """:func:`pad_same` as a module, placed before a convolution built with ``padding=0``."""

    def __init__(self, kernel_size: int, stride: int, dilation: int = 1) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pad_same(x, self.kernel_size, self.stride, self.dilation)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


def same_conv2d(
    in_chs: int,
    out_chs: int,
    kernel_size: int = 1,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = True,
) -> nn.Module:
    """``nn.Conv2d``'s signature with TensorFlow's ``"SAME"`` padding (``padding`` is ignored).

    At stride 1 with an odd kernel SAME is symmetric, so that is a plain ``nn.Conv2d``; otherwise it
    is ``nn.Sequential(SamePad2d, nn.Conv2d(padding=0))``, the convolution still a plain one for
    BatchNorm folding and int8.
    """
    if stride == 1 and kernel_size % 2 == 1:
        pad = dilation * (kernel_size // 2)
        return nn.Conv2d(in_chs, out_chs, kernel_size, 1, pad, dilation, groups, bias)
    conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, 0, dilation, groups, bias)
    return nn.Sequential(SamePad2d(kernel_size, stride, dilation), conv)
