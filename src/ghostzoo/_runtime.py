"""Device, precision and memory-format choices shared by prediction, evaluation, training and benchmarks."""

from __future__ import annotations

import contextlib
import functools
import platform
from pathlib import Path
from typing import ContextManager, Optional

import torch

from .errors import GhostzooError


def resolve_device(name: str | torch.device) -> torch.device:
    """A usable torch device, or a one-line error (e.g. ``cuda`` on a machine without a GPU)."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise GhostzooError(f"unknown device {name!r} ({e})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GhostzooError(f"device {name!r} requested but CUDA is not available here; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise GhostzooError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s)")
    return device


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, amp: Optional[str]) -> ContextManager:
    """Mixed precision: bf16 on CPU, fp16 or bf16 on CUDA; a no-op when ``amp`` is None."""
    if not amp:
        return contextlib.nullcontext()
    if amp not in AMP_DTYPES:
        raise GhostzooError(f"--amp must be one of {sorted(AMP_DTYPES)}, not {amp!r}")
    if device.type == "cpu" and amp == "fp16":
        raise GhostzooError("fp16 autocast is not supported on CPU; use --amp bf16")
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp])


def to_memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


@functools.lru_cache(maxsize=None)
def int8_dot_products_exact() -> bool:
    """Whether this CPU's int8 dot products are exact: always, except on x86 without VNNI.

    There, ONNX Runtime's u8 x s8 kernels (and OpenVINO's) sum pairs of products in 16 bits with
    saturation (VPMADDUBSW), so an int8 file with full-range int8 weights can compute something other
    than its fake-quantized model; with VNNI (or on Arm) the sums are exact.
    """
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return True  # not Linux: nothing to read the flags from; assume a current CPU
    return "avx512_vnni" in flags or "avx_vnni" in flags


def check_input_size(model: torch.nn.Module, size: int, option: str) -> None:
    """Refuse a square input side too small for ``model`` (a transformer's patches, a graph's
    neighbours, a pooling window) before the work that would fail deep inside it, naming the smallest
    side it takes (one forward on a blank image; a few more, at multiples of the deepest stride, when
    it fails)."""
    if _runs_at(model, size):
        return
    step = max((f["reduction"] for f in getattr(model, "feature_info", [])), default=8)
    tried = range(step * (size // step + 1), 1025, step)
    smallest = next((s for s in tried if _runs_at(model, s)), None)
    name = model.pretrained_cfg.architecture
    if smallest is None:
        raise GhostzooError(f"{option} {size}: {name} does not run on blank square images up to 1024px")
    raise GhostzooError(f"{option} {size} is too small for {name}: the smallest side it runs on is {smallest}px")


def _runs_at(model: torch.nn.Module, size: int) -> bool:
    """Whether ``model`` (in eval mode, on its own device) runs on one ``size`` x ``size`` image."""
    param = next(model.parameters())
    x = torch.zeros(1, model.pretrained_cfg.input_size[0], size, size, device=param.device, dtype=param.dtype)
    training = model.training
    try:
        with torch.no_grad():
            model.eval()(x)
        return True
    except (RuntimeError, ValueError, IndexError, AssertionError, ZeroDivisionError):
        return False
    finally:
        model.train(training)
