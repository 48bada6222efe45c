"""Resampling learned position embeddings to another token grid.

Transformers trained at one resolution learn one embedding per token position. To run them at
another resolution (or to load a checkpoint trained at another size), the embeddings are treated
as images over the token grid and resampled bicubically, as timm and DeiT do for ViTs. The same
function serves both moments: at load time a family's ``checkpoint_filter`` resizes the stored
tensors to the model's grid, and at forward time a model resizes them to the input's grid. Because
both use the same resampling, a model built at size S loaded from a checkpoint trained at size T
gives the same logits as the size-T model fed size-S images.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from timm.layers import resample_abs_pos_embed

from .patches import Grid


def square_grid(num_tokens: int) -> Grid:
    """The square grid that ``num_tokens`` positions were trained on (checkpoints store no shape)."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"{num_tokens} positions do not form a square grid; pass the grid explicitly")
    return side, side


def resize_pos_embed(
    pos_embed: torch.Tensor, old_grid: Sequence[int], new_grid: Sequence[int], num_prefix_tokens: int = 0
) -> torch.Tensor:
    """Resample an absolute embedding ``[1, prefix + H*W, C]`` from ``old_grid`` to ``new_grid``.

    Prefix tokens (a class token) have no position on the grid and are kept as they are.
    """
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    return resample_abs_pos_embed(
        pos_embed, new_size=list(new_grid), old_size=list(old_grid), num_prefix_tokens=num_prefix_tokens
    )


def resize_rel_pos_bias(
    bias: torch.Tensor,
    old_query: Sequence[int],
    new_query: Sequence[int],
    old_key: Sequence[int],
    new_key: Sequence[int],
) -> torch.Tensor:
    """Resample an attention bias ``[1, heads, Hq*Wq, Hk*Wk]`` learned between two token grids.

    Such a bias (PyramidTNT's ``relative_pos``) holds one value per (query position, key position)
    pair, so it is a 4-d image over both grids: it is resampled over the query grid first, then over
    the key grid, each time with the other positions and the heads carried as channels.
    """
    if tuple(old_query) == tuple(new_query) and tuple(old_key) == tuple(new_key):
        return bias
    heads, num_k = bias.shape[1], bias.shape[3]
    # query grid: tokens [1, Nq, heads * Nk]
    x = bias[0].permute(1, 0, 2).reshape(1, -1, heads * num_k)
    x = resize_pos_embed(x, old_query, new_query)
    num_q = x.shape[1]
    # key grid: tokens [1, Nk, Nq' * heads]
    x = x.reshape(num_q, heads, num_k).permute(2, 0, 1).reshape(1, num_k, num_q * heads)
    x = resize_pos_embed(x, old_key, new_key)
    return x.reshape(-1, num_q, heads).permute(2, 1, 0).unsqueeze(0)
