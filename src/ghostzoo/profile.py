"""Parameter and MAC counts, in total and per stage.

MACs come from ``torch.utils.flop_counter`` (maintained with PyTorch), which counts the FLOPs of
convolutions and matrix products, 2 per multiply-accumulate. We add fvcore's convention for
BatchNorm (2 per element in eval: scale and shift), LayerNorm and GroupNorm (5 per element, 4
without affine), fused attention on CPU (its two matrix products), nearest upsampling (1 per output
element; GhostNetV2's DFC attention) and adaptive average pooling (1 per input element, module or
functional; a bare ``x.mean`` is not counted, as fvcore does not, and neither is a pool whose
output equals its input), so the totals equal the fvcore counts recorded with the official models
in the golden files; ``conv_linear_macs`` keeps the bare convolution and matrix count, which is what
the papers' FLOP tables report. Activations and adds are not counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


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


def _norm_flops(input_shape, has_affine: bool) -> int:
    return 2 * (5 if has_affine else 4) * _shape_numel(input_shape)  # fvcore's estimate, as FLOPs


def _group_norm_flops(input_shape, weight_shape=None, *args, **kwargs) -> int:
    return _norm_flops(input_shape, weight_shape is not None)


def _layer_norm_flops(input_shape, normalized_shape=None, weight_shape=None, *args, **kwargs) -> int:
    return _norm_flops(input_shape, weight_shape is not None)


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _upsample_flops(input_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * _shape_numel(out_shape)  # 1 MAC per output element (fvcore's upsample rule), as FLOPs


# flop_counter looks formulas up by operator packet. Upsampling also needs its overload listed:
# an operator whose overload is not registered is decomposed first, and its parts count nothing.
_FVCORE_EXTRAS = {
    torch.ops.aten.native_batch_norm: _batch_norm_flops,
    torch.ops.aten._native_batch_norm_legit_no_training: _batch_norm_flops,
    torch.ops.aten.native_group_norm: _group_norm_flops,
    torch.ops.aten.native_layer_norm: _layer_norm_flops,
    torch.ops.aten.upsample_nearest2d: _upsample_flops,
    torch.ops.aten.upsample_nearest2d.default: _upsample_flops,
}
_MATMUL_LIKE = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}


class _PoolCounter(TorchFunctionMode):
    """Counts adaptive average pooling per module.

    Pooling has to be caught above the dispatcher: there a global pool and ``x.mean`` are the same
    operator, while fvcore (and so the golden numbers) counts only the former.
    """

    POOLS = {F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d}

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.macs: Dict[str, int] = {}
        self._stack: List[str] = []
        names = {m: n for n, m in model.named_modules()}
        self._hooks = []
        for module, name in names.items():
            self._hooks.append(module.register_forward_pre_hook(self._enter(name)))
            self._hooks.append(module.register_forward_hook(self._leave))

    def _enter(self, name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            self._stack.append(name)

        return hook

    def _leave(self, module: nn.Module, args: tuple, output) -> None:
        self._stack.pop()  # returns None: a forward hook's return value would replace the output

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in self.POOLS and out.shape != args[0].shape:
            name = self._stack[-1] if self._stack else ""
            self.macs[name] = self.macs.get(name, 0) + args[0].numel()
        return out


def count_params(model: nn.Module) -> int:
    """All parameters, frozen ones included (the convention of the official numbers)."""
    return sum(p.numel() for p in model.parameters())


def _stage_groups(model: nn.Module) -> List[Tuple[str, List[str], Optional[dict]]]:
    """Split the children (containers opened one level) at the ``feature_info`` taps; whatever
    follows the last tap is the head."""
    names = [
        f"{name}.{sub}" if isinstance(child, (nn.Sequential, nn.ModuleList)) else name
        for name, child in model.named_children()
        for sub in (dict(child.named_children()) if isinstance(child, (nn.Sequential, nn.ModuleList)) else [""])
    ]
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
    counter = FlopCounterMode(display=False, custom_mapping={**_FVCORE_EXTRAS, **_MATMUL_LIKE})
    pools = _PoolCounter(model)
    try:
        with counter, pools, torch.no_grad():
            model(x)
    finally:
        pools.remove()
    pool_macs = pools.macs
    per_module = counter.get_flop_counts()
    conv_linear = sum(c for op, c in per_module.get("Global", {}).items() if op not in _FVCORE_EXTRAS)
    root = type(model).__name__

    def macs_of(name: str) -> int:
        """A module's MACs; a container that is never called itself (ModuleList) sums its children."""
        key = f"{root}.{name}"
        pooled = sum(v for k, v in pool_macs.items() if k == name or k.startswith(name + "."))
        if key in per_module:
            return int(sum(per_module[key].values())) // 2 + pooled
        children = [f"{name}.{child}" for child, _ in model.get_submodule(name).named_children()]
        return sum(macs_of(child) for child in children) if children else pooled

    stages = []
    for label, names, info in _stage_groups(model):
        stages.append(
            StageProfile(
                name=label,
                modules=names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]}",
                reduction=info["reduction"] if info else None,
                channels=info["num_chs"] if info else None,
                params=sum(count_params(model.get_submodule(n)) for n in names),
                macs=sum(macs_of(n) for n in names),
            )
        )
    total = int(counter.get_total_flops()) // 2 + sum(pool_macs.values())
    own_params = sum(p.numel() for p in model.parameters(recurse=False))
    own_macs = total - sum(s.macs for s in stages)
    if own_params or own_macs:  # position embeddings, class tokens, work done in forward() itself
        stages.append(StageProfile("model", "(its own parameters and operations)", None, None, own_params, own_macs))
    return ModelProfile(tuple(input_size), count_params(model), total, int(conv_linear) // 2, stages)
