"""Dynamic graph convolution on feature maps (Vision GNN, Han et al., NeurIPS 2022).

The graph is rebuilt from the features at every layer (k nearest neighbours, see ``knn_graph``);
a max-relative graph convolution then gives each node the largest difference to its neighbours.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .knn_graph import knn_graph


def max_over_neighbours(y: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """``out[b, :, n] = max_j y[b, :, neighbours[b, n, j]]`` for ``y`` ``[B, C, M]``: ``[B, C, N]``.

    The neighbours are gathered one rank at a time into a running maximum, so the ``[B, C, N, k]``
    tensor of all gathered features (k times the size of the feature map) is never materialised.
    """
    batch, chs, num_nodes = y.shape
    rows = y.transpose(1, 2).reshape(batch * num_nodes, chs)
    offsets = torch.arange(batch, device=y.device).view(batch, 1) * num_nodes

    def rank(j: int) -> torch.Tensor:  # the j-th neighbour of every node, [B * N, C]
        return rows.index_select(0, (neighbours[:, :, j] + offsets).reshape(-1))

    out = rank(0)
    for j in range(1, neighbours.shape[-1]):
        out = torch.maximum(out, rank(j))
    return out.view(batch, -1, chs).transpose(1, 2)


class MaxRelativeConv2d(nn.Module):
    """Max-relative graph convolution (Li et al., "DeepGCNs", ICCV 2019) on a ``[B, C, H, W]`` map.

    Each node ``x_i`` is paired with ``max_j (y_j - x_i)`` over its neighbours; the pairs go through a
    grouped 1x1 conv, BatchNorm and activation (the key ``nn.{0,1}`` of the official code). Since
    subtracting ``x_i`` is monotonic, ``max_j (y_j) - x_i`` is the same number and needs no
    ``[B, C, N, k]`` difference tensor. The pair is interleaved channel by channel, as officially.
    """

    def __init__(
        self, in_chs: int, out_chs: int, act_layer: Callable[..., nn.Module] = nn.GELU, groups: int = 4
    ) -> None:
        super().__init__()
        self.nn = nn.Sequential(nn.Conv2d(2 * in_chs, out_chs, 1, groups=groups), nn.BatchNorm2d(out_chs), act_layer())

    def forward(self, x: torch.Tensor, y: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        batch, chs, height, width = x.shape
        relative = max_over_neighbours(y.flatten(2), neighbours) - x.flatten(2)
        pairs = torch.stack([x.flatten(2), relative], dim=2).reshape(batch, 2 * chs, height, width)
        return self.nn(pairs)


class DynamicGraphConv2d(nn.Module):
    """k-NN graph of the current features, then a max-relative graph convolution.

    With ``reduction > 1`` the candidate neighbours are the nodes of the map average-pooled by that
    factor (Pyramid ViG's cheaper graph on high-resolution stages). Distances are measured between
    L2-normalised features; the convolution uses the features themselves.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        k: int = 9,
        dilation: int = 1,
        reduction: int = 1,
        act_layer: Callable[..., nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.k = k
        self.dilation = dilation
        self.reduction = reduction
        self.gconv = MaxRelativeConv2d(in_chs, out_chs, act_layer)

    def forward(self, x: torch.Tensor, relative_pos: Optional[torch.Tensor] = None) -> torch.Tensor:
        y = F.avg_pool2d(x, self.reduction) if self.reduction > 1 else x
        neighbours = knn_graph(
            F.normalize(x.flatten(2), dim=1), F.normalize(y.flatten(2), dim=1), self.k, self.dilation, relative_pos
        )
        return self.gconv(x, y, neighbours)
