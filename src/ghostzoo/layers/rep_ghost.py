"""GhostNetV3's re-parameterizable Ghost module (Liu et al., "GhostNetV3: Exploring the Training
Strategies for Compact Models", 2024, https://arxiv.org/abs/2404.11202).

The Ghost module of GhostNet/GhostNetV2 (optionally with DFC attention), except that both its
primary and its cheap convolution are trained as re-parameterizable branch sets
(``layers.rep_branches``). ``reparameterize()`` folds them into the plain ``primary_conv`` /
``cheap_operation`` of the deploy form, with the official deploy key names.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .ghost import ActLayer, GhostModule, make_act
from .rep_branches import add_rep_branches, fuse_rep_branches, rep_branches_forward


class RepGhostModule(GhostModule):
    """Ghost module with ``num_branches`` parallel conv+BN branches per convolution.

    Training form keys: ``primary_rpr_{conv,scale,skip}``, ``cheap_rpr_{conv,scale,skip}`` (the
    official ones; a branch kind that cannot exist for a layer's shape is absent, as there).
    """

    num_branches = 3  # the official GhostNetV3 setting

    def _build(
        self, in_chs: int, init_chs: int, new_chs: int, kernel_size: int, dw_size: int, stride: int, act_layer: ActLayer
    ) -> None:
        self.deployed = False
        add_rep_branches(self, "primary", in_chs, init_chs, kernel_size, stride, num_branches=self.num_branches)
        self.primary_activation = make_act(act_layer)
        add_rep_branches(self, "cheap", init_chs, new_chs, dw_size, 1, groups=init_chs, num_branches=self.num_branches)
        self.cheap_activation = make_act(act_layer)

    def _primary(self, x: torch.Tensor) -> torch.Tensor:
        if self.deployed:
            return self.primary_conv(x)
        return self.primary_activation(rep_branches_forward(self, "primary", x))

    def _cheap(self, x1: torch.Tensor) -> torch.Tensor:
        if self.deployed:
            return self.cheap_operation(x1)
        return self.cheap_activation(rep_branches_forward(self, "cheap", x1))

    def reparameterize(self) -> None:
        """Switch to the deploy form: one conv (with bias) + activation per operation. Idempotent."""
        if self.deployed:
            return
        self.primary_conv = nn.Sequential(fuse_rep_branches(self, "primary"), self.primary_activation)
        self.cheap_operation = nn.Sequential(fuse_rep_branches(self, "cheap"), self.cheap_activation)
        del self.primary_activation, self.cheap_activation
        self.deployed = True
