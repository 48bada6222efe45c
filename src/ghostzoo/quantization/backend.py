"""``--precision int8``: the model quantized once, cached, and run by the runtime where int8 pays.

The fp32 backends (:mod:`ghostzoo.deploy.backend`) only need the model; int8 also needs images to
calibrate on, which is why it lives here, above both the exporter and the quantizer. The file is the
one ``ghostzoo quantize`` writes (PTQ, the same observer and scheme): an OpenVINO IR when OpenVINO is
installed (its CPU plugin runs int8 faster than fp32 at every batch size, docs/int8.md), else the
QDQ ONNX file for ONNX Runtime. It is kept beside the fp32 exports, keyed by the model, its weights
and the calibration settings, so the second run loads it at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn

from .._io import first_line
from ..deploy.backend import exported_cache_dir, installed, resolve_backend, weights_digest
from ..deploy.export import ExportError
from ..deploy.runtime import ExportedModel, load_exported
from ..errors import GhostzooError
from .prepare import check_supported
from .workflow import quantize

logger = logging.getLogger(__name__)

# the runtimes that run an int8 file, and the file each takes
_SUFFIXES = {"openvino": ".xml", "onnxruntime": ".onnx"}


def _cached_path(model: nn.Module, backend: str, calib: dict) -> Path:
    cfg = model.pretrained_cfg
    settings = hashlib.sha256(json.dumps(calib, sort_keys=True).encode()).hexdigest()[:12]
    key = f"{cfg.name}-{weights_digest(model)}-{cfg.input_size[-1]}px-int8-{settings}-{torch.__version__}"
    return exported_cache_dir() / key / f"model{_SUFFIXES[backend]}"


def int8_runtime(
    model: nn.Module,
    calib_data: str | os.PathLike,
    backend: str = "auto",
    calib_split: str = "train",
    calib_size: int = 256,
    device: str | torch.device = "cpu",
    threads: Optional[int] = None,
    workers: int = 2,
) -> nn.Module:
    """``model`` quantized to int8 on ``calib_size`` images of ``calib_data`` (its ``calib_split``, or a
    plain folder of images) and run by ``backend`` (``auto``: OpenVINO, else ONNX Runtime).

    Quantized on the first call, then loaded from the cache. As with the fp32 backends, a missing
    runtime, or an int8 file that fails the runtime's parity check against the QDQ graph, gives back
    ``model`` (to run in fp32) with one logged line; a model, device or backend int8 cannot serve is a
    one-line error.
    """
    if isinstance(model, ExportedModel):
        raise GhostzooError("--precision int8 quantizes a model; an exported file runs as it is")
    check_supported(model)
    device = torch.device(device)
    if device.type != "cpu":
        raise GhostzooError(f"--precision int8 runs on the CPU, not on --device {device}")
    chosen = resolve_backend(backend, device)  # auto: eager when no runtime is installed
    if chosen not in _SUFFIXES and backend != "auto":
        raise GhostzooError(f"--precision int8 runs on {' or '.join(_SUFFIXES)}, not on {chosen}")
    if chosen not in _SUFFIXES or not installed(chosen):
        logger.warning("no int8 runtime is installed (pip install 'ghostzoo[deploy]'); running fp32")
        return model
    name = model.pretrained_cfg.name
    calib = {"data": str(Path(calib_data).resolve()), "split": calib_split, "size": calib_size}
    path = _cached_path(model, chosen, calib)
    if not path.is_file():
        try:
            report = quantize(model, calib_data, path, calib_split, calib_size, check_split=None, workers=workers)
        except ExportError as e:  # the runtime's file failed its parity check: as the fp32 backends do
            logger.warning("%s: the int8 %s file failed (%s); running fp32", name, chosen, first_line(e))
            with contextlib.suppress(OSError):  # its cache folder, left empty by the atomic write
                path.parent.rmdir()
            return model
        logger.info(
            "quantized %s to int8 once (%d calibration images, top-1 agreement with fp32 %.1f%% on them): %s",
            name,
            report.calibration_images,
            report.check.agreement,
            path,
        )
    return load_exported(path, model.pretrained_cfg.architecture, **({"threads": threads} if threads else {}))
