"""k-nearest-neighbour graphs over feature maps (the graph of Vision GNN, Han et al., NeurIPS 2022).

Each node (pixel) of ``x`` is linked to the ``k`` nodes of ``y`` closest to it in feature space,
taking every ``dilation``-th of the ``k * dilation`` nearest so that deeper layers see further.
"""

from __future__ import annotations

from typing import Optional

import torch


def knn_graph(x: torch.Tensor, y: torch.Tensor, k: int, dilation: int = 1,
              relative_pos: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Indices ``[B, N, k']`` into the ``M`` nodes of ``y`` of the nearest neighbours of each node of ``x``.

    ``x`` is ``[B, C, N]`` and ``y`` ``[B, C, M]``, both L2-normalised over ``C``; ``relative_pos``
    (``[1 or B, N, M]``) is added to the squared distances, which is how Pyramid ViG favours nearby
    positions. The graph never asks for more neighbours than exist: ``k' = min(k, M)`` and the
    dilation shrinks to ``M // k'`` when ``k' * dilation`` would exceed ``M`` (small inputs).

    Memory: exactly one ``[B, N, M]`` score matrix is built and then updated in place. The squared
    distance ``|x|^2 - 2 x.y + |y|^2`` is ranked per row, where ``|x|^2`` is a constant, so the score
    ``2 x.y - |y|^2 - relative_pos`` (larger is nearer) gives the same neighbours without the
    temporaries of the full formula. No gradient flows through the graph, as in the paper.
    """
    num_nodes = y.shape[-1]
    k = min(k, num_nodes)
    dilation = max(1, min(dilation, num_nodes // k))
    with torch.no_grad():
        score = torch.bmm(x.transpose(1, 2), y)
        score.mul_(2).sub_(y.square().sum(1, keepdim=True))
        if relative_pos is not None:
            score.sub_(relative_pos)
        neighbours = score.topk(k * dilation, dim=-1).indices
    return neighbours[..., ::dilation] if dilation > 1 else neighbours
