"""Block-circulant linear projection (Tang et al., "Augmented Shortcuts for Vision Transformers",
NeurIPS 2021).

The ``out x in`` weight is a grid of ``b x b`` circulant blocks, each defined by ``b`` numbers
instead of ``b * b``: a cheap, full-rank projection used for AugViT's augmented shortcuts.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def block_circulant_index(num_block_rows: int, num_block_cols: int, block: int) -> torch.Tensor:
    """Index into the flat parameter vector for every entry of the dense weight.

    Block ``(i, j)`` owns parameters ``[(i * cols + j) * b, (i * cols + j + 1) * b)``; inside a
    block, entry ``(r, s)`` takes parameter ``(r - s) mod b``, which makes the block circulant.
    """
    pos = torch.arange(block)
    within = (pos[:, None] - pos[None, :]) % block
    offsets = torch.arange(num_block_rows * num_block_cols).reshape(num_block_rows, num_block_cols) * block
    index = offsets[:, None, :, None] + within[None, :, None, :]
    return index.reshape(num_block_rows * block, num_block_cols * block)


class BlockCirculantLinear(nn.Module):
    """``F.linear`` with a block-circulant weight gathered from ``weight_list``.

    ``num_cir`` circulant blocks span the smaller of the two dimensions; the larger one gets
    proportionally more blocks. Keys (``weight_list``, ``index_matrix``, ``bias``) follow the
    official AugViT ``Circulant_Linear``; the index table is a persistent buffer because the official
    checkpoints store it.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, num_cir: int = 4) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        block = min(in_features, out_features) // num_cir
        if block == 0 or in_features % block or out_features % block:
            raise ValueError(f"{in_features} -> {out_features} features cannot be tiled by {num_cir} circulant blocks")
        rows, cols = out_features // block, in_features // block
        self.weight_list = nn.Parameter(torch.empty(rows * cols * block))
        self.register_buffer("index_matrix", block_circulant_index(rows, cols, block))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Linear``'s default init (uniform in +-1/sqrt(fan_in)), as the official layer does."""
        bound = 1 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight_list, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight_list[self.index_matrix], self.bias)
