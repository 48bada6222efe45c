"""The fake-quantized model: one ``torch.fx`` graph that PTQ calibrates, QAT trains and ONNX exports.

:func:`prepare` takes a float model of a supported family and returns a ``GraphModule`` that
computes what the int8 runtime computes:

1. the deploy form, exactly equal to the float model in eval mode: GhostNetV3 branches fused and
   BatchNorm folded (``ghostzoo.deploy.reparameterize``), after timm's ``BatchNormAct2d`` (TinyNet)
   is split into its BatchNorm and activation, and LegoNet / Versatile-filter convolutions, which
   build their kernels on the fly, are written as the plain convolutions they are equal to;
2. every ``Conv2d`` / ``Linear`` gets int8 per-channel fake-quantized weights;
3. a uint8 :class:`ActivationFakeQuant` goes on every activation tensor that an int8 operator reads
   or writes, placed where ONNX Runtime can fuse it: after the ReLU, not between a convolution and
   its ReLU (ORT folds the ReLU into the requantization of the convolution); on the model input; on
   both inputs and the output of ``add`` / ``mul`` / ``cat`` / pooling (QLinearAdd, QLinearMul,
   QLinearConcat, QLinearGlobalAveragePool). Shape-only steps (flatten, reshape, slicing, max
   pooling) keep the quantization of their input; the logits stay float.

Layers matched by ``keep_float`` patterns (``fnmatch`` over module names such as
``blocks.0.0.ghost1.cheap_operation.0``; a pattern also matches everything inside a matched
module) keep float weights and float inputs/outputs, with quantization only where their results
enter int8 layers again.
"""

from __future__ import annotations

import copy
import fnmatch
import operator
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from .._io import first_line
from ..deploy import reparameterize
from ..errors import GhostzooError
from ..layers.lego_conv import LegoConv2d
from ..layers.vconv import VConv2d
from ..registry import get_model_entry
from .fake_quant import ActivationFakeQuant, WeightFakeQuant, quantize_module
from .observers import create_observer

SUPPORTED_FAMILIES = (
    "ghostnet",
    "ghostnet_paddle",
    "ghostnetv2",
    "ghostnetv3",
    "ghost_resnet",
    "g_ghost_regnet",
    "tinynet",
    "legonet",
    "versatile_filters",
    "ghostnet_tf",
)


class UnsupportedModelError(GhostzooError):
    """A model whose family has no int8 path."""


# Activations ONNX Runtime folds into the requantization of the operator before them.
_FUSED_ACTIVATIONS = {nn.ReLU, nn.ReLU6, F.relu, torch.relu, F.relu6, "relu"}
# Steps that only move values: they keep their input's quantization.
_SHAPE_OPS = {
    nn.Flatten,
    nn.MaxPool2d,
    torch.flatten,
    torch.reshape,
    operator.getitem,
    F.max_pool2d,
    "flatten",
    "view",
    "reshape",
    "permute",
    "squeeze",
    "unsqueeze",
    "transpose",
}
# Steps that do nothing in eval mode; removed from the graph so they hide no ReLU from its producer
# (QAT, a short fine-tune, then runs without dropout).
_NO_OPS = {nn.Identity, nn.Dropout, F.dropout, "contiguous"}
_VALUE_OPS = ("placeholder", "call_module", "call_function", "call_method")


@dataclass
class QuantSpec:
    """What :func:`prepare` did, recorded in the int8 file's metadata."""

    observer: str
    keep_float: List[str] = field(default_factory=list)
    float_layers: List[str] = field(default_factory=list)  # weighted layers left float (patterns)
    int8_layers: int = 0
    activation_quantizers: int = 0


# CNN families left out, and why
NO_INT8_PATH = {
    "parameternet": "its dynamic convolutions mix a kernel per image from four experts, and an int8 "
    "convolution (ONNX QLinearConv) takes one fixed, quantized kernel",
}


def check_family(name: str) -> str:
    """The family of the registered model ``name``; raises :class:`UnsupportedModelError` if it has no int8 path."""
    entry = get_model_entry(name)
    if entry.family not in SUPPORTED_FAMILIES:
        why = f" ({NO_INT8_PATH[entry.family]})" if entry.family in NO_INT8_PATH else ""
        raise UnsupportedModelError(
            f"{entry.name} ({entry.family}) has no int8 path{why}; supported families: {', '.join(SUPPORTED_FAMILIES)}"
        )
    return entry.family


def check_supported(model: nn.Module) -> str:
    """The family of ``model``; raises :class:`UnsupportedModelError` for the others."""
    cfg = getattr(model, "pretrained_cfg", None)
    if cfg is None or not cfg.architecture:
        raise GhostzooError(
            "int8 quantization takes a ghostzoo model (from create_model); this one has no pretrained_cfg"
        )
    return check_family(cfg.architecture)


def _split_norm_act(model: nn.Module) -> None:
    """timm's ``BatchNormAct2d`` -> ``Sequential(bn, drop, act)``, so that its BatchNorm folds."""
    from timm.layers import BatchNormAct2d

    for name, m in list(model.named_modules()):
        if isinstance(m, BatchNormAct2d):
            bn = nn.BatchNorm2d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
            bn.load_state_dict(m.state_dict())
            model.set_submodule(name, nn.Sequential(OrderedDict(bn=bn, drop=m.drop, act=m.act)))


@torch.no_grad()
def _vconv_as_conv(m: VConv2d) -> nn.Conv2d:
    """A versatile convolution is a plain one whose block ``s`` filters are zero outside the centred
    ``(k - 2s)`` window: same padding, same output, one kernel call."""
    k, block = m.kernel_size, m.out_chs // m.num_scales
    conv = nn.Conv2d(m.in_chs, m.out_chs, k, m.stride, m.padding, bias=m.bias is not None)
    weight = torch.zeros_like(conv.weight)
    for s in range(m.num_scales):
        weight[s * block : (s + 1) * block, :, s : k - s, s : k - s] = m.weight[:, :, s : k - s, s : k - s]
    conv.weight.copy_(weight)
    if m.bias is not None:
        conv.bias.copy_(m.bias)
    return conv


@torch.no_grad()
def _lego_as_conv(m: LegoConv2d) -> nn.Conv2d:
    """Lego filters combined by the 1x1 kernel are one dense kernel: ``sum_l K[o, split, l] * lego[l]``."""
    comb = m.combination_kernel().reshape(m.out_chs, m.n_split, m.n_legos)
    weight = torch.einsum("osl,lchw->oschw", comb, m.lego).reshape(m.out_chs, m.in_chs, m.kernel_size, m.kernel_size)
    conv = nn.Conv2d(m.in_chs, m.out_chs, m.kernel_size, padding=m.kernel_size // 2, bias=False)
    conv.weight.copy_(weight)
    return conv


_AS_CONV: Dict[type, Callable[[nn.Module], nn.Conv2d]] = {VConv2d: _vconv_as_conv, LegoConv2d: _lego_as_conv}


def deploy_form(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in its plain-convolution deploy form (equal outputs in eval mode)."""
    model = copy.deepcopy(model).eval()
    _split_norm_act(model)
    for name, m in list(model.named_modules()):
        if type(m) in _AS_CONV:
            model.set_submodule(name, _AS_CONV[type(m)](m))
    reparameterize(model)
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False  # fake quantization returns new tensors; in-place ops would write into them
    return model


def _kind_key(node: torch.fx.Node, modules: Dict[str, nn.Module]) -> object:
    if node.op == "call_module":
        return type(modules[node.target])
    return node.target


def _module_path(node: torch.fx.Node) -> str:
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack.values()))[0] if stack else ""


def _ancestors(path: str) -> List[str]:
    parts = path.split(".") if path else []
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _remove_no_ops(gm: torch.fx.GraphModule, modules: Dict[str, nn.Module]) -> None:
    for node in list(gm.graph.nodes):
        if node.op in ("call_module", "call_function", "call_method") and _kind_key(node, modules) in _NO_OPS:
            if node.op == "call_function" and node.kwargs.get("training", False):
                continue
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)


def _is_float_tensor(node: torch.fx.Node) -> bool:
    meta = node.meta.get("tensor_meta")
    return isinstance(meta, TensorMetadata) and meta.dtype.is_floating_point


def _quantize_weights(
    gm: torch.fx.GraphModule,
    modules: Dict[str, nn.Module],
    nodes: List[torch.fx.Node],
    kept: Set[torch.fx.Node],
    spec: QuantSpec,
) -> None:
    """Swap every quantizable layer not ``kept`` float for its weight-fake-quantized form, counting both."""
    for n in nodes:
        if (
            n.op != "call_module"
            or n.target in spec.float_layers
            or isinstance(gm.get_submodule(n.target), WeightFakeQuant)
        ):
            continue  # a module called more than once is converted once
        quantized = None if n in kept else quantize_module(modules[n.target])
        if quantized is not None:
            gm.set_submodule(n.target, quantized)
            spec.int8_layers += 1
        elif isinstance(modules[n.target], (nn.Conv2d, nn.Linear)):
            spec.float_layers.append(str(n.target))


def prepare(
    model: nn.Module, observer: str = "minmax", keep_float: Sequence[str] = (), input_size: Optional[int] = None
) -> torch.fx.GraphModule:
    """The fake-quantized deploy form of ``model``, its activation quantizers observing (uncalibrated).

    The result carries ``pretrained_cfg`` and ``num_classes`` of ``model`` and a :class:`QuantSpec`
    as ``quant_spec``. ``input_size`` (default: the cfg's) only sizes the example used to trace
    tensor shapes; the model itself accepts any size the float one does.
    """
    check_supported(model)
    create_observer(observer)  # fail early on an unknown name
    cfg = model.pretrained_cfg
    float_model = deploy_form(model)
    try:
        gm = torch.fx.symbolic_trace(float_model)
    except Exception as e:  # noqa: BLE001 -- fx raises many types on code it cannot trace
        raise UnsupportedModelError(
            f"{cfg.architecture}: its graph cannot be traced for int8 ({type(e).__name__}: {first_line(e)})"
        ) from None
    modules = dict(gm.named_modules())
    _remove_no_ops(gm, modules)
    size = input_size or cfg.input_size[-1]
    with torch.no_grad():
        ShapeProp(gm).propagate(torch.zeros(1, cfg.input_size[0], size, size))

    nodes = [n for n in gm.graph.nodes]
    kept = {n for n in nodes if n.op.startswith("call") and _matches(_module_path(n), keep_float)}
    _check_patterns(keep_float, modules, nodes)
    spec = QuantSpec(observer=observer, keep_float=list(keep_float))

    # 1. weights
    _quantize_weights(gm, modules, nodes, kept, spec)

    # 2. activations
    def kind(n: torch.fx.Node) -> object:
        return _kind_key(n, modules)

    def feeds_output_only(n: torch.fx.Node) -> bool:
        return all(u.op == "output" or (kind(u) in _SHAPE_OPS and feeds_output_only(u)) for u in n.users)

    def int8_reader(u: torch.fx.Node) -> bool:
        return u.op.startswith("call") and u not in kept

    def needs_quantizer(n: torch.fx.Node) -> bool:
        if n.op not in _VALUE_OPS or not _is_float_tensor(n) or not n.users or feeds_output_only(n):
            return False
        if n.op == "placeholder" or n in kept:
            return any(int8_reader(u) for u in n.users)
        if n.op.startswith("call") and all(kind(u) in _FUSED_ACTIVATIONS and u not in kept for u in n.users):
            return False  # quantized after the activation instead
        return True

    quantizers: Set[torch.fx.Node] = set()
    for n in nodes:
        source = n.args[0] if n.args else None
        if kind(n) in _SHAPE_OPS and source in quantizers and n not in kept:
            quantizers.add(_insert_after(gm, n, source.target))  # the same quantizer: same grid, exact
            continue
        if needs_quantizer(n):
            name = f"act_fq_{spec.activation_quantizers}"
            gm.add_submodule(name, ActivationFakeQuant(create_observer(observer)))
            quantizers.add(_insert_after(gm, n, name))
            spec.activation_quantizers += 1
    for p in gm.parameters():
        p.requires_grad_(True)  # BatchNorm folding leaves the new biases frozen; QAT trains them
    gm.graph.lint()
    gm.recompile()
    gm.pretrained_cfg = cfg
    gm.num_classes = getattr(model, "num_classes", cfg.num_classes)
    gm.quant_spec = spec
    return gm


def _insert_after(gm: torch.fx.GraphModule, node: torch.fx.Node, target: str) -> torch.fx.Node:
    with gm.graph.inserting_after(node):
        q = gm.graph.call_module(target, (node,))
    node.replace_all_uses_with(q, delete_user_cb=lambda u: u is not q)
    q.meta = dict(node.meta)
    return q


def _matches(path: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(p, pat) for p in _ancestors(path) for pat in patterns)


def _check_patterns(patterns: Sequence[str], modules: Dict[str, nn.Module], nodes: List[torch.fx.Node]) -> None:
    paths: Set[str] = {p for n in nodes if n.op.startswith("call") for p in _ancestors(_module_path(n))}
    for pat in patterns:
        if not any(fnmatch.fnmatchcase(p, pat) for p in paths):
            examples = [name for name, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Linear))][:3]
            raise GhostzooError(f"--keep-float {pat!r} matches no layer; names look like {', '.join(examples)}")


def activation_quantizers(model: nn.Module) -> List[ActivationFakeQuant]:
    return [m for m in model.modules() if isinstance(m, ActivationFakeQuant)]


@torch.no_grad()
def calibrate(model: torch.fx.GraphModule, batches: Iterable[torch.Tensor]) -> int:
    """Observe the activations over ``batches`` (tensors of images), then fix every quantizer's grid.

    Returns the number of images seen.
    """
    quantizers = activation_quantizers(model)
    for q in quantizers:
        q.observing = True
    model.eval()
    seen = 0
    for images in batches:
        model(images)
        seen += len(images)
    if seen == 0:
        raise GhostzooError("no calibration images")
    for q in quantizers:
        q.freeze()
    return seen
