"""The backends of ``ghostzoo benchmark``: how each turns a model into something to call.

One function per backend prepares a runner for one (model, batch size), from scratch, as a deployed
model would be built: a backend that exports does so at that batch size with static shapes; only the
int8 file, whose batch dimension is free, is quantized once per model and shared by both int8
backends. Keeping them apart from the timing (``measure``) lets a backend be added without reading
the timing rule, and keeps the timing rule free of exporters.

- ``eager``: the PyTorch model, NCHW; ``channels_last``: the same in channels-last memory format;
  ``compile``: ``torch.compile`` (inductor, with weight freezing for inference) of the channels-last
  model. All three run the deploy form (``ghostzoo.deploy.reparameterize``), unless asked not to.
- ``onnxruntime`` / ``openvino``: the file written by ``ghostzoo.deploy.export.export_model``
  (reparameterized, parity-checked), run through ``ghostzoo.deploy.runtime.load_exported``.
- ``int8``: the int8 QDQ ONNX of ``ghostzoo.quantization.quantize_to_onnx``, calibrated on real
  images, run by ONNX Runtime; ``int8_openvino``: the same file converted by
  ``export_model(..., int8=...)``, run by OpenVINO.
- ``file``: a file the user exported or quantized, run as it is.

A backend that cannot run a model raises :class:`Unsupported` (or anything else, for a failure);
the caller turns either into a row that says why.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..deploy.backend import compile_for_inference
from ..deploy.export import export_model
from ..deploy.runtime import RUNTIMES, load_exported
from ..errors import GhostzooError
from ..quantization import quantize_to_onnx
from ..registry import PretrainedCfg

BACKENDS = ("eager", "channels_last", "compile", "onnxruntime", "openvino", "int8", "int8_openvino")
FILE_BACKEND = "file"
DEFAULT_BACKENDS = tuple(b for b in BACKENDS if b != "compile")  # compiling takes minutes per model on a CPU


class Unsupported(GhostzooError):
    """A backend that cannot run this model here (missing runtime, wrong device, unsupported layers)."""


@dataclass
class Subject:
    """One model under test: its PyTorch forms and what the backends need to rebuild it."""

    name: str
    model: nn.Module  # as built (training form); exporters reparameterize their own copy
    cfg: PretrainedCfg
    input_size: int
    weights: str
    deploy: nn.Module  # what the torch backends run
    file: Path | None = None  # the user's exported file, for the ``file`` backend
    workdir: Path | None = None  # a temporary folder that lives as long as the model's measurements
    int8: Path | None = None  # its int8 file, once quantized

    def input_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, self.cfg.input_size[0], self.input_size, self.input_size)


@dataclass(frozen=True)
class Context:
    """What every measurement of a run shares."""

    device: torch.device
    threads: int
    calib: Callable[[PretrainedCfg, int], torch.Tensor] | None  # (cfg, input size) -> calibration images


Prepared = tuple[Callable[[torch.Tensor], Any], bool]  # (runner, wants a channels-last input)
Prepare = Callable[[Subject, int, Context, Path], Prepared]  # (subject, batch, context, temp folder)


def _cpu_only(backend: str, ctx: Context) -> None:
    if ctx.device.type != "cpu":
        raise Unsupported(f"{backend} is timed on the CPU only (the ONNX Runtime / OpenVINO CPU runtimes)")


def _require_openvino(ctx: Context) -> None:
    _cpu_only("openvino", ctx)
    if importlib.util.find_spec("openvino") is None:
        raise Unsupported("openvino is not installed (pip install openvino)")


def _prepare_eager(s: Subject, batch: int, ctx: Context, tmp: Path) -> Prepared:
    return s.deploy.to(ctx.device), False


def _prepare_channels_last(s: Subject, batch: int, ctx: Context, tmp: Path) -> Prepared:
    return copy.deepcopy(s.deploy).to(ctx.device, memory_format=torch.channels_last), True


def _prepare_compile(s: Subject, batch: int, ctx: Context, tmp: Path) -> Prepared:
    model = copy.deepcopy(s.deploy).to(ctx.device, memory_format=torch.channels_last)
    return compile_for_inference(model), True  # the settings of `--backend compile`


def _prepare_onnxruntime(s: Subject, batch: int, ctx: Context, tmp: Path) -> Prepared:
    _cpu_only("onnxruntime", ctx)
    path = tmp / f"{s.name}_b{batch}.onnx"
    export_model(s.model, "onnx", path, input_size=s.input_size, batch_size=batch)
    return load_exported(path, s.name, threads=ctx.threads), False


def _prepare_openvino(s: Subject, batch: int, ctx: Context, tmp: Path) -> Prepared:
    _require_openvino(ctx)
    path = tmp / f"{s.name}_b{batch}.xml"
    export_model(s.model, "openvino", path, input_size=s.input_size, batch_size=batch)
    return load_exported(path, s.name, threads=ctx.threads), False


def _int8_file(s: Subject, ctx: Context) -> Path:
    """The model's int8 file, quantized once for both int8 backends and every batch size: the file of
    ``quantize_to_onnx`` has a free batch dimension, and calibrating again would give the same file."""
    _cpu_only("int8", ctx)
    if s.int8 is None:
        s.int8 = quantize_to_onnx(
            s.model, ctx.calib(s.cfg, s.input_size), s.workdir / f"{s.name}_int8.onnx", input_size=s.input_size
        )
    return s.int8


def _prepare_int8(s: Subject, batch: int, ctx: Context, tmp: Path) -> Prepared:
    return load_exported(_int8_file(s, ctx), s.name, threads=ctx.threads), False


def _prepare_int8_openvino(s: Subject, batch: int, ctx: Context, tmp: Path) -> Prepared:
    _require_openvino(ctx)
    path = tmp / f"{s.name}_int8_b{batch}.xml"
    export_model(s.model, "openvino", path, batch_size=batch, int8=_int8_file(s, ctx))
    return load_exported(path, s.name, threads=ctx.threads), False


def _prepare_file(s: Subject, batch: int, ctx: Context, tmp: Path) -> Prepared:
    _cpu_only("a file", ctx)
    # ONNX Runtime and OpenVINO take a thread count; TorchScript and pt2 run on torch's, already set
    takes_threads = "threads" in inspect.signature(RUNTIMES[s.file.suffix.lower()]).parameters
    return load_exported(s.file, s.name, **({"threads": ctx.threads} if takes_threads else {})), False


#: backend name -> the function that prepares its runner for one (model, batch size)
PREPARE: dict[str, Prepare] = {
    "eager": _prepare_eager,
    "channels_last": _prepare_channels_last,
    "compile": _prepare_compile,
    "onnxruntime": _prepare_onnxruntime,
    "openvino": _prepare_openvino,
    "int8": _prepare_int8,
    "int8_openvino": _prepare_int8_openvino,
    FILE_BACKEND: _prepare_file,
}
