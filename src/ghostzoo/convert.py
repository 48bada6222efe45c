"""``convert``: any weight file ghostzoo reads, written once as ghostzoo's own file.

A PaddleClas ``.pdparams``, a TensorFlow bundle, a MindSpore ``.ckpt`` or an official / timm
``.pth`` becomes a ``.safetensors`` (or torch) file in ghostzoo's names and layouts, with the
architecture, classes and preprocessing in its metadata: it then loads anywhere ghostzoo runs, with
no format detection and no key mapping, and shares like any safetensors file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch

from .checkpoints import save_checkpoint
from .errors import CheckpointError
from .factory import create_model


def convert_checkpoint(
    source: str | os.PathLike, name: str, output: str | os.PathLike, use_ema: Optional[bool] = None
) -> Path:
    """Load ``source`` into model ``name`` (``arch`` or ``arch.tag``), check that the result runs to
    finite logits, and write it to ``output`` atomically; the path written."""
    model = create_model(name, checkpoint_path=source, use_ema=use_ema).eval()
    cfg = model.pretrained_cfg
    with torch.no_grad():
        logits = model(torch.randn(2, *cfg.input_size, generator=torch.Generator().manual_seed(0)))
    if not torch.isfinite(logits).all():
        raise CheckpointError(f"{source} loaded into {name} gives non-finite logits; nothing written")
    extra = {
        "num_classes": model.num_classes,
        "class_names": list(cfg.class_names),
        "img_size": cfg.input_size[-1],
        "crop_pct": cfg.crop_pct,
    }
    return save_checkpoint(output, model, cfg.architecture, extra)
