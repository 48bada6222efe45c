"""k-nearest-neighbour graphs over feature maps (the graph of Vision GNN, Han et al., NeurIPS 2022).

Each node (pixel) of ``x`` is linked to the ``k`` nodes of ``y`` closest to it in feature space,
taking every ``dilation``-th of the ``k * dilation`` nearest so that deeper layers see further.

Choosing neighbours is discontinuous: where two candidates are nearly tied, float32 rounding (another
runtime, thread count or kernel) can swap them, and the swap then spreads through the later layers.
:func:`neighbour_choices` records the choices a model makes, or makes it take given ones, so that an
exported graph can be compared with PyTorch on the same neighbours (see ``ghostzoo.deploy.export``).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, List, Optional, Sequence

import torch


class NeighbourChoices:
    """The neighbour lists (``[B, N, count]`` indices, nearest first) of every k-NN graph built while
    active, in call order: those the model chose, or, in replay mode, those it was given.

    When replaying, ``slack`` is how far the given lists are from the model's own choice: the largest
    difference, over nodes and ranks, between the score of the j-th nearest candidate and of the
    j-th given neighbour (0 when they are the same; near-ties give rounding-sized values).
    """

    def __init__(self, replay: Optional[Sequence[torch.Tensor]] = None) -> None:
        self.replay = None if replay is None else list(replay)
        self.choices: List[torch.Tensor] = []
        self.slack = 0.0

    def select(self, score: torch.Tensor, count: int) -> torch.Tensor:
        best = score.topk(count, dim=-1)
        if self.replay is None:
            chosen = best.indices
        else:
            if len(self.choices) == len(self.replay):
                raise ValueError(f"the model builds more than the {len(self.replay)} graphs given to replay")
            chosen = torch.as_tensor(self.replay[len(self.choices)]).to(score.device, torch.long)
            if chosen.shape != best.indices.shape:
                raise ValueError(
                    f"graph {len(self.choices)}: replayed neighbours have shape {tuple(chosen.shape)},"
                    f" the model needs {tuple(best.indices.shape)}"
                )
            self.slack = max(self.slack, float((best.values - score.gather(-1, chosen)).abs().max()))
        self.choices.append(chosen)
        return chosen


_ACTIVE: ContextVar[Optional[NeighbourChoices]] = ContextVar("ghostzoo_neighbour_choices", default=None)


@contextmanager
def neighbour_choices(replay: Optional[Sequence[torch.Tensor]] = None) -> Iterator[NeighbourChoices]:
    """Record the neighbours every :func:`knn_graph` call chooses meanwhile, or, given ``replay`` (the
    lists of a recording or of an exported graph's ``TopK`` nodes), use those instead."""
    session = NeighbourChoices(replay)
    token = _ACTIVE.set(session)
    try:
        yield session
    finally:
        _ACTIVE.reset(token)


def knn_graph(
    x: torch.Tensor, y: torch.Tensor, k: int, dilation: int = 1, relative_pos: Optional[torch.Tensor] = None
) -> torch.Tensor:
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
        session = _ACTIVE.get()
        count = k * dilation
        neighbours = score.topk(count, dim=-1).indices if session is None else session.select(score, count)
    return neighbours[..., ::dilation] if dilation > 1 else neighbours
