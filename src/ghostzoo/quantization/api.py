"""Post-training quantization of a float model into the int8 ONNX file."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import torch
import torch.nn as nn

from ..deploy.onnx_export import require_packages
from ..errors import GhostzooError
from .export import int8_proto, save_proto
from .prepare import QuantSpec, calibrate, prepare

CalibrationData = Union[torch.Tensor, Iterable]
CALIBRATION_BATCH = 32


INT8_SUFFIXES = {".onnx": "onnx", ".xml": "openvino"}  # the file a quantized model is written as


def check_output(path: str | os.PathLike, fmt: Optional[str] = None, exporter: str = "torchscript") -> Path:
    """``path`` as a Path, or a one-line error before any work when it is neither an ONNX file (``.onnx``)
    nor an OpenVINO IR (``.xml``), not of the format ``fmt`` asks for, or when a package writing it
    with ``exporter`` needs is missing."""
    path = Path(path)
    found = INT8_SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise GhostzooError(
            f"the int8 model is written as ONNX (.onnx) or OpenVINO IR (.xml): --output {path.name!r} is neither"
        )
    if fmt is not None and fmt != found:
        expected = next(suffix for suffix, name in INT8_SUFFIXES.items() if name == fmt)
        raise GhostzooError(f"--format {fmt} writes a {expected} file, not {path.name!r}")
    require_packages(found, exporter)
    return path


def calibration_batches(data: CalibrationData) -> Iterator[torch.Tensor]:
    """Image batches from a tensor ``(N, C, H, W)`` or an iterable of batches, where a batch is a
    tensor or a tuple whose first item is one (``(images, targets, ...)``; ``None`` is skipped)."""
    if isinstance(data, torch.Tensor):
        if data.ndim != 4:
            raise GhostzooError(f"calibration images must be a (N, C, H, W) tensor, got shape {tuple(data.shape)}")
        yield from data.split(CALIBRATION_BATCH)
        return
    for batch in data:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        if images is not None:
            yield images


def scheme(spec: QuantSpec, calibration_images: int, **extra: Any) -> Dict[str, Any]:
    """The ``quantization`` entry of the int8 file's metadata."""
    return {
        "format": "onnx-qdq",
        "weights": "int8 symmetric per output channel (zero point 0, scale max|w|/127)",
        "activations": "uint8 asymmetric per tensor",
        "observer": spec.observer,
        "calibration_images": calibration_images,
        "keep_float": list(spec.keep_float),
        "float_layers": list(spec.float_layers),
        "int8_layers": spec.int8_layers,
        "activation_quantizers": spec.activation_quantizers,
        "qat_epochs": 0,
        **extra,
    }


def export_int8(
    qmodel: nn.Module,
    output: str | os.PathLike,
    input_size: Optional[int] = None,
    exporter: str = "torchscript",
    **facts: Any,
) -> Path:
    """Write a calibrated (and possibly QAT-trained) fake-quantized model as the int8 ONNX file;
    ``exporter``: torch's ONNX exporter (:mod:`ghostzoo.deploy.onnx_export`)."""
    output = check_output(output, "onnx", exporter)
    cfg = qmodel.pretrained_cfg
    size = input_size or cfg.input_size[-1]
    if size != cfg.input_size[-1]:
        qmodel.pretrained_cfg = dataclasses.replace(cfg, input_size=(cfg.input_size[0], size, size))
    try:
        proto = int8_proto(qmodel, size, exporter, quantization=facts)
    finally:
        qmodel.pretrained_cfg = cfg
    return save_proto(proto, output)


def quantize_to_onnx(
    model: nn.Module,
    calib_loader: CalibrationData,
    output: str | os.PathLike,
    observer: str = "minmax",
    keep_float: Sequence[str] = (),
    input_size: Optional[int] = None,
    exporter: str = "torchscript",
) -> Path:
    """Post-training int8 quantization of ``model`` into the ONNX file ``output`` (written atomically).

    Args:
        model: a float ghostzoo model of a supported family (not modified).
        calib_loader: calibration images, preprocessed as the model expects (its eval transform):
            a ``(N, C, H, W)`` tensor or an iterable of batches (a ``DataLoader`` of
            ``(images, targets, ...)`` works as it is).
        output: the ``.onnx`` file to write; ``validate`` / ``predict`` / ``benchmark`` accept it.
        observer: ``minmax``, ``percentile`` (99.99th) or ``mse``: how activation ranges are chosen.
        keep_float: ``fnmatch`` patterns of module names to leave in float.
        input_size: the square input side the file's cfg states (default: the model's).
        exporter: ``torchscript`` or ``dynamo``, torch's ONNX exporter (:mod:`ghostzoo.deploy.onnx_export`).

    Returns the path written.
    """
    output = check_output(output, "onnx", exporter)
    qmodel = prepare(model, observer, keep_float, input_size)
    seen = calibrate(qmodel, calibration_batches(calib_loader))
    return export_int8(qmodel, output, input_size, exporter, **scheme(qmodel.quant_spec, seen))
