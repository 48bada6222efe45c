"""``features_only``: a module that returns the feature maps listed in a model's ``feature_info``.

For models whose ``forward_features`` is a chain of their child modules, :class:`FeatureListNet`
does it without help: a model lists its taps in ``feature_info`` (``num_chs``, ``reduction``,
``module``); the wrapper runs the chain up to the deepest requested tap and returns the maps at the
requested ones, and replaces everything after that tap (late blocks, head) by ``nn.Identity`` so
it costs nothing. Models whose blocks pass more than one tensor along (TNT's words and sentences)
cannot be a chain; they implement ``forward_feature_maps`` / ``prune_feature_maps`` and get
:class:`FeatureMapsNet` (:func:`create_feature_net` picks the right one).

A chain model whose ``forward_features`` has a step that is not a child module (ViG adds its
position embedding, a parameter, after the stem) lists its chain itself in ``feature_chain``: names of
submodules or of its own methods, in order.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..errors import GhostzooError


def chain_modules(model: nn.Module) -> Iterator[Tuple[str, nn.Module]]:
    """Top-level children in order, with ``nn.Sequential`` children flattened one level."""
    for name, child in model.named_children():
        if isinstance(child, nn.Sequential):
            for sub_name, sub in child.named_children():
                yield f"{name}.{sub_name}", sub
        else:
            yield name, child


def resolve_out_indices(num_features: int, out_indices: Optional[Sequence[int]]) -> List[int]:
    if out_indices is None:
        return list(range(num_features))
    resolved = []
    for i in out_indices:
        j = i + num_features if i < 0 else i
        if not 0 <= j < num_features:
            raise GhostzooError(
                f"out_indices {tuple(out_indices)} out of range: this model has "
                f"{num_features} feature levels (0..{num_features - 1})"
            )
        resolved.append(j)
    if sorted(set(resolved)) != resolved:
        raise GhostzooError(f"out_indices must be increasing and unique, got {tuple(out_indices)}")
    return resolved


def _chain_step(model: nn.Module, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The submodule, or bound method, called ``name`` (dotted) in ``model``."""
    step = model
    for part in name.split("."):
        step = getattr(step, part)
    return step


class FeatureListNet(nn.Module):
    """Wraps a classification model and returns a list of feature maps instead of logits."""

    def __init__(self, model: nn.Module, out_indices: Optional[Sequence[int]] = None) -> None:
        super().__init__()
        info: List[Dict] = list(model.feature_info)
        self.out_indices = resolve_out_indices(len(info), out_indices)
        taps = {info[i]["module"]: i for i in self.out_indices}
        custom_chain = getattr(model, "feature_chain", None)
        names = list(custom_chain) if custom_chain is not None else [n for n, _ in chain_modules(model)]
        missing = [t for t in taps if t not in names]
        if missing:
            raise GhostzooError(f"{type(model).__name__} has no module {missing[0]!r} to tap")
        last = max(names.index(t) for t in taps)
        for name in names[last + 1 :]:
            if isinstance(_chain_step(model, name), nn.Module):
                model.set_submodule(name, nn.Identity())
        self.model = model
        self._steps = [(name, name in taps) for name in names[: last + 1]]
        self.feature_info = [dict(info[i]) for i in self.out_indices]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        outs = []
        for name, is_tap in self._steps:
            x = _chain_step(self.model, name)(x)
            if is_tap:
                outs.append(x)
        return outs


class FeatureMapsNet(nn.Module):
    """``features_only`` for a model that computes its own feature maps.

    The model provides ``forward_feature_maps(x, indices)``, returning the maps of the
    ``feature_info`` levels in ``indices`` (increasing), and ``prune_feature_maps(last)``, which
    drops what the level ``last`` does not need.
    """

    def __init__(self, model: nn.Module, out_indices: Optional[Sequence[int]] = None) -> None:
        super().__init__()
        info: List[Dict] = list(model.feature_info)
        self.out_indices = resolve_out_indices(len(info), out_indices)
        model.prune_feature_maps(self.out_indices[-1])
        self.model = model
        self.feature_info = [dict(info[i]) for i in self.out_indices]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self.model.forward_feature_maps(x, self.out_indices)


def create_feature_net(model: nn.Module, out_indices: Optional[Sequence[int]] = None) -> nn.Module:
    """The ``features_only`` module of ``model``: its own feature maps if it computes them, else the chain."""
    if hasattr(model, "forward_feature_maps"):
        return FeatureMapsNet(model, out_indices)
    return FeatureListNet(model, out_indices)
