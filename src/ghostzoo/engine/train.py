"""One training loop for every model: recipes, fine-tuning, resume, AMP, EMA and DDP.

Determinism is built in rather than bolted on: every epoch re-seeds all random generators from
``(seed, epoch, rank)`` and the data order from ``(seed, epoch)``, so a run resumed from the
checkpoint written at the end of epoch ``e`` replays epochs ``e+1...`` exactly as the uninterrupted
run does. Checkpoints are written to a temp file and renamed; a run killed at any instant loses at
most the epoch in progress.

The run is built by :mod:`.setup`, its files are kept by :mod:`.checkpoint`; this module holds the
loop: :func:`train_one_epoch`, :func:`evaluate_epoch` and :func:`train` around them. Progress goes to
the ``ghostzoo.engine.train`` logger (one INFO line per epoch), the progress bar to tqdm.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from itertools import islice
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from .._io import first_line, write_json_atomic
from .._runtime import autocast, to_memory_format
from ..errors import GhostzooError
from .checkpoint import Progress, RunFolder, checkpoint_state, resume, run_folder, save_checkpoints
from .config import TrainConfig, train_resolution
from .distributed import Distributed
from .evaluate import EvalResult, evaluate
from .setup import TrainData, Trainer, build_data, build_model, build_trainer

logger = logging.getLogger(__name__)


class EpochSeeds(NamedTuple):
    """The seeds of one epoch of a run: ``global_`` for Python, NumPy and torch (dropout, and the
    initial weights at epoch -1), ``sampler`` for the shuffle, ``loader`` for the workers' augmentation.

    Public so that a reference loop can draw the very random numbers ghostzoo's trainer draws
    (``benchmarks/train_imagenette.py``): a resumed epoch is re-seeded from these alone.
    """

    global_: int
    sampler: int
    loader: int


def epoch_seeds(seed: int, epoch: int, rank: int = 0) -> EpochSeeds:
    """The seeds of ``epoch`` (-1: the initial weights) of the run seeded ``seed``, on process ``rank``."""
    return EpochSeeds((seed * 1_000_003 + epoch * 10_007 + rank) % (2**31), seed * 7919 + epoch, seed * 104_729 + epoch)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class _Losses:
    """The epoch's per-step losses, kept on the device and read back once per log interval:
    ``loss.item()`` at every step would make the host wait for the device at every step."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.pending: List[Tuple[int, torch.Tensor, int]] = []  # (step, loss, batch size)
        self.total, self.seen, self.last = 0.0, 0, math.nan

    def add(self, step: int, loss: torch.Tensor, images: int) -> None:
        self.pending.append((step, loss.detach(), images))

    def sync(self) -> None:
        """Read the pending losses (one transfer) into the epoch's sums; a loss that is not finite ends
        the run, naming its step."""
        if not self.pending:
            return
        values = torch.stack([loss for _, loss, _ in self.pending]).tolist()
        for (step, _, images), value in zip(self.pending, values):
            if not math.isfinite(value):
                raise GhostzooError(
                    f"loss became {value} at epoch {self.epoch + 1} step {step}; lower --lr or check the data"
                )
            self.total += value * images
            self.seen += images
        self.last = values[-1]
        self.pending.clear()


def _usable_batch(
    images: Optional[torch.Tensor], targets: Optional[torch.Tensor], pairs: bool
) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """The batch to train on, None when no image of it is left: all were unreadable, or mixup (which
    pairs samples, so drops an odd one) had a single one."""
    if images is not None and pairs and len(images) % 2:
        images, targets = images[:-1], targets[:-1]
    return (images, targets) if images is not None and len(images) else None


def _train_step(
    cfg: TrainConfig, trainer: Trainer, images: torch.Tensor, targets: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """One optimizer update (and EMA and schedule step) on one batch; the loss, still on the device."""
    images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
    if trainer.mixup_fn is not None:
        images, targets = trainer.mixup_fn(images, targets)
    images = to_memory_format(images, cfg.channels_last)
    try:
        with autocast(device, cfg.amp):
            loss = trainer.criterion(trainer.train_model(images), targets)
    except torch._dynamo.exc.BackendCompilerFailed as e:  # e.g. no C++ compiler for inductor on CPU
        inner = e.inner_exception
        raise GhostzooError(
            f"--compile failed: {type(inner).__name__}: {first_line(inner)}; train without --compile"
        ) from e
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.scaler.scale(loss).backward()
    trainer.scaler.step(trainer.optimizer)
    trainer.scaler.update()
    trainer.num_updates += 1
    trainer.scheduler.step_update(trainer.num_updates)
    if trainer.ema is not None:
        trainer.ema.update(trainer.model, step=trainer.num_updates)
    return loss


def train_one_epoch(
    cfg: TrainConfig, trainer: Trainer, data: TrainData, epoch: int, dist_ctx: Distributed
) -> Dict[str, Any]:
    """Train ``epoch`` (at most ``data.steps`` batches) after re-seeding every generator from it, so that
    it replays the same whether or not the run was resumed; the epoch's record (loss, speed, lr, skipped)."""
    seeds = epoch_seeds(cfg.seed, epoch, dist_ctx.rank)
    seed_everything(seeds.global_)
    data.sampler_gen.manual_seed(seeds.sampler)
    data.loader_gen.manual_seed(seeds.loader)
    if isinstance(data.sampler, DistributedSampler):  # its shuffle is seeded by (cfg.seed, epoch)
        data.sampler.set_epoch(epoch)
    size = train_resolution(cfg, epoch, data.img_size)
    data.train_set.transform = data.train_transform(size)  # the loader's workers start per epoch: they copy it
    trainer.train_model.train()
    losses, skipped = _Losses(epoch), []
    bar = tqdm(
        total=data.steps,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        unit="step",
        disable=None if (cfg.progress and dist_ctx.main) else True,
        leave=False,
    )
    start = time.perf_counter()
    for step, (images, targets, bad) in enumerate(islice(data.loader, data.steps)):
        skipped += [{"path": s.path, "reason": s.reason} for s in bad]
        batch = _usable_batch(images, targets, trainer.mixup_fn is not None)
        if batch is None:
            continue
        losses.add(step, _train_step(cfg, trainer, *batch, dist_ctx.device), len(batch[0]))
        bar.update()
        if (step + 1) % cfg.log_interval == 0:
            losses.sync()
            bar.set_postfix(loss=f"{losses.last:.3f}", lr=f"{trainer.lr:.2e}")
            logger.debug(
                "epoch %d/%d step %d/%d: loss %.4f  lr %.2e",
                epoch + 1,
                cfg.epochs,
                step + 1,
                data.steps,
                losses.last,
                trainer.lr,
            )
    losses.sync()
    elapsed = time.perf_counter() - start
    bar.close()
    return {
        "epoch": epoch + 1,
        "train_loss": losses.total / max(losses.seen, 1),
        "train_images_per_s": losses.seen * dist_ctx.world / elapsed,
        "img_size": size,
        "lr": trainer.lr,
        "skipped": skipped,
    }


def evaluate_epoch(cfg: TrainConfig, trainer: Trainer, data: TrainData, device: torch.device) -> Dict[str, Any]:
    """Top-1 / top-5 and loss of the model (and top-1 / top-5 of its EMA) on the validation split."""

    def run(model: nn.Module) -> EvalResult:
        return evaluate(model, data.val_loader, device, cfg.amp, cfg.channels_last, data.val_set.classes)

    result = run(trainer.model)
    record = {"top1": result.top1, "top5": result.top5, "val_loss": result.loss}
    if trainer.ema is not None:
        ema = run(trainer.ema.module)
        record.update(ema_top1=ema.top1, ema_top5=ema.top5)
    return record


def _end_epoch(
    cfg: TrainConfig,
    trainer: Trainer,
    data: TrainData,
    dist_ctx: Distributed,
    folder: RunFolder,
    progress: Progress,
    record: Dict[str, Any],
) -> None:
    """The main process's share of an epoch's end: evaluate, checkpoint, summarise, log."""
    record.update(evaluate_epoch(cfg, trainer, data, dist_ctx.device))
    improved = progress.add(record)
    save_checkpoints(folder, checkpoint_state(cfg, trainer, data, progress), improved)
    write_json_atomic(folder.summary, _summary(cfg, progress, dist_ctx.world))
    logger.info(_epoch_line(cfg, record, trainer.ema is not None))


def _epoch_line(cfg: TrainConfig, record: Dict[str, Any], ema: bool) -> str:
    return (
        f"epoch {record['epoch']}/{cfg.epochs}: loss {record['train_loss']:.4f}  top-1 {record['top1']:.2f}  "
        f"top-5 {record['top5']:.2f}"
        + (f"  ema top-1 {record['ema_top1']:.2f}" if ema else "")
        + f"  {record['train_images_per_s']:.1f} img/s"
        + (f"  at {record['img_size']} px" if cfg.img_size_start else "")
        + (f"  skipped {len(record['skipped'])}" if record["skipped"] else "")
    )


def train(cfg: TrainConfig, model: Optional[nn.Module] = None) -> Dict[str, Any]:
    """Train (or fine-tune) ``cfg.model`` on ``cfg.data``; returns the run summary (also summary.json).

    ``model``: train this module (in place) instead of building ``cfg.model``, e.g. the fake-quantized
    model of quantization-aware training; ``cfg.model`` then only names the preprocessing, and
    ``cfg.checkpoint``, ``num_classes`` and the drop rates are not used. It keeps its own cfg.
    Under torchrun, each process trains its shard and rank 0 evaluates, writes and logs.
    """
    cfg.finalize()
    folder = run_folder(cfg)  # before the process group: a refused run stops every rank the same way
    dist_ctx = Distributed(cfg.device)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    data = build_data(cfg, dist_ctx)
    seed_everything(epoch_seeds(cfg.seed, epoch=-1).global_)  # the same initial weights on every rank and run
    model, num_classes = build_model(cfg, data, dist_ctx.device, model)
    trainer = build_trainer(cfg, model, num_classes, data.steps, dist_ctx)
    progress = Progress()
    if cfg.resume:
        progress = resume(folder, trainer)
        if dist_ctx.main:
            logger.info("resumed %s after epoch %d/%d", folder.last, progress.epoch, cfg.epochs)
    trainer.num_updates = progress.epoch * data.steps
    for epoch in range(progress.epoch, cfg.epochs):
        record = train_one_epoch(cfg, trainer, data, epoch, dist_ctx)
        dist_ctx.sync_buffers(model)
        if dist_ctx.main:
            _end_epoch(cfg, trainer, data, dist_ctx, folder, progress, record)
        dist_ctx.barrier()

    summary = _summary(cfg, progress, dist_ctx.world, dist_ctx.replicas_identical(model))
    if dist_ctx.main:
        write_json_atomic(folder.summary, summary)
    dist_ctx.close()
    return summary


def _summary(cfg: TrainConfig, progress: Progress, world: int, identical: Optional[bool] = None) -> Dict[str, Any]:
    """summary.json: the run's configuration and per-epoch records, as plain JSON types."""
    out = {
        "model": cfg.model,
        "data": cfg.data,
        "recipe": cfg.recipe,
        "epochs": cfg.epochs,
        "world_size": world,
        "best_top1": progress.best,
        "history": progress.history,
        "config": dataclasses.asdict(cfg),
    }
    if identical is not None:
        out["replicas_identical"] = identical
    return json.loads(json.dumps(out, default=str))
