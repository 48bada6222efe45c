"""Exported files that behave like ghostzoo models.

Every file written by ``ghostzoo export`` carries the model's pretrained cfg (architecture, classes,
input size, eval preprocessing) as a JSON entry named ``ghostzoo``: in an ONNX file's
``metadata_props``, in an OpenVINO IR's ``rt_info``, and as an extra file of a TorchScript or
``torch.export`` (pt2) archive. So ``validate``, ``predict`` and ``benchmark`` can use the file alone,
with the same preprocessing and class names as the PyTorch model it came from. Each runtime is
wrapped as an ``nn.Module`` that takes and returns torch tensors (:class:`OnnxRuntimeModel`,
:class:`OpenVinoModel`, :class:`TorchScriptModel`, :class:`ExportedProgramModel`), so the evaluation
and prediction code paths are the same for eager, exported and int8 models.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._io import first_line
from .._runtime import int8_dot_products_exact
from ..errors import CheckpointError
from ..registry import PretrainedCfg, Published

METADATA_KEY = "ghostzoo"
logger = logging.getLogger(__name__)
METADATA_FILE = "ghostzoo.json"  # the extra file of TorchScript and pt2 archives
EXPORTED_SUFFIXES = (".onnx", ".xml", ".pt", ".pt2")


def cfg_to_metadata(cfg: PretrainedCfg, **extra: Any) -> str:
    """The JSON string stored in an exported file: the cfg, plus ``extra`` facts (e.g. int8 scheme)."""
    return json.dumps({"cfg": dataclasses.asdict(cfg), **extra}, default=str)


def cfg_from_metadata(text: str) -> tuple[PretrainedCfg, dict[str, Any]]:
    """Inverse of :func:`cfg_to_metadata`: the cfg and the extra facts."""
    data = json.loads(text)
    raw = dict(data.pop("cfg"))
    known = {f.name for f in dataclasses.fields(PretrainedCfg)}
    raw = {k: v for k, v in raw.items() if k in known}
    raw["published"] = Published(**raw.get("published") or {})
    for key in ("input_size", "mean", "std", "class_names"):
        if key in raw:
            raw[key] = tuple(raw[key])
    return PretrainedCfg(**raw), data


def _is_torchscript_archive(path: Path) -> bool:
    """A ``.pt`` file is an export only when it is a TorchScript archive with ghostzoo's extra file;
    any other ``.pt`` (a ``torch.save`` checkpoint) stays a checkpoint."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith(f"/extra/{METADATA_FILE}") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def is_exported(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an exported model (by its suffix; ``.pt`` by its content)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pt":
        return _is_torchscript_archive(path)
    return suffix in EXPORTED_SUFFIXES


def write_onnx_metadata(model_proto: Any, cfg: PretrainedCfg | str, **extra: Any) -> None:
    """Set the ``ghostzoo`` metadata entry of an ``onnx.ModelProto`` (in memory) to ``cfg`` and
    ``extra``, or to a JSON text made by :func:`cfg_to_metadata`."""
    for prop in list(model_proto.metadata_props):
        if prop.key == METADATA_KEY:
            model_proto.metadata_props.remove(prop)
    entry = model_proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, cfg if isinstance(cfg, str) else cfg_to_metadata(cfg, **extra)


class ExportedModel(nn.Module):
    """Base of the runtime wrappers: the file's path, its cfg (``pretrained_cfg``, ``num_classes``)
    and the other facts stored with it (``extra``; for an int8 file, its quantization scheme)."""

    kind = "exported"

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"exported model not found: {self.path}")

    def _open(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call a runtime's loader, turning its (often multi-line) errors into one line."""
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 -- every runtime raises its own types
            raise CheckpointError(f"{self.path} is not a runnable {self.kind} model: {first_line(e)}") from None

    def _set_metadata(self, text: str | None) -> None:
        if not text:
            raise CheckpointError(f"{self.path} was not exported by ghostzoo (no '{METADATA_KEY}' metadata)")
        self.pretrained_cfg, self.extra = cfg_from_metadata(text)
        self.num_classes = self.pretrained_cfg.num_classes

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """One call of the runtime on a float32 CPU batch of the size the file accepts."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Any batch size: a file exported for a fixed batch (``extra["batch_size"]``) gets the batch in
        chunks of that size, the last one zero-padded, so validate / predict work with every export."""
        x = x.detach().to("cpu", torch.float32)
        fixed = self.extra.get("batch_size")
        if not fixed or x.shape[0] == fixed:
            return self._run(x)
        outs = []
        for chunk in x.split(fixed):
            n = len(chunk)
            if n < fixed:
                chunk = torch.cat([chunk, chunk.new_zeros(fixed - n, *chunk.shape[1:])])
            outs.append(self._run(chunk)[:n])
        return torch.cat(outs)


#: ONNX Runtime graph passes ghostzoo turns off. ``WeightBiasQuantization`` quantizes the float
#: weights of a convolution that reads a ``DequantizeLinear`` and feeds a ``QuantizeLinear``, so it
#: would silently run the layers an int8 file keeps float (``--keep-float``) in int8 after all.
ORT_DISABLED_OPTIMIZERS = ("WeightBiasQuantization",)


class OnnxRuntimeModel(ExportedModel):
    """An ONNX file run by ONNX Runtime on the CPU, used like the PyTorch model it was exported from.

    Inputs may be any float tensor layout (channels-last included); outputs are float32 CPU tensors.
    ``options`` sets further ``onnxruntime.SessionOptions`` attributes by name. The session runs
    without :data:`ORT_DISABLED_OPTIMIZERS`, so an int8 file computes what it says.
    """

    kind = "ONNX"

    def __init__(
        self,
        path: str | os.PathLike,
        threads: int | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        **options: Any,
    ) -> None:
        super().__init__(path)
        import onnxruntime as ort

        session_options = ort.SessionOptions()
        if threads:
            session_options.intra_op_num_threads = threads
        for name, value in options.items():
            setattr(session_options, name, value)
        self.session = self._open(
            ort.InferenceSession,
            str(self.path),
            session_options,
            providers=list(providers),
            disabled_optimizers=list(ORT_DISABLED_OPTIMIZERS),
        )
        self._set_metadata(self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY))
        self.input_name = self.session.get_inputs()[0].name
        if "quantization" in self.extra and not int8_dot_products_exact():
            logger.warning(
                "%s: this CPU has no VNNI, so ONNX Runtime's int8 kernels may saturate and give other results "
                "than the fake-quantized model (docs/int8.md); a CPU with VNNI runs the file exactly",
                self.path,
            )

    def outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every output of the graph for one batch, the logits first (checks add further outputs)."""
        return [torch.from_numpy(out) for out in self.session.run(None, {self.input_name: x.contiguous().numpy()})]

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x)[0]


class OpenVinoModel(ExportedModel):
    """An OpenVINO IR (``.xml`` with its ``.bin``) compiled for the CPU.

    ``precision`` is OpenVINO's inference precision: ``"f32"`` by default, so results match PyTorch
    (OpenVINO would otherwise pick bf16 on CPUs that have it); ``"bf16"`` for speed. ``hint`` is the
    performance mode (``"LATENCY"`` or ``"THROUGHPUT"``); ``config`` adds any other compile property.
    Subnormal floats are flushed to zero (``CPU_DENORMALS_OPTIMIZATION``, what GPU runtimes do): they
    move no logit measurably, and arithmetic on them is slow on x86. ``probe`` names an op type (e.g.
    ``"TopK"``) whose last output, at every such op, becomes an extra output of :meth:`outputs`.
    """

    kind = "OpenVINO"

    def __init__(
        self,
        path: str | os.PathLike,
        threads: int | None = None,
        precision: str = "f32",
        hint: str = "LATENCY",
        probe: str | None = None,
        **config: Any,
    ) -> None:
        super().__init__(path)
        import openvino as ov

        if not self.path.with_suffix(".bin").is_file():
            raise CheckpointError(f"{self.path}: its weights file {self.path.with_suffix('.bin').name} is missing")
        core = ov.Core()
        model = self._open(core.read_model, str(self.path))
        key = [METADATA_KEY]
        self._set_metadata(model.get_rt_info(key).astype(str) if model.has_rt_info(key) else None)
        if probe:
            model.add_outputs([op.outputs()[-1] for op in model.get_ordered_ops() if op.get_type_name() == probe])
        properties = {
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": hint,
            "CPU_DENORMALS_OPTIMIZATION": True,
            **config,
        }
        if threads:
            properties["INFERENCE_NUM_THREADS"] = threads
        self.compiled = self._open(core.compile_model, model, "CPU", properties)
        self.request = self.compiled.create_infer_request()

    def outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every output of the model for one batch, the logits first, then those of ``probe``."""
        out = self.request.infer([x.contiguous().numpy()], share_inputs=True)
        return [torch.from_numpy(out[port].copy()) for port in self.compiled.outputs]

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x)[0]


def _archive_metadata(extra_files: dict[str, Any]) -> str | None:
    value = extra_files.get(METADATA_FILE)
    return value.decode() if isinstance(value, bytes) else value


class TorchScriptModel(ExportedModel):
    """A TorchScript archive (``torch.jit.trace`` of the deploy-form model), run by the JIT on the CPU."""

    kind = "TorchScript"

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(path)
        extra_files = {METADATA_FILE: ""}
        with warnings.catch_warnings():  # TorchScript's deprecation notice: the format still serves C++ users
            warnings.simplefilter("ignore", FutureWarning)
            self.module = self._open(torch.jit.load, str(self.path), map_location="cpu", _extra_files=extra_files)
        self._set_metadata(_archive_metadata(extra_files))

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.module(x)


class ExportedProgramModel(ExportedModel):
    """A ``torch.export`` archive (``.pt2``), run as the ``nn.Module`` it unflattens to, on the CPU."""

    kind = "pt2"

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(path)
        extra_files = {METADATA_FILE: ""}
        program = self._open(torch.export.load, str(self.path), extra_files=extra_files)
        self._set_metadata(_archive_metadata(extra_files))
        self.module = program.module()

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.module(x)


RUNTIMES: dict[str, type[ExportedModel]] = {
    ".onnx": OnnxRuntimeModel,
    ".xml": OpenVinoModel,
    ".pt": TorchScriptModel,
    ".pt2": ExportedProgramModel,
}


def load_exported(path: str | os.PathLike, architecture: str | None = None, **kwargs: Any) -> nn.Module:
    """Open an exported file with its runtime; with ``architecture``, check that the file holds that model.

    ``kwargs`` go to the runtime wrapper (e.g. ``threads``; ``precision="bf16"`` for OpenVINO).
    """
    if not is_exported(path):
        raise CheckpointError(
            f"{path}: not an exported model (expected one of {', '.join(EXPORTED_SUFFIXES)}; "
            "a .pt file must be a TorchScript archive written by ghostzoo export)"
        )
    model = RUNTIMES[Path(path).suffix.lower()](path, **kwargs)
    stored = model.pretrained_cfg.architecture
    if architecture is not None and stored and architecture.split(".")[0] != stored:
        raise CheckpointError(f"{path} holds {stored}, not {architecture.split('.')[0]}")
    return model
