"""Everything a run builds before its first step: the data, the model, and what trains it.

Each builder draws no random numbers of its own except :func:`build_model` (the initial weights,
seeded by the caller), so the order of the others does not change a run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler

from .._runtime import check_input_size
from ..data import (
    LabelledImages,
    build_dataset,
    collate_skipping,
    create_train_transform,
    create_transform,
    readable_class_names,
)
from ..errors import GhostzooError
from ..factory import create_model
from ..registry import PretrainedCfg, get_pretrained_cfg
from .config import TrainConfig
from .distributed import Distributed

if TYPE_CHECKING:  # annotations only: build_trainer imports these when a run starts
    from timm.data import Mixup
    from timm.scheduler import CosineLRScheduler
    from timm.utils import ModelEmaV3


@dataclass
class TrainData:
    """The two splits, their loaders, and the generators that each epoch re-seeds."""

    pretrained_cfg: PretrainedCfg  # of cfg.model, at the run's evaluation size and crop: the checkpoint's
    img_size: int  # training resolution (of the last epochs, with progressive resizing)
    train_transform: Callable[[int], Callable]  # the training augmentation at a given resolution
    train_set: LabelledImages
    val_set: LabelledImages
    sampler: Sampler
    sampler_gen: torch.Generator  # the shuffle of a single process (DistributedSampler seeds its own)
    loader_gen: torch.Generator  # the workers' augmentation
    loader: DataLoader
    val_loader: DataLoader
    steps: int  # optimizer steps per epoch
    class_names: List[str]  # readable, as ``ghostzoo predict`` prints them: saved with the weights


@dataclass
class Trainer:
    """The model and everything that updates it; all of it is saved in a training checkpoint."""

    model: nn.Module  # the eager module: evaluation, EMA and checkpoints
    train_model: nn.Module  # what the step runs: ``model`` behind DDP and / or torch.compile
    num_classes: int
    optimizer: torch.optim.Optimizer
    scheduler: CosineLRScheduler  # stepped per update
    scaler: torch.amp.GradScaler
    ema: Optional[ModelEmaV3]
    mixup_fn: Optional[Mixup]
    criterion: nn.Module
    num_updates: int = 0  # the scheduler's and EMA's step count

    @property
    def lr(self) -> float:
        """The learning rate of the latest update."""
        return self.optimizer.param_groups[0]["lr"]


def build_data(cfg: TrainConfig, dist_ctx: Distributed) -> TrainData:
    """The training split with the recipe's augmentation, the validation split with the model's eval
    preprocessing; refuses splits whose classes differ and a batch larger than the training split."""
    pcfg = get_pretrained_cfg(cfg.model)
    img_size = cfg.img_size or pcfg.input_size[-1]
    val_size = cfg.val_img_size or img_size
    pcfg = dataclasses.replace(
        pcfg, input_size=(pcfg.input_size[0], val_size, val_size), crop_pct=cfg.val_crop_pct or pcfg.crop_pct
    )

    def train_transform(size: int) -> Callable:
        return create_train_transform(
            pcfg,
            size,
            auto_augment=cfg.auto_augment,
            re_prob=cfg.re_prob or 0.0,
            color_jitter=cfg.color_jitter,
            scale=cfg.crop_scale,
        )

    try:
        first_transform = train_transform(img_size)
    except (AssertionError, ValueError, KeyError) as e:  # timm's word for a policy it cannot parse
        raise GhostzooError(f"cannot build the training augmentation (--auto-augment {cfg.auto_augment!r}): {e}") from e
    train_set = build_dataset(cfg.data, cfg.train_split, first_transform)
    val_set = build_dataset(cfg.data, cfg.val_split, create_transform(pcfg))
    if train_set.classes != val_set.classes:
        only_train = sorted(set(train_set.classes) - set(val_set.classes))
        only_val = sorted(set(val_set.classes) - set(train_set.classes))
        raise GhostzooError(
            f"the {cfg.train_split} and {cfg.val_split} splits have different classes: only in "
            f"{cfg.train_split}: {', '.join(only_train[:5]) or '-'}; only in {cfg.val_split}: "
            f"{', '.join(only_val[:5]) or '-'}"
        )
    sampler_gen, loader_gen = torch.Generator(), torch.Generator()
    sampler = (
        DistributedSampler(train_set, seed=cfg.seed, drop_last=True)
        if dist_ctx.world > 1
        else RandomSampler(train_set, generator=sampler_gen)
    )
    loader = DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        collate_fn=collate_skipping,
        drop_last=True,
        generator=loader_gen,
        pin_memory=dist_ctx.device.type == "cuda",
    )
    if len(loader) == 0:
        raise GhostzooError(f"batch size {cfg.batch_size} is larger than the training split ({len(train_set)} images)")
    val_loader = DataLoader(val_set, batch_size=cfg.batch_size, num_workers=cfg.workers, collate_fn=collate_skipping)
    return TrainData(
        pcfg,
        img_size,
        train_transform,
        train_set,
        val_set,
        sampler,
        sampler_gen,
        loader_gen,
        loader,
        val_loader,
        steps=min(len(loader), cfg.steps_per_epoch or len(loader)),
        class_names=readable_class_names(train_set.classes),
    )


def build_model(
    cfg: TrainConfig, data: TrainData, device: torch.device, model: Optional[nn.Module] = None
) -> Tuple[nn.Module, int]:
    """The module to train, on ``device`` in the run's memory format, and how many classes it predicts.

    A given ``model`` (the fake-quantized one of QAT) is trained as it is; otherwise ``cfg.model`` is
    built (from ``cfg.checkpoint`` when fine-tuning) with a head for the data's classes, and its
    pretrained config is rewritten to describe the run, so the checkpoint rebuilds it by itself.
    The caller seeds the global generators first: this draws the initial weights.
    """
    if model is not None:
        num_classes = getattr(model, "num_classes", None)
        if num_classes != len(data.train_set.classes):
            raise GhostzooError(
                f"the model predicts {num_classes} classes but {cfg.data} has {len(data.train_set.classes)}"
            )
    else:
        num_classes = cfg.num_classes or len(data.train_set.classes)
        if num_classes < len(data.train_set.classes):
            raise GhostzooError(
                f"--num-classes {num_classes} is fewer than the {len(data.train_set.classes)} classes of {cfg.data}"
            )
        model = _create_model(cfg, data, num_classes)
        check_input_size(model, data.img_size, "--img-size")
        if cfg.img_size_start:
            check_input_size(model, cfg.img_size_start, "--img-size-start")
        check_input_size(model, data.pretrained_cfg.input_size[-1], "--val-img-size")
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    return model, num_classes


def _create_model(cfg: TrainConfig, data: TrainData, num_classes: int) -> nn.Module:
    model_kwargs: Dict[str, Any] = {"drop_rate": cfg.drop_rate}
    if cfg.drop_path_rate:
        model_kwargs["drop_path_rate"] = cfg.drop_path_rate
    model = create_model(
        cfg.model, checkpoint_path=None if cfg.resume else cfg.checkpoint, num_classes=num_classes, **model_kwargs
    )
    model.pretrained_cfg = dataclasses.replace(
        model.pretrained_cfg,
        tag="trained",
        url="",
        hf_hub_id="",
        num_classes=num_classes,
        input_size=data.pretrained_cfg.input_size,
        crop_pct=data.pretrained_cfg.crop_pct,
        class_names=tuple(data.class_names),
        label_names="",
        published=dataclasses.replace(model.pretrained_cfg.published, top1=None, top5=None, source=""),
    )
    return model


def build_trainer(cfg: TrainConfig, model: nn.Module, num_classes: int, steps: int, dist_ctx: Distributed) -> Trainer:
    """timm's optimizer, per-update cosine schedule with warmup, EMA and mixup; the loss; the fp16 loss
    scaler; and the training module: behind DDP with several processes, compiled with ``cfg.compile``."""
    from timm.data import Mixup
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler
    from timm.utils import ModelEmaV3

    device = dist_ctx.device
    optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    scheduler = CosineLRScheduler(
        optimizer,
        t_initial=cfg.epochs * steps,
        lr_min=cfg.min_lr,
        warmup_t=int(cfg.warmup_epochs * steps),
        warmup_lr_init=cfg.lr * 1e-3,
        t_in_epochs=False,
    )
    mixup_fn = (
        Mixup(
            mixup_alpha=cfg.mixup,
            cutmix_alpha=cfg.cutmix,
            label_smoothing=cfg.smoothing or 0.0,
            num_classes=num_classes,
        )
        if (cfg.mixup or cfg.cutmix)
        else None
    )
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16" and device.type == "cuda")
    ema = ModelEmaV3(model, decay=cfg.ema_decay) if cfg.ema else None
    train_model = dist_ctx.wrap(model)
    if cfg.compile:
        # Only the training step is compiled; evaluation and checkpoints use the eager module, which
        # shares the parameters, so eval mode costs no second compile and state_dict keys stay plain.
        train_model = torch.compile(train_model)
    return Trainer(
        model,
        train_model,
        num_classes,
        optimizer,
        scheduler,
        scaler,
        ema,
        mixup_fn,
        _build_loss(cfg, mixup_fn is not None),
    )


def _build_loss(cfg: TrainConfig, mixup_active: bool) -> nn.Module:
    if mixup_active:
        from timm.loss import SoftTargetCrossEntropy

        return SoftTargetCrossEntropy()  # mixup already smooths the targets
    return nn.CrossEntropyLoss(label_smoothing=cfg.smoothing or 0.0)
