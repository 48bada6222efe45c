"""Scaled dot-product attention written out as matrix products.

``F.scaled_dot_product_attention`` is invisible to FLOP counters (``torch.utils.flop_counter`` on
CPU, fvcore), so families whose MACs are checked against the official counts compute it explicitly.
"""

from __future__ import annotations

from typing import Optional

import torch


def dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d) + bias) v`` with ``q [B, heads, N, d]`` and ``k, v [B, heads, M, d]``."""
    attn = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if bias is not None:
        attn = attn + bias
    return attn.softmax(dim=-1) @ v
