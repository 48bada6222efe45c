"""Quantization-aware fine-tuning: the calibrated fake-quantized model, trained by the project's engine.

As in the MindSpore GhostNet int8 recipe ("finetune a few epochs after post-quantization"), QAT
starts from the PTQ model: BatchNorm is already folded, the activation grids stay where
calibration put them, and the weights (whose per-channel int8 scales follow them) are trained
through the fake quantizers' straight-through gradient with the model's training recipe and data
pipeline (``ghostzoo.engine.train``), at 1/100 of the recipe's learning rate and without warm-up.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

import torch.nn as nn

from ..engine import TrainConfig, recipe_defaults, train

QAT_LR_FACTOR = 0.01


def qat_learning_rate(batch_size: int, recipe: str = "ghostnet") -> float:
    """1/100 of the recipe's learning rate at ``batch_size``."""
    r = recipe_defaults(recipe)
    return QAT_LR_FACTOR * r["lr_base"] * batch_size / r["lr_base_batch"]


def finetune(
    qmodel: nn.Module,
    data: str | os.PathLike,
    epochs: int,
    output_dir: str | os.PathLike,
    lr: Optional[float] = None,
    batch_size: int = 64,
    recipe: str = "ghostnet",
    **train_args: Any,
) -> Dict[str, Any]:
    """Train the calibrated fake-quantized ``qmodel`` in place on ``data`` for ``epochs``.

    ``train_args`` go to :class:`ghostzoo.engine.TrainConfig` (``workers``, ``seed``,
    ``train_split``, ``val_split``, ``steps_per_epoch``, ``progress`` ...). Checkpoints and
    ``summary.json`` go to ``output_dir``, as for any training run; returns the summary.
    """
    cfg = qmodel.pretrained_cfg
    config = TrainConfig(
        model=cfg.architecture,
        data=str(data),
        output_dir=str(output_dir),
        recipe=recipe,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr if lr is not None else qat_learning_rate(batch_size, recipe),
        warmup_epochs=0.0,
        ema=False,
        img_size=cfg.input_size[-1],
        **train_args,
    )
    return train(config, model=qmodel)
