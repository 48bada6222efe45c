"""What a training run is told: the paper recipes and :class:`TrainConfig`, every knob of a run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ..errors import GhostzooError
from ..registry import get_pretrained_cfg

# The paper recipes, at their published batch sizes; lr is scaled linearly with the batch size.
RECIPES: Dict[str, Dict[str, Any]] = {
    # GhostNet (CVPR 2020, Sec. 4.2): SGD momentum 0.9, cosine, label smoothing 0.1, dropout 0.2,
    # weight decay 4e-5; lr 0.4 for a batch of 1024.
    "ghostnet": dict(
        opt="sgd",
        lr_base=0.4,
        lr_base_batch=1024,
        momentum=0.9,
        weight_decay=4e-5,
        warmup_epochs=3,
        smoothing=0.1,
        drop_rate=0.2,
        color_jitter=0.4,
        auto_augment=None,
        re_prob=0.0,
        mixup=0.0,
        cutmix=0.0,
        ema=False,
        ema_decay=0.9999,
        crop_scale=(0.08, 1.0),
    ),
    # DeiT's recipe, used by TNT, ViG, Wave-MLP, AugViT: AdamW, RandAugment, mixup/cutmix, erasing, EMA.
    "deit": dict(
        opt="adamw",
        lr_base=5e-4,
        lr_base_batch=512,
        momentum=0.9,
        weight_decay=0.05,
        warmup_epochs=5,
        smoothing=0.1,
        drop_rate=0.0,
        color_jitter=None,
        auto_augment="rand-m9-mstd0.5-inc1",
        re_prob=0.25,
        mixup=0.8,
        cutmix=1.0,
        ema=True,
        ema_decay=0.99996,
        crop_scale=(0.08, 1.0),
    ),
    # From scratch on a small dataset in tens of epochs (ghostnet_100.imagenette): the GhostNet
    # recipe's optimizer at the learning rate of CIFAR-style schedules, the weight decay of small
    # datasets, RandAugment and crops that keep at least a third of the image; no mixup or EMA, which
    # pay off only over longer schedules. Pair it with a test resolution ~1.25x the training one
    # (--val-img-size): random-resized crops enlarge objects, so the network sees them larger in training.
    "short": dict(
        opt="sgd",
        lr_base=0.1,
        lr_base_batch=64,
        momentum=0.9,
        weight_decay=5e-4,
        warmup_epochs=2,
        smoothing=0.1,
        drop_rate=0.2,
        color_jitter=None,
        auto_augment="rand-m6-mstd0.5-inc1",
        re_prob=0.0,
        mixup=0.0,
        cutmix=0.0,
        ema=False,
        ema_decay=0.9998,
        crop_scale=(0.35, 1.0),
    ),
}


def recipe_defaults(recipe: str) -> Dict[str, Any]:
    """A copy of ``recipe``'s hyper-parameters (callers may change it), or a one-line error naming the recipes."""
    try:
        return dict(RECIPES[recipe])
    except KeyError:
        raise GhostzooError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}") from None


def world_size() -> int:
    """The number of training processes, as torchrun announces it (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@dataclass
class TrainConfig:
    """Every knob of a run. ``None`` means: the recipe's value."""

    model: str
    data: str
    output_dir: str = ""
    recipe: str = "ghostnet"
    epochs: int = 10
    batch_size: int = 64
    lr: Optional[float] = None
    min_lr: float = 1e-6
    opt: Optional[str] = None
    momentum: Optional[float] = None
    weight_decay: Optional[float] = None
    warmup_epochs: Optional[float] = None
    smoothing: Optional[float] = None
    drop_rate: Optional[float] = None
    drop_path_rate: Optional[float] = None
    color_jitter: Optional[float] = None
    auto_augment: Optional[str] = None
    re_prob: Optional[float] = None
    mixup: Optional[float] = None
    cutmix: Optional[float] = None
    ema: Optional[bool] = None
    ema_decay: Optional[float] = None
    crop_scale: Optional[Tuple[float, float]] = None  # area range of the random-resized crops
    img_size: Optional[int] = None  # training resolution (default: the model's)
    img_size_start: Optional[int] = None  # progressive resizing: the first epoch's resolution (see train_resolution)
    val_img_size: Optional[int] = None  # evaluation resolution, recorded in the checkpoint (default: img_size)
    val_crop_pct: Optional[float] = None  # evaluation center-crop fraction (default: the model's)
    checkpoint: Optional[str] = None
    num_classes: Optional[int] = None
    resume: bool = False
    seed: int = 0
    workers: int = 2
    amp: Optional[str] = None
    channels_last: bool = True
    compile: bool = False
    device: str = "cpu"
    train_split: str = "train"
    val_split: str = "val"
    steps_per_epoch: Optional[int] = None  # cap, for smoke tests and quick experiments
    deterministic: bool = False
    progress: bool = True
    log_interval: int = 50  # steps between reads of the loss from the device (progress bar, debug log)

    def finalize(self) -> "TrainConfig":
        """Fill ``None`` knobs from the recipe and scale the learning rate to the batch size."""
        recipe = recipe_defaults(self.recipe)
        for key, value in recipe.items():
            if hasattr(self, key) and getattr(self, key) is None:
                setattr(self, key, value)
        if self.lr is None:
            self.lr = recipe["lr_base"] * self.batch_size * world_size() / recipe["lr_base_batch"]
        if not self.output_dir:
            self.output_dir = str(Path("runs") / self.model)
        for name in ("epochs", "batch_size", "log_interval"):
            if getattr(self, name) < 1:
                raise GhostzooError(f"{name} must be at least 1")
        self._check_knobs()
        return self

    def _check_knobs(self) -> None:
        """Refuse values timm and torch would take without a word or fail on deep inside the run."""
        from timm.optim import list_optimizers

        if not self.lr > 0:
            raise GhostzooError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.smoothing < 1:
            raise GhostzooError(f"smoothing must be in [0, 1), got {self.smoothing}")
        if self.opt.lower().split("_")[-1] not in list_optimizers():  # e.g. lookahead_sgd: timm's prefix
            raise GhostzooError(f"unknown optimizer {self.opt!r}; timm's are listed by timm.optim.list_optimizers()")
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise GhostzooError(f"crop_scale must be two fractions 0 < low <= high <= 1, got {low}, {high}")
        if self.img_size_start is not None:
            final = self.img_size or get_pretrained_cfg(self.model).input_size[-1]
            if self.img_size_start > final:
                raise GhostzooError(
                    f"img_size_start {self.img_size_start} is larger than the training resolution {final}"
                )
        if self.val_crop_pct is not None and not 0 < self.val_crop_pct <= 1:
            raise GhostzooError(f"val_crop_pct must be in (0, 1], got {self.val_crop_pct}")


# Progressive resizing reaches the final resolution at this fraction of the run, so that the last
# epochs, where the learning rate anneals, train at the resolution the evaluation size was chosen for.
RAMP_FRACTION = 0.75
RAMP_STEP = 16  # px: few distinct shapes, so each is tuned once by oneDNN / cuDNN


def train_resolution(cfg: TrainConfig, epoch: int, final: int) -> int:
    """The training resolution of ``epoch`` (0-based): ``final`` without ``cfg.img_size_start``; with it,
    progressive resizing (fast.ai, FFCV): low-resolution epochs cost a fraction of the compute and teach
    the coarse features, so a time budget buys more epochs. The size grows linearly from
    ``img_size_start`` in steps of ``RAMP_STEP`` px and stays at ``final`` from ``RAMP_FRACTION`` of the run on."""
    start = cfg.img_size_start
    ramp = round(RAMP_FRACTION * cfg.epochs) - 1  # the first epoch at ``final``
    if not start or start >= final or ramp < 1:
        return final
    size = start + (final - start) * min(1.0, epoch / ramp)
    return max(start, min(final, int(size) // RAMP_STEP * RAMP_STEP))
