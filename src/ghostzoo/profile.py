"""Parameter and MAC counts, in total and per stage.

MACs come from ``torch.utils.flop_counter`` (maintained with PyTorch), which counts the FLOPs of
convolutions and matrix products, 2 per multiply-accumulate. We add fvcore's convention for
BatchNorm (2 per element in eval: scale and shift), global average pooling (1 per input
element) and nearest upsampling (1 per output element; GhostNetV2's DFC attention), so the totals
equal the fvcore counts recorded with the official models in the golden files and used by timm
and the papers' code; ``conv_linear_macs`` keeps the bare convolution and matrix count, which is
what the papers' FLOP tables report. Activations and adds are not counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .models._features import chain_modules


@dataclass
class StageProfile:
    name: str
    modules: str
    reduction: Optional[int]
    channels: Optional[int]
    params: int
    macs: int


@dataclass
class ModelProfile:
    input_size: Tuple[int, int, int]
    params: int
    macs: int
    conv_linear_macs: int
    stages: List[StageProfile]

    def to_dict(self) -> Dict:
        return asdict(self)


def _shape_numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _batch_norm_flops(input_shape, *args, **kwargs) -> int:
    return 2 * 2 * _shape_numel(input_shape)  # 2 MACs/element, as FLOPs


def _mean_flops(input_shape, *args, **kwargs) -> int:
    return 2 * _shape_numel(input_shape)  # 1 MAC/element (the global average pool), as FLOPs


def _upsample_flops(input_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * _shape_numel(out_shape)  # 1 MAC per output element (fvcore's upsample rule), as FLOPs


# flop_counter looks formulas up by operator packet. Upsampling also needs its overload listed:
# an operator whose overload is not registered is decomposed first, and its parts count nothing.
_FVCORE_EXTRAS = {
    torch.ops.aten.native_batch_norm: _batch_norm_flops,
    torch.ops.aten._native_batch_norm_legit_no_training: _batch_norm_flops,
    torch.ops.aten.mean: _mean_flops,
    torch.ops.aten.upsample_nearest2d: _upsample_flops,
    torch.ops.aten.upsample_nearest2d.default: _upsample_flops,
}


def count_params(model: nn.Module) -> int:
    """All parameters, frozen ones included (the convention of the official numbers)."""
    return sum(p.numel() for p in model.parameters())


def _stage_groups(model: nn.Module) -> List[Tuple[str, List[str], Optional[dict]]]:
    """Split the module chain at the ``feature_info`` taps; whatever follows the last is the head."""
    names = [n for n, _ in chain_modules(model)]
    taps = {info["module"]: info for info in getattr(model, "feature_info", [])}
    groups, current = [], []
    for name in names:
        current.append(name)
        if name in taps:
            groups.append((f"stage{len(groups)}", current, taps[name]))
            current = []
    if current:
        groups.append(("head", current, None))
    return groups


def profile_model(model: nn.Module, input_size: Tuple[int, int, int] = (3, 224, 224)) -> ModelProfile:
    """Count params and batch-1 MACs of ``model`` at ``input_size``, per stage."""
    model = model.eval()
    x = torch.zeros(1, *input_size)
    counter = FlopCounterMode(display=False, custom_mapping=_FVCORE_EXTRAS)
    with counter, torch.no_grad():
        model(x)
    per_module = counter.get_flop_counts()
    conv_linear = sum(c for op, c in per_module.get("Global", {}).items() if op not in _FVCORE_EXTRAS)
    root = type(model).__name__

    def macs_of(name: str) -> int:
        return int(sum(per_module.get(f"{root}.{name}", {}).values())) // 2

    stages = []
    for label, names, info in _stage_groups(model):
        stages.append(StageProfile(
            name=label,
            modules=names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]}",
            reduction=info["reduction"] if info else None,
            channels=info["num_chs"] if info else None,
            params=sum(count_params(model.get_submodule(n)) for n in names),
            macs=sum(macs_of(n) for n in names),
        ))
    total = int(counter.get_total_flops()) // 2
    return ModelProfile(tuple(input_size), count_params(model), total, int(conv_linear) // 2, stages)
