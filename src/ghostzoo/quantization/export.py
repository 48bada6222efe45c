"""The int8 file: ONNX in QDQ form, with ghostzoo metadata, that ONNX Runtime runs on int8 kernels.

Either ONNX exporter writes every fake quantizer as a ``QuantizeLinear -> DequantizeLinear`` pair
(:mod:`.fake_quant` says how), with the weights still float. :func:`int8_proto` then makes it the
file a QDQ runtime expects:

* weight ``QuantizeLinear`` nodes are evaluated once: the file stores int8 weights (a quarter of
  the float size) feeding ``DequantizeLinear`` (zero point 0, one scale per output channel);
* biases become int32 with scale ``input_scale * weight_scale`` behind their own
  ``DequantizeLinear``, which is what lets ORT fuse ``DQ -> Conv -> Q`` into ``QLinearConv``
  (u8 activations x s8 weights, VNNI on x86) and ``DQ -> Gemm`` into ``QGemm``;
* the model's cfg and the quantization scheme go into the ``ghostzoo`` metadata entry, so
  ``validate`` / ``predict`` / ``benchmark`` take the file alone (``ghostzoo.deploy.runtime``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn

from .._io import write_bytes_atomic
from ..deploy.onnx_export import drop_unused_initializers, failure_line, initializers, onnx_proto
from ..deploy.runtime import write_onnx_metadata
from ..errors import GhostzooError
from .fake_quant import WeightFakeQuant, pinned_qparams, weight_scales


def _inline_constants(graph: Any) -> None:
    """``Constant`` nodes -> initializers, and ``Identity`` of an initializer -> the initializer itself."""
    from onnx import helper, numpy_helper

    consts = initializers(graph)
    rename: Dict[str, str] = {}
    keep = []
    for node in graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            array = numpy_helper.to_array(helper.get_attribute_value(node.attribute[0]))
            graph.initializer.append(numpy_helper.from_array(array, node.output[0]))
            consts[node.output[0]] = array
        elif node.op_type == "Identity" and node.input[0] in consts:
            rename[node.output[0]] = node.input[0]
        else:
            keep.append(node)
    for out in graph.output:
        if out.name in rename:
            raise GhostzooError("the exported graph's output is a constant")
    del graph.node[:]
    graph.node.extend(keep)


def _quantize_linear(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int) -> np.ndarray:
    """ONNX ``QuantizeLinear``: saturate(round_half_even(x / scale) + zero_point)."""
    shape = [1] * x.ndim
    if scale.ndim == 1:
        shape[axis] = -1
    info = np.iinfo(zero_point.dtype)
    q = np.rint(x.astype(np.float32) / scale.reshape(shape).astype(np.float32)) + zero_point.reshape(shape).astype(
        np.int64
    )
    return np.clip(q, info.min, info.max).astype(zero_point.dtype)


def _fold_weight_quantization(graph: Any) -> int:
    """Replace every ``QuantizeLinear`` of constants (and the ``Clip`` to ``[quant_min, quant_max]`` the
    exporter puts behind a per-channel one) by the integer tensor it computes, named after its float
    source (``conv_stem.weight`` -> ``conv_stem.weight_int8``)."""
    from onnx import numpy_helper

    consts = initializers(graph)
    keep, rename = [], {}
    for node in graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
        if node.op_type == "QuantizeLinear" and all(i in consts for i in node.input):
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            q = _quantize_linear(*(consts[i] for i in node.input), axis=axis)
            name = f"{node.input[0]}_{q.dtype}"
        elif node.op_type == "Clip" and node.input[0] in rename.values() and all(i in consts for i in node.input):
            q = np.clip(*(consts[i] for i in node.input)).astype(consts[node.input[0]].dtype)
            name = node.input[0]
        else:
            keep.append(node)
            continue
        while name in consts and not np.array_equal(consts[name], q):  # the exporter shares equal weights
            name += "_"
        if name not in consts:
            graph.initializer.append(numpy_helper.from_array(q, name))
        consts[name], rename[node.output[0]] = q, name
    del graph.node[:]
    graph.node.extend(keep)
    return len(rename)


def _quantize_biases(graph: Any) -> int:
    """Float biases of Conv / Gemm whose input and weight are dequantized -> int32 + DequantizeLinear."""
    from onnx import helper, numpy_helper

    consts = initializers(graph)
    producer = {o: n for n in graph.node for o in n.output}

    def dq_scale(name: str) -> Optional[np.ndarray]:
        node = producer.get(name)
        if node is None or node.op_type != "DequantizeLinear" or node.input[1] not in consts:
            return None
        return consts[node.input[1]].astype(np.float32)

    new_nodes: List[Any] = []
    count = 0
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm") and len(node.input) == 3 and node.input[2] in consts:
            sx, sw = dq_scale(node.input[0]), dq_scale(node.input[1])
            bias = consts[node.input[2]]
            if sx is not None and sw is not None and bias.dtype == np.float32:
                scale = (sx * sw).astype(np.float32).reshape(-1)
                scale = np.broadcast_to(scale, bias.shape).copy() if scale.size == 1 else scale
                with np.errstate(over="ignore", divide="ignore"):  # only a degenerate (~1e-30) scale overflows
                    q = np.clip(np.rint(bias / scale), -(2**31), 2**31 - 1).astype(np.int32)
                base = f"{node.name or node.output[0]}.bias"  # per node: the exporter shares equal initializers
                graph.initializer.extend(
                    [
                        numpy_helper.from_array(q, f"{base}_int32"),
                        numpy_helper.from_array(scale, f"{base}_scale"),
                        numpy_helper.from_array(np.zeros_like(q), f"{base}_zero_point"),
                    ]
                )
                new_nodes.append(
                    helper.make_node(
                        "DequantizeLinear",
                        [f"{base}_int32", f"{base}_scale", f"{base}_zero_point"],
                        [f"{base}_dq"],
                        axis=0,
                        name=f"{base}_DequantizeLinear",
                    )
                )
                node.input[2] = f"{base}_dq"
                count += 1
        new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    return count


def to_onnx_proto(model: nn.Module, input_size: int, in_chans: int = 3, exporter: str = "torchscript") -> Any:
    """The ONNX export of ``model`` (dynamic batch) in memory; returns the ``ModelProto``."""
    for m in model.modules():  # the scales of the weights as they are now (an optimizer step may follow
        if isinstance(m, WeightFakeQuant):  # the last forward), fixed while the export traces them
            m.weight_scale.copy_(weight_scales(m.weight))
    model = model.eval()
    example = torch.zeros(2, in_chans, input_size, input_size)  # batch 2: nothing may specialise on 1
    with pinned_qparams(model):
        try:
            return onnx_proto(model, example, None, dynamic_batch=True, exporter=exporter)
        except Exception as e:  # noqa: BLE001 -- exporters raise many types, with long messages
            arch = model.pretrained_cfg.architecture
            raise GhostzooError(f"cannot export {arch} at {input_size}px to ONNX: {failure_line(e)}") from None


def int8_proto(model: nn.Module, input_size: int, exporter: str = "torchscript", **facts: Any) -> Any:
    """The int8 QDQ ``ModelProto`` of a calibrated fake-quantized model, with its metadata."""
    import onnx

    cfg = model.pretrained_cfg
    proto = to_onnx_proto(model, input_size, cfg.input_size[0], exporter)
    graph = proto.graph
    _inline_constants(graph)
    _fold_weight_quantization(graph)
    _quantize_biases(graph)
    drop_unused_initializers(graph)
    proto.producer_name = "ghostzoo.quantization"
    write_onnx_metadata(proto, cfg, **facts)
    onnx.checker.check_model(proto)
    return proto


def save_proto(proto: Any, path: str | os.PathLike) -> Path:
    """Write an ONNX ``ModelProto`` to a temp file beside ``path`` and rename it."""
    return write_bytes_atomic(path, proto.SerializeToString())
