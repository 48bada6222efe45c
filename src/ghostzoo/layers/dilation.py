"""Output stride 16 or 8 for dense prediction: a CNN's later strides become dilation (DeepLab).

A segmentation backbone keeps its later feature maps large. The blocks that would take the network
past ``output_stride`` lose their stride, and every convolution after them is dilated by the
stride lost so far, so each kernel still spans the same part of the image and the trained weights
stay valid (shapes do not change: a stride-32 checkpoint loads as it is). In the block whose stride
is removed, the convolution that had it keeps the dilation it had and the ones that run on its
output take the new one (Ghost blocks have spatial convolutions after their strided one, where a
ResNet bottleneck has a 1x1). On a network of convolutions, BatchNorm and residual sums alone, the
dilated maps at every other position are then exactly the undilated maps.
"""

from __future__ import annotations

from typing import Dict, Iterable, List

import torch.nn as nn

from ..errors import GhostzooError

OUTPUT_STRIDES = (8, 16, 32)


def _block_stride(block: nn.Module) -> int:
    return max((conv.stride[0] for conv in _convs(block)), default=1)


def _convs(block: nn.Module) -> List[nn.Conv2d]:
    return [m for m in block.modules() if isinstance(m, nn.Conv2d)]


def _set_dilation(conv: nn.Conv2d, dilation: int) -> None:
    """Dilate a spatial convolution, keeping its "same" padding."""
    kh, kw = conv.kernel_size
    if (kh, kw) == (1, 1) or conv.dilation == (dilation, dilation):
        return
    if conv.padding != ((kh - 1) // 2 * conv.dilation[0], (kw - 1) // 2 * conv.dilation[1]):
        raise GhostzooError(f"cannot dilate a {kh}x{kw} convolution padded {conv.padding}: not 'same' padding")
    conv.dilation = (dilation, dilation)
    conv.padding = ((kh - 1) // 2 * dilation, (kw - 1) // 2 * dilation)


def _unstride(block: nn.Module, before: int, after: int) -> None:
    """Remove ``block``'s stride: its strided convolutions (and those before them) keep the dilation
    ``before``; the spatial convolutions that run on their output take ``after``. Convolutions are
    met in the order their modules are declared, which is the order they run in these blocks (a
    shortcut, declared last, has a strided convolution of its own)."""
    seen_stride = False
    for conv in _convs(block):
        if conv.stride != (1, 1):
            conv.stride, seen_stride = (1, 1), True
            _set_dilation(conv, before)
        else:
            _set_dilation(conv, after if seen_stride else before)


def check_output_stride(output_stride: int) -> None:
    if output_stride not in OUTPUT_STRIDES:
        raise GhostzooError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride}")


def set_output_stride(
    blocks: Iterable[nn.Module], feature_info: List[Dict], stride_in: int, output_stride: int
) -> None:
    """Dilate ``blocks`` (in the order they run, after a stem of stride ``stride_in``) so the network's
    stride stays at most ``output_stride``, and cap the ``reduction`` of its ``feature_info`` levels."""
    check_output_stride(output_stride)
    current, dilation = stride_in, 1
    for block in blocks:
        stride = _block_stride(block)
        if stride > 1 and current * stride > output_stride:
            _unstride(block, dilation, dilation * stride)
            dilation *= stride
        else:
            for conv in _convs(block):
                _set_dilation(conv, dilation)
            current *= stride
    for level in feature_info:
        level["reduction"] = min(level["reduction"], output_stride)
