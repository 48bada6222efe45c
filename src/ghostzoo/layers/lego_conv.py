"""Lego filters (Yang et al., "LegoNet: Efficient Convolutional Neural Networks with Lego Filters", ICML 2019).

A layer stores a few small "lego" filters that span 1/n_split of the input channels; every output
filter is assembled from one scaled lego per input split, so the convolution runs once per lego and
a cheap 1x1 step combines the results.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval


class LegoConv2d(nn.Module):
    """A ``kernel_size`` convolution built from ``int(out_chs * n_lego)`` lego filters.

    Parameters (official keys): ``lego`` ``[n_legos, in_chs / n_split, k, k]``;
    ``aux_combination`` ``[n_split, out_chs, n_legos, 1, 1]`` whose argmax over the legos picks, per
    split and output channel, which lego is used; ``aux_coefficients`` (same shape) scales it.

    The legos run over all splits at once (splits folded into the batch), and the per-split 1x1
    combinations are summed by one 1x1 convolution over the concatenated lego maps. In training the
    one-hot choice passes its gradient straight through to ``aux_combination``, which is what the
    official training loop does by copying it over (its lego-balancing term is not part of the layer).

    ``reparameterize()`` switches to the deploy form, two plain convolutions with the same
    multiply-adds: ``legos``, grouped by split (each group holds the same legos), and ``combine``,
    the 1x1 kernel with the choice already made; ``combine`` absorbs a following BatchNorm
    (``fold_batchnorm``).
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, n_split: int = 2, n_lego: float = 0.5) -> None:
        super().__init__()
        if in_chs % n_split:
            raise ValueError(f"LegoConv2d: in_chs ({in_chs}) must be divisible by n_split ({n_split})")
        self.in_chs, self.out_chs, self.kernel_size, self.n_split = in_chs, out_chs, kernel_size, n_split
        self.n_legos = int(out_chs * n_lego)
        self.lego = nn.Parameter(torch.empty(self.n_legos, in_chs // n_split, kernel_size, kernel_size))
        self.aux_coefficients = nn.Parameter(torch.empty(n_split, out_chs, self.n_legos, 1, 1))
        self.aux_combination = nn.Parameter(torch.empty(n_split, out_chs, self.n_legos, 1, 1))
        self.deployed = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He normal (fan-in) for all three, as in the official layer."""
        for p in (self.lego, self.aux_coefficients, self.aux_combination):
            nn.init.kaiming_normal_(p)

    def combination_kernel(self) -> torch.Tensor:
        """The ``[out_chs, n_split * n_legos, 1, 1]`` 1x1 kernel that assembles the output channels."""
        comb = self.aux_combination
        one_hot = torch.zeros_like(comb).scatter_(2, comb.argmax(dim=2, keepdim=True), 1.0)
        choice = one_hot + (comb - comb.detach())  # value: the one-hot; gradient: straight through
        kernel = self.aux_coefficients * choice
        return kernel.transpose(0, 1).reshape(self.out_chs, self.n_split * self.n_legos, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deployed:
            return self.combine(self.legos(x))
        batch, _, height, width = x.shape
        splits = x.reshape(batch * self.n_split, self.in_chs // self.n_split, height, width)
        legos = F.conv2d(splits, self.lego, padding=self.kernel_size // 2)
        legos = legos.reshape(batch, self.n_split * self.n_legos, *legos.shape[-2:])
        return F.conv2d(legos, self.combination_kernel())

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Deploy form: ``legos`` (grouped conv) then ``combine`` (1x1 conv). Idempotent."""
        if self.deployed:
            return
        k, mid = self.kernel_size, self.n_split * self.n_legos
        legos = nn.Conv2d(
            self.in_chs,
            mid,
            k,
            padding=k // 2,
            groups=self.n_split,
            bias=False,
            device=self.lego.device,
            dtype=self.lego.dtype,
        )
        legos.weight.copy_(self.lego.repeat(self.n_split, 1, 1, 1))  # group g, lego l -> channel g * n_legos + l
        combine = nn.Conv2d(mid, self.out_chs, 1, bias=False, device=self.lego.device, dtype=self.lego.dtype)
        combine.weight.copy_(self.combination_kernel())
        self.legos, self.combine = legos, combine
        del self.lego, self.aux_coefficients, self.aux_combination
        self.deployed = True

    def fold_batchnorm(self, bn: nn.BatchNorm2d) -> None:
        """Fold the eval-mode BatchNorm that follows this layer into the deploy form's ``combine``."""
        self.reparameterize()
        self.combine = fuse_conv_bn_eval(self.combine.eval(), bn)

    def extra_repr(self) -> str:
        return (
            f"{self.in_chs}, {self.out_chs}, kernel_size={self.kernel_size}, n_split={self.n_split}, "
            f"n_legos={self.n_legos}"
        )
