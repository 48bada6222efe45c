"""Run a model on the fastest runtime this machine has: ``--backend auto`` and its choices.

PyTorch eager is the reference, not the fastest way to run these small CNNs on a CPU: the project's
tables (docs/results/cpu.md) show ONNX Runtime and OpenVINO several times faster at batch 1. So
``predict``, ``validate`` and ``demo`` take a backend:

- ``eager``: the model as it is;
- ``compile``: ``torch.compile`` of the deploy form (inductor, frozen weights, C++ wrapper);
- ``onnxruntime`` / ``openvino``: the model exported once with ``ghostzoo export``'s parity check,
  kept in a cache keyed by the model, its weights and the export settings, and run by that runtime;
- ``auto`` (the command line's default on a CPU): OpenVINO if it is installed, else ONNX Runtime,
  else eager.

A runtime that is missing, or an export that fails its parity check, falls back to eager with one
logged line: the prediction is never silently different from the reference, only slower.
``precision="bf16"`` asks OpenVINO for bf16 inference (the other runtimes run fp32).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import logging
import os
from pathlib import Path
from typing import Optional, Tuple

import torch
import torch.nn as nn

from .._io import first_line
from ..errors import GhostzooError
from .export import export_model
from .reparameterize import reparameterize
from .runtime import ExportedModel, load_exported

logger = logging.getLogger(__name__)

INFERENCE_BACKENDS = ("auto", "eager", "compile", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16")
_FORMATS = {"onnxruntime": ("onnx", ".onnx"), "openvino": ("openvino", ".xml")}
_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}


def exported_cache_dir() -> Path:
    """Where exported copies are kept ($GHOSTZOO_CACHE, else ~/.cache/ghostzoo/exported)."""
    root = os.environ.get("GHOSTZOO_CACHE") or Path.home() / ".cache" / "ghostzoo"
    return Path(root) / "exported"


def installed(backend: str) -> bool:
    """Whether the runtime and the ONNX exporter it is fed by are installed (``pip install ghostzoo[deploy]``)."""
    return all(importlib.util.find_spec(m) is not None for m in (_MODULES[backend], "onnx"))


def resolve_backend(backend: str, device: torch.device) -> str:
    """The backend ``backend`` stands for here: ``auto`` picks the fastest runtime installed (eager on
    other devices than the CPU); an explicit runtime on another device is an error."""
    if backend not in INFERENCE_BACKENDS:
        raise GhostzooError(f"unknown backend {backend!r}; choose from {', '.join(INFERENCE_BACKENDS)}")
    if device.type != "cpu":
        if backend in _FORMATS:
            raise GhostzooError(f"--backend {backend} runs on the CPU; --device {device} takes eager or compile")
        return "eager" if backend == "auto" else backend
    if backend == "auto":
        return next((b for b in ("openvino", "onnxruntime") if installed(b)), "eager")
    return backend


def weights_digest(model: nn.Module) -> str:
    """A short digest of the model's name, parameters and buffers: the cache key of its exports."""
    h = hashlib.sha256(str(getattr(model, "pretrained_cfg", "")).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _exported_path(model: nn.Module, backend: str) -> Tuple[str, Path]:
    fmt, suffix = _FORMATS[backend]
    cfg = model.pretrained_cfg
    side = cfg.input_size[-1]
    key = f"{cfg.name}-{weights_digest(model)}-{side}px-{torch.__version__}"
    return fmt, exported_cache_dir() / key / f"model{suffix}"


def _exported(model: nn.Module, backend: str, precision: str, threads: Optional[int]) -> nn.Module:
    """The cached export of ``model`` for ``backend`` (exported and checked now if it is not cached)."""
    fmt, path = _exported_path(model, backend)
    if not path.is_file():
        export_model(model, fmt, path, dynamic_batch=True)  # raises ExportError when parity fails
        logger.info("exported %s for %s once: %s", model.pretrained_cfg.name, backend, path)
    kwargs = {"threads": threads} if threads else {}
    if backend == "openvino":
        kwargs["precision"] = "bf16" if precision == "bf16" else "f32"
    return load_exported(path, model.pretrained_cfg.architecture, **kwargs)


#: inductor settings of the ``compile`` backend: frozen weights (oneDNN pre-packs them) and the C++
#: wrapper (less Python per call); docs/results/compile_settings.md measures them against the others
COMPILE_OPTIONS = {"freezing": True, "cpp_wrapper": True}


def compile_for_inference(model: nn.Module) -> nn.Module:
    """``torch.compile`` of an eval-mode module with :data:`COMPILE_OPTIONS`, for a fixed input shape."""
    return torch.compile(model, dynamic=False, options=dict(COMPILE_OPTIONS))


def _compiled(model: nn.Module) -> nn.Module:
    deploy = reparameterize(copy.deepcopy(model).eval())
    compiled = compile_for_inference(deploy)
    compiled.pretrained_cfg, compiled.num_classes = model.pretrained_cfg, model.num_classes
    return compiled


def with_backend(
    model: nn.Module,
    backend: str = "auto",
    precision: str = "fp32",
    device: str | torch.device = "cpu",
    threads: Optional[int] = None,
) -> nn.Module:
    """``model`` (a ghostzoo model in eval mode) as ``backend`` runs it, with the same
    ``pretrained_cfg`` and ``num_classes``; eager, with one logged line, when the runtime is missing
    or the export fails its parity check."""
    if precision == "int8":  # it needs calibration images, which only the quantizer takes
        raise GhostzooError("int8 needs calibration images: run ghostzoo.quantization.int8_runtime(model, calib_dir)")
    if precision not in PRECISIONS:
        raise GhostzooError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    chosen = resolve_backend(backend, torch.device(device))
    model = model.eval()
    if isinstance(model, ExportedModel) or chosen == "eager":  # a file already runs on its runtime
        return model
    if precision == "bf16" and chosen != "openvino":
        logger.warning("bf16 inference is OpenVINO's; %s runs fp32", chosen)
    if chosen == "compile":
        return _compiled(model)
    if not installed(chosen):
        logger.warning("%s is not installed (pip install 'ghostzoo[deploy]'); running eager", chosen)
        return model
    try:
        return _exported(model, chosen, precision, threads)
    except GhostzooError as e:  # ExportError: the export failed its parity check, or could not be made
        name = model.pretrained_cfg.name
        logger.warning("%s: the %s export failed (%s); running eager", name, chosen, first_line(e))
        return model
