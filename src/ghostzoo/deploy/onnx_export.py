"""The two ONNX exporters of torch, behind one call: :func:`onnx_proto`.

* ``torchscript`` (the default): ``torch.onnx.export(dynamo=False)``, which traces the model with
  TorchScript. Deprecated by PyTorch, still complete in the pinned torch; its warnings are hidden
  because the tracer's notes (shapes recorded as constants) describe exactly the static graph wanted.
  Transformer graphs keep some run-time shape computation (``ExportReport.dynamic_ops``).
* ``dynamo``: ``torch.onnx.export(dynamo=True)``, the supported exporter: ``torch.export`` captures
  the graph and onnxscript translates and optimizes it. Every family's graph comes out static,
  transformers included, and nothing is silenced. It needs opset 18 or newer and ``onnxscript``, and
  takes 5x (float) to 16x (int8) as long (docs/results/onnx_exporters.md).
"""

from __future__ import annotations

import importlib.util
import io
import re
import warnings
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn

from .._io import console_silenced, first_line
from ..errors import GhostzooError

EXPORTERS = ("torchscript", "dynamo")
#: the lowest opset each exporter writes (the dynamo exporter translates to opset 18 ops)
MIN_OPSET = {"torchscript": 17, "dynamo": 18}


# what writing a file of each format and checking it in its runtime imports
_PACKAGES = {"onnx": ("onnx", "onnxruntime"), "openvino": ("onnx", "onnxruntime", "openvino")}


def require_packages(fmt: str, exporter: str = "torchscript") -> None:
    """A one-line error, before any work, when a package an ``fmt`` export needs is not installed."""
    needed = _PACKAGES.get(fmt, ())
    needed += ("onnxscript",) if needed and exporter == "dynamo" else ()
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise GhostzooError(f"writing {fmt} needs {', '.join(missing)} (not installed): pip install 'ghostzoo[deploy]'")


def failure_line(e: BaseException) -> str:
    """The innermost cause's first line, at most 200 characters: exporters wrap the real reason in
    pages of advice."""
    while e.__cause__ is not None:
        e = e.__cause__
    line = re.sub(r"\x1b\[[0-9;]*m", "", first_line(e))  # the dynamo exporter colours its messages
    return line if len(line) <= 200 else line[:200] + " ..."


def batch_dims(dynamic_batch: bool) -> Optional[Tuple[Dict[int, Any]]]:
    """``torch.export``'s ``dynamic_shapes`` for one input whose batch dimension is free (or not)."""
    return ({0: torch.export.Dim("batch", min=1)},) if dynamic_batch else None


def resolve_opset(exporter: str, opset: Optional[int]) -> int:
    """The opset to write: ``opset``, or the exporter's lowest when ``None``; ``ValueError`` for an
    unknown exporter or an opset it cannot write."""
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown ONNX exporter {exporter!r}; choose from {', '.join(EXPORTERS)}")
    opset = MIN_OPSET[exporter] if opset is None else opset
    if opset < MIN_OPSET[exporter]:
        raise ValueError(f"opset {opset} is too old: the {exporter} exporter writes {MIN_OPSET[exporter]} or newer")
    return opset


def onnx_proto(
    module: nn.Module, x: torch.Tensor, opset: Optional[int], dynamic_batch: bool, exporter: str = "torchscript"
) -> Any:
    """``module`` traced on ``x`` as an ONNX ``ModelProto`` (input ``input``, output ``logits``);
    ``opset`` as :func:`resolve_opset` takes it."""
    opset = resolve_opset(exporter, opset)
    write = _dynamo if exporter == "dynamo" else _torchscript
    with torch.no_grad():
        return write(module, x, opset, dynamic_batch)


def _torchscript(module: nn.Module, x: torch.Tensor, opset: int, dynamic_batch: bool) -> Any:
    import onnx

    buffer = io.BytesIO()
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    # console_silenced: on failure this exporter prints whole graphs from C++, past Python's streams
    with warnings.catch_warnings(), console_silenced():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (x,),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes=axes,
        )
    return onnx.load_from_string(buffer.getvalue())


def _dynamo(module: nn.Module, x: torch.Tensor, opset: int, dynamic_batch: bool) -> Any:
    program = torch.onnx.export(
        module,
        (x,),
        dynamo=True,
        opset_version=opset,
        input_names=["input"],
        output_names=["logits"],
        dynamic_shapes=batch_dims(dynamic_batch),
        verbose=False,
    )
    proto = program.model_proto
    _as_global_pools(proto.graph)
    return proto


def initializers(graph: Any) -> Dict[str, np.ndarray]:
    """The graph's initializers as arrays, by name."""
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in graph.initializer}


def drop_unused_initializers(graph: Any) -> None:
    """Remove the initializers no node and no graph output reads."""
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def _as_global_pools(graph: Any) -> None:
    """``torch.export`` decomposes ``adaptive_avg_pool2d(x, 1)`` into a mean over H and W; write it back
    as ONNX's ``GlobalAveragePool``, as the TorchScript exporter does: the op runtimes have fused
    and int8 kernels for (ONNX Runtime's ``QLinearGlobalAveragePool``)."""
    consts = initializers(graph)
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in [*graph.input, *graph.value_info]}
    for node in graph.node:
        rank = ranks.get(node.input[0]) if node.op_type == "ReduceMean" else None
        if rank != 4 or len(node.input) != 2 or node.input[1] not in consts:
            continue
        axes = sorted(int(a) % rank for a in consts[node.input[1]].reshape(-1))
        attributes = {a.name: a.i for a in node.attribute}
        if axes == [2, 3] and attributes.get("keepdims", 1) == 1 and not attributes.get("noop_with_empty_axes"):
            node.op_type = "GlobalAveragePool"
            del node.input[1:]
            del node.attribute[:]
    drop_unused_initializers(graph)
