"""Device, precision and memory-format choices shared by the evaluation and training loops."""

from __future__ import annotations

import contextlib
from typing import ContextManager, Optional

import torch

from ..errors import GhostzooError

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
