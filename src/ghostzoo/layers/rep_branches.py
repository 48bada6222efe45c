"""Structural re-parameterization (Ding et al., "RepVGG: Making VGG-style ConvNets Great Again",
CVPR 2021), in the form GhostNetV3 uses it.

While training, one k x k convolution is replaced by parallel branches whose outputs are summed:
``num_branches`` k x k conv+BN, a 1 x 1 conv+BN ("scale", when k > 1) and a BN alone ("skip", the
identity, when input and output match). Every branch is linear in eval mode, so for inference
they fold into a single k x k convolution with bias: the extra capacity costs nothing deployed.

The branches are registered directly on the module that owns them, as ``{prefix}_rpr_conv``,
``{prefix}_rpr_scale`` and ``{prefix}_rpr_skip`` (the official GhostNetV3 key names, so its
checkpoints load unchanged); hence functions over ``(module, prefix)`` rather than a submodule.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

_SUFFIXES = ("_rpr_skip", "_rpr_conv", "_rpr_scale")


class ConvBn(nn.Sequential):
    """Convolution without bias, then BatchNorm; keys ``conv.*`` and ``bn.*`` as in GhostNetV3."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            OrderedDict(
                conv=nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
                bn=nn.BatchNorm2d(out_chs),
            )
        )


def add_rep_branches(
    module: nn.Module,
    prefix: str,
    in_chs: int,
    out_chs: int,
    kernel_size: int,
    stride: int = 1,
    groups: int = 1,
    num_branches: int = 3,
) -> None:
    """Register the branch set of one re-parameterizable convolution on ``module``."""
    skip = nn.BatchNorm2d(in_chs) if in_chs == out_chs and stride == 1 else None
    setattr(module, f"{prefix}_rpr_skip", skip)
    setattr(
        module,
        f"{prefix}_rpr_conv",
        nn.ModuleList(ConvBn(in_chs, out_chs, kernel_size, stride, groups) for _ in range(num_branches)),
    )
    scale = ConvBn(in_chs, out_chs, 1, stride, groups) if kernel_size > 1 else None
    setattr(module, f"{prefix}_rpr_scale", scale)


def rep_branches_forward(module: nn.Module, prefix: str, x: torch.Tensor) -> torch.Tensor:
    """The training-time output: the sum of all branches of ``prefix`` applied to ``x``."""
    convs = getattr(module, f"{prefix}_rpr_conv")
    out = convs[0](x)
    for branch in convs[1:]:
        out = out + branch(x)
    for extra in (getattr(module, f"{prefix}_rpr_scale"), getattr(module, f"{prefix}_rpr_skip")):
        if extra is not None:
            out = out + extra(x)
    return out


def fold_bn(kernel: torch.Tensor, bn: nn.BatchNorm2d) -> Tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of ``bn(conv(x))`` for a bias-free conv with ``kernel`` (BN running stats)."""
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()
    return kernel * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


def _identity_kernel(ref: nn.Conv2d) -> torch.Tensor:
    """The k x k kernel (with ``ref``'s groups) that copies every input channel to the output."""
    w = ref.weight
    kernel = torch.zeros_like(w)
    chs_per_group = w.shape[1]
    idx = torch.arange(w.shape[0], device=w.device)
    kernel[idx, idx % chs_per_group, w.shape[2] // 2, w.shape[3] // 2] = 1
    return kernel


@torch.no_grad()
def fuse_rep_branches(module: nn.Module, prefix: str) -> nn.Conv2d:
    """Fold the branch set of ``prefix`` into one convolution with bias and remove the branches.

    Uses the BatchNorm running statistics, i.e. the result equals the module in eval mode.
    """
    convs = getattr(module, f"{prefix}_rpr_conv")
    scale: Optional[ConvBn] = getattr(module, f"{prefix}_rpr_scale")
    skip: Optional[nn.BatchNorm2d] = getattr(module, f"{prefix}_rpr_skip")
    ref: nn.Conv2d = convs[0].conv
    kernel, bias = fold_bn(ref.weight, convs[0].bn)
    for branch in convs[1:]:
        k, b = fold_bn(branch.conv.weight, branch.bn)
        kernel, bias = kernel + k, bias + b
    if scale is not None:
        k, b = fold_bn(scale.conv.weight, scale.bn)
        ph, pw = ref.kernel_size[0] // 2, ref.kernel_size[1] // 2
        kernel, bias = kernel + F.pad(k, [pw, pw, ph, ph]), bias + b
    if skip is not None:
        k, b = fold_bn(_identity_kernel(ref), skip)
        kernel, bias = kernel + k, bias + b

    fused = nn.Conv2d(
        ref.in_channels,
        ref.out_channels,
        ref.kernel_size,
        ref.stride,
        ref.padding,
        ref.dilation,
        ref.groups,
        bias=True,
        device=kernel.device,
        dtype=kernel.dtype,
    )
    fused.weight.copy_(kernel)
    fused.bias.copy_(bias)
    for suffix in _SUFFIXES:
        delattr(module, prefix + suffix)
    return fused
