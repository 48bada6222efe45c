"""Moving between image layout and token layout.

Vision transformers cut maps into non-overlapping patches and keep tokens row-major; these helpers
do that with reshapes only (no ``unfold``), so they trace and export cleanly and any grid works.
"""

from __future__ import annotations

from typing import Tuple

import torch

Grid = Tuple[int, int]


def patchify(x: torch.Tensor, size: int) -> Tuple[torch.Tensor, Grid]:
    """``[B, C, H, W]`` -> ``[B * gh * gw, C, size, size]`` patches, row-major, and ``(gh, gw)``.

    ``H`` and ``W`` must be multiples of ``size``.
    """
    B, C, H, W = x.shape
    gh, gw = H // size, W // size
    x = x.reshape(B, C, gh, size, gw, size).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B * gh * gw, C, size, size), (gh, gw)


def unpatchify(x: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``[B * gh * gw, C, s, s]`` -> ``[B, C, gh * s, gw * s]``."""
    _, C, sh, sw = x.shape
    gh, gw = grid
    x = x.reshape(-1, gh, gw, C, sh, sw).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(-1, C, gh * sh, gw * sw)


def tokens_to_map(tokens: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Row-major tokens ``[B, H * W, C]`` -> feature map ``[B, C, H, W]``."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, grid[0], grid[1])
