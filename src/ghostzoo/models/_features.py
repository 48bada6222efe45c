"""``features_only``: a backbone that returns feature maps instead of logits, as timm's are built.

The model is pruned after its deepest requested level (``prune_intermediate_layers``) and called
for its intermediates (``forward_intermediates``), the two methods of :mod:`._contract` that timm's
own feature wrapper uses; ``feature_info`` is timm's :class:`~timm.models.FeatureInfo`, so
``.channels()`` and ``.reduction()`` answer what detection and segmentation heads ask.
"""

from __future__ import annotations

import copy
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from timm.models._features import FeatureInfo


class BackboneFeatureInfo(FeatureInfo):
    """timm's ``FeatureInfo``, except that indexing, ``len()`` and iteration address the levels the
    backbone returns (as a ghostzoo backbone's list always has), not every level of the model;
    ``.info`` keeps them all, as in timm."""

    def __getitem__(self, item):
        return self.get_dicts()[item]

    def __len__(self) -> int:
        return len(self.out_indices)


class FeatureNet(nn.Module):
    """Wraps a classification model (in place: it is pruned) and returns the maps at ``out_indices``."""

    def __init__(self, model: nn.Module, out_indices: Optional[Sequence[int]] = None) -> None:
        super().__init__()
        info = copy.deepcopy(list(model.feature_info))
        levels = list(range(len(info))) if out_indices is None else list(out_indices)
        self.out_indices = model.prune_intermediate_layers(levels, prune_norm=True)  # maps, not logits
        self.model = model
        self.feature_info = BackboneFeatureInfo(info, tuple(self.out_indices))

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self.model.forward_intermediates(x, self.out_indices, intermediates_only=True)


def create_feature_net(model: nn.Module, out_indices: Optional[Sequence[int]] = None) -> FeatureNet:
    """The ``features_only`` module of ``model`` (which it prunes)."""
    return FeatureNet(model, out_indices)
