"""Shared steps of the checkpoint filters that map other frameworks' names onto ghostzoo's."""

from __future__ import annotations

import re
from typing import Sequence, Tuple

import torch
import torch.nn as nn

from ..registry import StateDict

Rules = Sequence[Tuple[str, str]]  # (regex, replacement), applied in order to every key


def rename(key: str, rules: Rules) -> str:
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key


def fill_batchnorm_counters(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Add the ``num_batches_tracked`` counters PyTorch's BatchNorm keeps and other frameworks do not
    save (zero: they only matter to BatchNorm with ``momentum=None``, which no ghostzoo model uses)."""
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state_dict.setdefault(key, torch.zeros_like(value))
    return state_dict
