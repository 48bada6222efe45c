"""``reparameterize(model)``: the deploy form of any model of the zoo.

Two steps, both exact in eval mode:

1. every module that defines ``reparameterize()`` (GhostNetV3 and its blocks, the Lego and
   versatile convolutions) folds its training branches itself; the outermost such module is
   called, once;
2. every ``Conv2d -> BatchNorm2d`` pair left is folded into the convolution (which gains a bias),
   and the BatchNorm becomes ``nn.Identity``. timm's ``BatchNormAct2d`` (TinyNet) folds the same
   way and leaves its activation; a convolution of another type folds a BatchNorm that follows it
   when it defines ``fold_batchnorm(bn)`` (``LegoConv2d``, ``VConv2d``).

Pairs are found generically: a ``torch.fx`` trace of the model gives the true data flow, so a
pair counts only where the convolution's output goes to the BatchNorm and nowhere else, whatever
attributes hold the two modules. A model that fx cannot trace falls back to the pairs that are
adjacent in an ``nn.Sequential``, which are safe by construction. A model with nothing to fold is
left as it is. The module tree, ``forward_features``, ``feature_info`` and the head are kept, so a
deployed model is used exactly like the original one.
"""

from __future__ import annotations

from collections import Counter
from typing import Dict, List, Tuple

import torch
import torch.fx
import torch.nn as nn
from timm.layers import BatchNormAct2d
from torch.nn.utils.fusion import fuse_conv_bn_eval

Pair = Tuple[str, str]  # qualified names of (conv, bn)


def reparameterize(model: nn.Module) -> nn.Module:
    """Fold re-parameterizable branches and Conv+BN pairs of ``model`` in place; returns it.

    The model is put in eval mode first: folding uses the BatchNorm running statistics, so the
    deploy form reproduces the eval-mode outputs (up to float rounding) and is meant for inference.
    """
    model.eval()
    _call_reparameterize(model)
    fold_batchnorms(model)
    return model


def _call_reparameterize(module: nn.Module) -> None:
    fn = getattr(module, "reparameterize", None)
    if callable(fn):
        fn()
        return
    for child in list(module.children()):
        _call_reparameterize(child)


def _folds_batchnorm(conv: nn.Module) -> bool:
    return type(conv) is nn.Conv2d or callable(getattr(conv, "fold_batchnorm", None))


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (
        _folds_batchnorm(conv)
        and type(bn) in (nn.BatchNorm2d, BatchNormAct2d)
        and bn.track_running_stats
        and getattr(conv, "out_channels", bn.num_features) == bn.num_features
    )


def _after_fold(bn: nn.Module) -> nn.Module:
    """What is left of a folded BatchNorm: nothing, or (``BatchNormAct2d``) its dropout + activation."""
    rest = [
        m
        for m in (getattr(bn, "drop", None), getattr(bn, "act", None))
        if m is not None and not isinstance(m, nn.Identity)
    ]
    return nn.Sequential(*rest) if rest else nn.Identity()


class _Tracer(torch.fx.Tracer):
    """Keeps BatchNorms (timm's ``BatchNormAct2d`` too) and the convolutions that fold them as single
    calls, so that a pair shows up as two connected ``call_module`` nodes."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return (isinstance(m, nn.BatchNorm2d) or _folds_batchnorm(m)) or super().is_leaf_module(m, qualname)


def _traced_pairs(model: nn.Module, modules: Dict[str, nn.Module]) -> List[Pair]:
    graph = _Tracer().trace(model)
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module")
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
            continue
        src = node.args[0]
        if not isinstance(src, torch.fx.Node) or src.op != "call_module" or len(src.users) != 1:
            continue
        if calls[src.target] == 1 and calls[node.target] == 1 and _foldable(modules[src.target], modules[node.target]):
            pairs.append((src.target, node.target))
    return pairs


def _sequential_pairs(model: nn.Module) -> List[Pair]:
    pairs = []
    for name, seq in model.named_modules():
        if isinstance(seq, nn.Sequential):
            children = list(seq.named_children())
            for (a, conv), (b, bn) in zip(children, children[1:]):
                if _foldable(conv, bn):
                    prefix = f"{name}." if name else ""
                    pairs.append((prefix + a, prefix + b))
    return pairs


@torch.no_grad()
def fold_batchnorms(model: nn.Module) -> int:
    """Fold every ``Conv2d -> BatchNorm2d`` pair of ``model`` in place (see the module doc); returns how many.

    Uses the BatchNorm running statistics (eval-mode semantics). Modules that occur more than once
    in the tree (shared) are never folded.
    """
    modules = dict(model.named_modules())
    try:
        pairs = _traced_pairs(model, modules)
    except Exception:  # fx raises many types on untraceable code; adjacency is the safe fallback
        pairs = _sequential_pairs(model)
    occurrences = Counter(id(m) for _, m in model.named_modules(remove_duplicate=False))
    folded = 0
    for conv_name, bn_name in pairs:
        conv, bn = modules[conv_name], modules[bn_name]
        if occurrences[id(conv)] > 1 or occurrences[id(bn)] > 1:
            continue
        if type(conv) is nn.Conv2d:
            model.set_submodule(conv_name, fuse_conv_bn_eval(conv.eval(), bn.eval()))
        else:
            conv.fold_batchnorm(bn.eval())
        model.set_submodule(bn_name, _after_fold(bn))
        folded += 1
    return folded
