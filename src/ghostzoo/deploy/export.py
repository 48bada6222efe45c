"""``export_model``: a deployable file of any model of the zoo, checked against PyTorch before it is kept.

Formats: ``onnx`` (either exporter of :mod:`.onnx_export`), ``openvino`` (the IR ``.xml`` + ``.bin`` pair, converted
from the ONNX file), ``torchscript`` (``torch.jit.trace``, ``.pt``) and ``pt2`` (``torch.export``).
Every float export is made from the deploy form (:func:`~ghostzoo.deploy.reparameterize` applied to a
copy, so BatchNorms and GhostNetV3's branches are folded into plain convolutions) and then run in
its own runtime on a fixed random input; its outputs must equal the PyTorch eval model's (the
original, not the deploy form) within ``tolerance``, measured as the **relative error
max|exported - pytorch| / max|pytorch|** over all logits. Files are written to a temp folder and
renamed only when every check passed, so a failed export leaves nothing behind.

Models that choose neighbours (ViG, Pyramid ViG: a k-NN graph per block) are discontinuous: where
two candidates are nearly tied, float32 rounding in another runtime swaps them and the swap spreads,
so even PyTorch against itself with another thread count moves their logits by percents. Their
check therefore takes the neighbours the exported file chose (the outputs of its ``TopK`` nodes,
read through an extra-output copy; for TorchScript / pt2, those of the deploy form, whose kernels
they run), makes PyTorch use the same ones (:func:`~ghostzoo.layers.neighbour_choices`) and then
compares logits at ``tolerance`` as for every other model. It also checks that the file's choices are
the nearest ones by PyTorch's own scores, up to ``NEIGHBOUR_SLACK`` (a near-tie): a graph that picks
wrong neighbours fails. :attr:`ExportReport.neighbour_slack` reports that distance.

ONNX files must also pass ``onnx.checker`` and hold no dynamic shape computation: no ``Shape``,
``Size``, ``ConstantOfShape``, ``Range`` or ``NonZero`` node, and shape / index inputs of ``Slice``,
``Reshape``, ``Resize``, ``Expand``, ``Tile``, ``Pad`` and friends only from constants. Converters such
as ncnn or TensorRT handle such static graphs; :attr:`ExportReport.dynamic_ops` lists any offender.

An int8 ONNX file made by ``ghostzoo quantize`` can be carried to ONNX (checked and copied) or to
OpenVINO (converted; checked against ONNX Runtime running the int8 file): ``int8=PATH``.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from .._io import atomic_paths
from ..errors import GhostzooError
from ..layers import neighbour_choices
from ..registry import PretrainedCfg
from .onnx_export import batch_dims, failure_line, onnx_proto, require_packages, resolve_opset
from .reparameterize import reparameterize
from .runtime import (
    METADATA_FILE,
    METADATA_KEY,
    OnnxRuntimeModel,
    OpenVinoModel,
    cfg_to_metadata,
    load_exported,
    write_onnx_metadata,
)

FORMATS: Dict[str, Tuple[str, ...]] = {
    "onnx": (".onnx",),
    "openvino": (".xml", ".bin"),
    "torchscript": (".pt",),
    "pt2": (".pt2",),
}
INT8_FORMATS = ("onnx", "openvino")
TOLERANCE = 1e-4
INT8_TOLERANCE = 0.05  # OpenVINO vs ONNX Runtime on the same int8 file: rounding may move a step
#: k-NN scores (2 x.y - |y|^2 of unit vectors, about -3 to 1) within this of each other are a near-tie
NEIGHBOUR_SLACK = 1e-4

#: ONNX ops that compute on shapes at run time; a static graph has none.
SHAPE_OPS = frozenset({"Shape", "Size", "ConstantOfShape", "Range", "NonZero"})
#: ops whose inputs after the first are shapes, indices or sizes: they must be constants.
SHAPE_INPUT_OPS = frozenset(
    {
        "Slice",
        "Reshape",
        "Resize",
        "Expand",
        "Tile",
        "Pad",
        "Unsqueeze",
        "Squeeze",
        "Upsample",
        "ReduceMean",
        "ReduceSum",
        "ReduceMax",
        "Split",
        "TopK",
    }
)

InputSize = Union[int, Sequence[int], None]


class ExportError(GhostzooError):
    """An export that cannot be made or that does not reproduce the PyTorch model."""


@dataclasses.dataclass
class ExportReport:
    """What was written and how it was checked.

    ``errors`` maps each runtime that ran the file to its relative error (max|a - b| / max|b|, ``b``
    the reference: the PyTorch eval model, or ONNX Runtime on the int8 file for int8 exports);
    ``ops`` is the ONNX op histogram (for ``onnx`` / ``openvino``), ``dynamic_ops`` the nodes that
    compute on shapes at run time (empty for a static graph). ``neighbour_slack``, for models that
    choose neighbours: how far the exported file's choices are from PyTorch's nearest (module doc).
    """

    model: str
    format: str
    paths: List[str]
    input_shape: Tuple[int, ...]
    dynamic_batch: bool
    opset: Optional[int]
    int8: bool
    tolerance: float
    errors: Dict[str, float]
    ops: Dict[str, int] = dataclasses.field(default_factory=dict)
    dynamic_ops: List[str] = dataclasses.field(default_factory=list)
    neighbour_slack: Optional[float] = None

    @property
    def max_rel_error(self) -> float:
        return max(self.errors.values())

    def to_dict(self) -> Dict[str, Any]:
        return {**dataclasses.asdict(self), "max_rel_error": self.max_rel_error}


def relative_error(output: torch.Tensor, reference: torch.Tensor) -> float:
    """max|output - reference| / max|reference|: one number for a whole batch of logits."""
    ref = reference.detach().double()
    return float((output.detach().double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def dynamic_shape_ops(proto: Any) -> List[str]:
    """The nodes of an ONNX graph that compute on shapes at run time, as ``"OpType name"``.

    A shape / index input counts as static when it is an initializer, the output of a ``Constant``
    node (after the exporter's constant folding, that is how fixed slices and sizes appear), or
    computed from those alone: the TorchScript exporter leaves such chains unfolded (TensorFlow's
    SAME padding gives ``Pad`` its pads through ``ConstantOfShape`` / ``Concat``), and every runtime
    folds them once when it loads the file.
    """
    graph = proto.graph
    constants = {i.name for i in graph.initializer}
    found = []
    for node in graph.node:  # in topological order, as ONNX stores them
        inputs = [name for name in node.input if name]
        if node.op_type == "Constant" or (inputs and all(name in constants for name in inputs)):
            constants.update(node.output)
            continue
        dynamic_inputs = [name for name in node.input[1:] if name and name not in constants]
        if node.op_type in SHAPE_OPS or (node.op_type in SHAPE_INPUT_OPS and dynamic_inputs):
            found.append(f"{node.op_type} {node.name}")
    return found


def _input_shape(cfg: PretrainedCfg, input_size: InputSize, batch_size: int) -> Tuple[int, ...]:
    if input_size is None:
        chw = tuple(cfg.input_size)
    elif isinstance(input_size, int):
        chw = (cfg.input_size[0], input_size, input_size)
    else:
        chw = tuple(input_size)
        if len(chw) == 2:
            chw = (cfg.input_size[0], *chw)
    if len(chw) != 3 or min(chw) < 1 or batch_size < 1:
        raise ExportError(f"bad input size {input_size!r} / batch size {batch_size}")
    return (batch_size, *chw)


def _check_output(output: Path, fmt: str) -> Path:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    output = Path(output)
    if output.suffix.lower() != FORMATS[fmt][0]:
        raise ExportError(f"{output}: --format {fmt} writes a {FORMATS[fmt][0]} file")
    return output


def _outputs(output: Path, fmt: str) -> List[Path]:
    """The files of one export, the one a reader opens last (the IR's .xml after its .bin)."""
    return [output.with_suffix(s) for s in reversed(FORMATS[fmt])]


def _within(name: str, error: float, tolerance: float) -> float:
    if not error <= tolerance:  # also catches NaN
        raise ExportError(f"{name} output differs from the reference by {error:.3g} relative (> {tolerance:g})")
    return error


#: runs an exported file on a batch: its logits, and the neighbour lists it chose (none for most models)
Runner = Callable[[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]


class _Reference:
    """The PyTorch eval model's logits that an export must reproduce; for a model that chooses
    neighbours, computed on the neighbours the exported file chose (module doc)."""

    def __init__(self, model: nn.Module, inputs: Sequence[torch.Tensor]) -> None:
        self.model, self.inputs = model, list(inputs)
        with torch.no_grad(), neighbour_choices() as recorded:
            self.logits = [model(x) for x in self.inputs]
        self.graphs = len(recorded.choices) // len(self.inputs)
        self.slack: Optional[float] = 0.0 if self.graphs else None

    def compare(self, name: str, run: Runner, tolerance: float) -> float:
        error = 0.0
        for x, logits in zip(self.inputs, self.logits):
            output, choices = run(x)
            if self.graphs:
                logits = self._replayed(name, x, choices)
            error = max(error, relative_error(output, logits))
        return _within(name, error, tolerance)

    def _replayed(self, name: str, x: torch.Tensor, choices: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(choices) != self.graphs:
            raise ExportError(f"{name} builds {len(choices)} neighbour graphs, the model {self.graphs}")
        try:
            with torch.no_grad(), neighbour_choices(replay=choices) as replay:
                logits = self.model(x)
        except ValueError as e:
            raise ExportError(f"{name}: {e}") from None
        if not replay.slack <= NEIGHBOUR_SLACK:
            raise ExportError(
                f"{name} chooses neighbours that are not the nearest: scores off by "
                f"{replay.slack:.3g} (> {NEIGHBOUR_SLACK:g})"
            )
        self.slack = max(self.slack or 0.0, replay.slack)
        return logits


def _probed_onnx(proto: Any, path: Path) -> Path:
    """A copy of an ONNX graph at ``path`` that also outputs the indices of every ``TopK`` node."""
    import onnx

    probed = copy.deepcopy(proto)
    for node in probed.graph.node:
        if node.op_type == "TopK":
            probed.graph.output.append(onnx.helper.make_tensor_value_info(node.output[1], onnx.TensorProto.INT64, None))
    onnx.save(probed, str(path))
    return path


def _split(outputs: List[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    return outputs[0], outputs[1:]


def _one_line(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one export step with its failures as one-line errors."""
    try:
        return fn(*args, **kwargs)
    except GhostzooError:
        raise
    except Exception as e:  # noqa: BLE001 -- exporters raise many types, with long messages
        raise ExportError(f"{getattr(fn, '__qualname__', fn)} failed: {failure_line(e)}") from None


def _write_onnx(
    deploy: nn.Module, x: torch.Tensor, path: Path, metadata: str, dynamic_batch: bool, opset: int, exporter: str
) -> Any:
    import onnx

    try:
        proto = onnx_proto(deploy, x, opset, dynamic_batch, exporter)
    except Exception as e:  # noqa: BLE001 -- exporters raise many types, with long messages
        raise ExportError(f"torch.onnx.export ({exporter}) failed: {failure_line(e)}") from None
    write_onnx_metadata(proto, metadata)
    _one_line(onnx.checker.check_model, proto, full_check=True)
    onnx.save(proto, str(path))
    return proto


def _write_openvino(onnx_path: Path, xml_path: Path, metadata: str) -> None:
    import openvino as ov

    model = _one_line(ov.convert_model, str(onnx_path))
    model.set_rt_info(metadata, [METADATA_KEY])
    _one_line(ov.save_model, model, str(xml_path), compress_to_fp16=False)


def _export_int8(cfg: PretrainedCfg, fmt: str, output: Path, int8: Path, batch_size: int) -> ExportReport:
    """Carry an int8 ONNX file of ``ghostzoo.quantization`` to ``fmt`` (checked and copied for onnx)."""
    import onnx

    if fmt not in INT8_FORMATS:
        raise ExportError(f"--int8: a {fmt} file cannot hold an int8 ONNX model; use {' or '.join(INT8_FORMATS)}")
    source = load_exported(int8, cfg.architecture)
    if not isinstance(source, OnnxRuntimeModel):
        raise ExportError(f"--int8 expects an int8 .onnx file from `ghostzoo quantize`, got {int8}")
    if "quantization" not in source.extra:  # quantize records its scheme; a float export has none
        raise ExportError(f"--int8 expects an int8 .onnx file from `ghostzoo quantize`; {int8} is a float model")
    proto = onnx.load(str(int8))
    _one_line(onnx.checker.check_model, proto)
    metadata = cfg_to_metadata(source.pretrained_cfg, **source.extra)
    shape = (batch_size, *source.pretrained_cfg.input_size)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    errors: Dict[str, float] = {}
    paths = _outputs(output, fmt)
    with atomic_paths(*paths) as temps:
        if fmt == "onnx":
            shutil.copyfile(int8, temps[0])
        else:
            _write_openvino(Path(int8), temps[-1], metadata)
            error = relative_error(OpenVinoModel(temps[-1])(x), source(x))
            errors["openvino"] = _within("OpenVINO", error, INT8_TOLERANCE)
    return ExportReport(
        source.pretrained_cfg.name,
        fmt,
        [str(p) for p in reversed(paths)],
        shape,
        False,
        next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None),
        True,
        INT8_TOLERANCE,
        errors,
        dict(Counter(n.op_type for n in proto.graph.node)),
        dynamic_shape_ops(proto),
    )


def export_model(
    model: nn.Module,
    fmt: str,
    output: str | Path,
    input_size: InputSize = None,
    batch_size: int = 1,
    dynamic_batch: bool = False,
    opset: Optional[int] = None,
    int8: Optional[str | Path] = None,
    tolerance: float = TOLERANCE,
    exporter: str = "torchscript",
) -> ExportReport:
    """Export ``model`` (a ghostzoo model, with its ``pretrained_cfg``) to ``output`` in format ``fmt``.

    ``input_size``: square side or ``(C, H, W)`` (default: the cfg's); ``batch_size``: the batch
    traced and checked; ``dynamic_batch``: leave the batch dimension free (checked at two batch
    sizes); ``exporter`` and ``opset`` (default: the exporter's lowest, 17 or 18): how ONNX is written
    (:mod:`~ghostzoo.deploy.onnx_export`). The model is put in eval mode and otherwise left as it is:
    a copy is re-parameterized. See the module doc for the checks; any failure raises
    :class:`ExportError` (a :class:`~ghostzoo.GhostzooError`) and writes nothing.
    """
    output = _check_output(Path(output), fmt)
    cfg: Optional[PretrainedCfg] = getattr(model, "pretrained_cfg", None)
    if cfg is None:
        raise ExportError("export_model needs a ghostzoo model (one with a pretrained_cfg)")
    require_packages(fmt, exporter)
    if int8 is not None:
        return _export_int8(cfg, fmt, output, Path(int8), batch_size)
    try:
        opset = resolve_opset(exporter, opset)
    except ValueError as e:
        raise ExportError(str(e)) from None

    shape = _input_shape(cfg, input_size, batch_size)
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randn(shape, generator=gen)]
    if dynamic_batch:
        inputs.append(torch.randn((shape[0] + 1, *shape[1:]), generator=gen))
    original = model.eval()
    reference = _Reference(original, inputs)
    if not isinstance(reference.logits[0], torch.Tensor):
        raise ExportError(f"{cfg.name}: export needs a model that returns one tensor (not features_only)")
    deploy = reparameterize(copy.deepcopy(original).float().cpu())
    metadata = cfg_to_metadata(
        dataclasses.replace(cfg, input_size=shape[1:]), batch_size=None if dynamic_batch else shape[0]
    )
    x = inputs[-1]  # with a free batch dimension, trace at batch >= 2 so that nothing specialises on 1
    errors: Dict[str, float] = {}
    ops: Dict[str, int] = {}
    dynamic: List[str] = []
    paths = _outputs(output, fmt)
    with atomic_paths(*paths) as temps:
        if fmt in ("onnx", "openvino"):
            onnx_path = temps[0] if fmt == "onnx" else temps[0].with_suffix(".onnx")
            proto = _write_onnx(deploy, x, onnx_path, metadata, dynamic_batch, opset, exporter)
            ops = dict(Counter(n.op_type for n in proto.graph.node))
            dynamic = dynamic_shape_ops(proto)
            checked = _probed_onnx(proto, onnx_path.with_suffix(".topk-probe.onnx")) if reference.graphs else onnx_path
            ort_model = OnnxRuntimeModel(checked)
            errors["onnxruntime"] = reference.compare("ONNX Runtime", lambda x: _split(ort_model.outputs(x)), tolerance)
            if fmt == "openvino":
                _write_openvino(onnx_path, temps[-1], metadata)
                ov_model = OpenVinoModel(temps[-1], probe="TopK" if reference.graphs else None)
                errors["openvino"] = reference.compare("OpenVINO", lambda x: _split(ov_model.outputs(x)), tolerance)
        else:
            if fmt == "torchscript":
                with warnings.catch_warnings():  # shapes traced as constants: intended, the file is static
                    warnings.simplefilter("ignore", torch.jit.TracerWarning)
                    traced = _one_line(torch.jit.trace, deploy, (x,), check_trace=False)
                _one_line(torch.jit.save, traced, str(temps[0]), _extra_files={METADATA_FILE: metadata})
            else:
                with torch.no_grad():
                    program = _one_line(torch.export.export, deploy, (x,), dynamic_shapes=batch_dims(dynamic_batch))
                _one_line(torch.export.save, program, str(temps[0]), extra_files={METADATA_FILE: metadata})
            exported = load_exported(temps[0])

            def run(x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
                if not reference.graphs:
                    return exported(x), []
                # the file runs the deploy form's PyTorch kernels: its neighbours are the deploy form's
                with torch.no_grad(), neighbour_choices() as chosen:
                    deploy(x)
                return exported(x), chosen.choices

            errors[fmt] = reference.compare("TorchScript" if fmt == "torchscript" else "torch.export", run, tolerance)
    return ExportReport(
        cfg.name,
        fmt,
        [str(p) for p in reversed(paths)],
        shape,
        dynamic_batch,
        opset if fmt in ("onnx", "openvino") else None,
        False,
        tolerance,
        errors,
        ops,
        dynamic,
        reference.slack,
    )
