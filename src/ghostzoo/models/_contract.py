"""timm's model contract, written once: the methods timm's tools call on a model.

timm's optimizer factory asks ``no_weight_decay()``, its feature extractors and the detection
frameworks' timm adapters ask ``forward_intermediates`` / ``prune_intermediate_layers``, fine-tuning
scripts ask ``get_classifier`` / ``reset_classifier``, memory-bound training asks
``set_grad_checkpointing``. Every ghostzoo family inherits :class:`TimmContract` and supplies only
what is its own: its head (``pretrained_cfg.classifier`` names it, ``_reset_head`` replaces it), the
parameters its reference keeps out of weight decay, and its feature taps (``feature_info``).

Intermediates of a CNN come from running the model's chain of child modules (nested
``nn.Sequential`` flattened one level) up to the deepest tap. A chain model whose
``forward_features`` has a step that is not a child module (ViG adds its position embedding, a
parameter, after the stem) lists its chain in ``feature_chain``: names of submodules or of its own
methods, in order. Families whose blocks pass more than one tensor along (TNT's words and
sentences) are no chain; they override ``forward_intermediates`` and ``prune_intermediate_layers``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, FrozenSet, Iterator, List, Optional, Sequence, Set, Tuple, Union

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from ..errors import GhostzooError

Indices = Union[int, Sequence[int], None]


def take_indices(num_levels: int, indices: Indices) -> List[int]:
    """timm's ``indices`` as increasing level numbers: None = every level, an int ``n`` = the last
    ``n``, a sequence = those levels (negative ones count from the end)."""
    if indices is None:
        return list(range(num_levels))
    if isinstance(indices, int):
        if not 0 < indices <= num_levels:
            raise GhostzooError(f"indices={indices}: this model has {num_levels} feature levels (1..{num_levels})")
        return list(range(num_levels - indices, num_levels))
    resolved = []
    for i in indices:
        j = i + num_levels if i < 0 else i
        if not 0 <= j < num_levels:
            raise GhostzooError(
                f"indices {tuple(indices)} out of range: this model has {num_levels} feature levels "
                f"(0..{num_levels - 1})"
            )
        resolved.append(j)
    if sorted(set(resolved)) != resolved:
        raise GhostzooError(f"indices must be increasing and unique, got {tuple(indices)}")
    return resolved


def check_output_fmt(output_fmt: str) -> None:
    if output_fmt != "NCHW":
        raise GhostzooError(f"output_fmt {output_fmt!r}: ghostzoo models give NCHW feature maps")


def chain_modules(model: nn.Module) -> Iterator[Tuple[str, nn.Module]]:
    """Top-level children in order, with ``nn.Sequential`` children flattened one level."""
    for name, child in model.named_children():
        if isinstance(child, nn.Sequential):
            for sub_name, sub in child.named_children():
                yield f"{name}.{sub_name}", sub
        else:
            yield name, child


def _chain_step(model: nn.Module, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The submodule, or bound method, called ``name`` (dotted) in ``model``."""
    step: Any = model
    for part in name.split("."):
        step = getattr(step, part)
    return step


def _run_in_order(modules: List[nn.Module], x: torch.Tensor) -> torch.Tensor:
    for module in modules:
        x = module(x)
    return x


class TimmContract:
    """timm's model methods for an ``nn.Module`` subclass (listed first among its bases)."""

    #: parameters the family's reference implementation keeps out of weight decay (beyond the 1-d
    #: ones, biases and norms, which timm's optimizer factory leaves out by itself)
    no_weight_decay_names: FrozenSet[str] = frozenset()  # TNT, PyramidTNT, AugViT: as their official code
    grad_checkpointing: bool = False

    def get_classifier(self) -> nn.Module:
        """The final classification layer (``nn.Identity`` after ``reset_classifier(0)``)."""
        return self.get_submodule(self.pretrained_cfg.classifier)

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """A fresh head for ``num_classes`` (0 removes it: forward returns the pre-logits features).

        ``global_pool``: timm's argument; ghostzoo models keep the pooling of their paper, so only
        None is taken.
        """
        if global_pool is not None:
            raise GhostzooError(f"global_pool={global_pool!r}: {type(self).__name__} keeps its own pooling")
        self._reset_head(num_classes)

    def _reset_head(self, num_classes: int) -> None:
        raise NotImplementedError

    def no_weight_decay(self) -> Set[str]:
        """Names of the parameters trained without weight decay (timm's optimizer factory reads it)."""
        return set(self.no_weight_decay_names)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in the backward pass instead of keeping them: less
        memory for a third more compute. BatchNorm running statistics are then updated twice per
        step (once more in the recomputation), as with timm's checkpointing."""
        self.grad_checkpointing = enable

    def run_block(self, block: Callable[..., Any], *args: Any) -> Any:
        """``block(*args)``, through activation checkpointing when it is on and gradients are taken."""
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def run_blocks(self, blocks: nn.Sequential, x: torch.Tensor, segments: Optional[int] = None) -> torch.Tensor:
        """``blocks(x)``; with checkpointing on, in ``segments`` checkpointed runs (default: one per
        block), the last one included (``torch.utils.checkpoint.checkpoint_sequential`` keeps it)."""
        if not (self.grad_checkpointing and torch.is_grad_enabled()):
            return blocks(x)
        modules = list(blocks)
        size = math.ceil(len(modules) / (segments or len(modules)))
        for start in range(0, len(modules), size):
            x = checkpoint(_run_in_order, modules[start : start + size], x, use_reentrant=False)
        return x

    def _prune_norm_and_head(self, levels: List[int], prune_norm: bool, prune_head: bool) -> List[int]:
        """The end of a token model's ``prune_intermediate_layers``: its final norm and head."""
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return levels

    @property
    def _chain(self) -> List[str]:
        custom = getattr(self, "feature_chain", None)
        return list(custom) if custom is not None else [name for name, _ in chain_modules(self)]

    def _taps(self, levels: Sequence[int]) -> List[str]:
        taps = [self.feature_info[i]["module"] for i in levels]
        missing = [t for t in taps if t not in self._chain]
        if missing:
            raise GhostzooError(f"{type(self).__name__} has no module {missing[0]!r} to tap")
        return taps

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Indices = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The feature maps at the ``feature_info`` levels in ``indices`` and, unless
        ``intermediates_only``, the output of ``forward_features`` (timm's signature).

        With ``intermediates_only`` the chain stops at the deepest level asked; otherwise one pass of
        ``forward_features`` gives both. ``norm`` and ``stop_early`` change nothing here: these models
        have no final norm on their feature maps, and stop early whenever only the maps are asked.
        """
        check_output_fmt(output_fmt)
        taps = self._taps(take_indices(len(self.feature_info), indices))
        if intermediates_only:
            return self._run_chain(x, taps)
        maps = {}
        hooks = [
            self.get_submodule(tap).register_forward_hook(lambda m, a, out, tap=tap: maps.__setitem__(tap, out))
            for tap in taps
        ]
        try:
            final = self.forward_features(x)
        finally:
            for hook in hooks:
                hook.remove()
        return final, [maps[tap] for tap in taps]

    def _run_chain(self, x: torch.Tensor, taps: List[str]) -> List[torch.Tensor]:
        chain, outs = self._chain, []
        for name in chain[: max(chain.index(t) for t in taps) + 1]:
            x = self.run_block(_chain_step(self, name), x)
            if name in taps:
                outs.append(x)
        return outs

    def prune_intermediate_layers(
        self, indices: Indices = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> List[int]:
        """Replace everything after the deepest level in ``indices`` (late blocks, head) by
        ``nn.Identity``, for a backbone that only gives feature maps; the levels kept, increasing."""
        if not prune_head:
            raise GhostzooError(f"{type(self).__name__} keeps its head only whole: prune with prune_head=True")
        levels = take_indices(len(self.feature_info), indices)
        chain = self._chain
        for name in chain[chain.index(self._taps(levels)[-1]) + 1 :]:
            if isinstance(_chain_step(self, name), nn.Module):
                self.set_submodule(name, nn.Identity())
        return levels
