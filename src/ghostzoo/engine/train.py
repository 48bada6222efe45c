"""One training loop for every model: recipes, fine-tuning, resume, AMP, EMA and DDP.

Determinism is built in rather than bolted on: every epoch re-seeds all random generators from
``(seed, epoch, rank)`` and the data order from ``(seed, epoch)``, so a run resumed from the
checkpoint written at the end of epoch ``e`` replays epochs ``e+1...`` exactly as the uninterrupted
run does. Checkpoints are written to a temp file and renamed; a run killed at any instant loses at
most the epoch in progress.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from .._io import atomic_paths, first_line, check_writable_folder, write_json_atomic
from ..checkpoints import GHOSTZOO_FORMAT
from ..data import (build_dataset, collate_skipping, create_train_transform, create_transform,
                    readable_class_names)
from ..errors import GhostzooError
from ..factory import create_model
from ..registry import get_pretrained_cfg
from .._runtime import autocast, resolve_device, to_memory_format
from .evaluate import evaluate

# The paper recipes, at their published batch sizes; lr is scaled linearly with the batch size.
RECIPES: Dict[str, Dict[str, Any]] = {
    # GhostNet (CVPR 2020, Sec. 4.2): SGD momentum 0.9, cosine, label smoothing 0.1, dropout 0.2,
    # weight decay 4e-5; lr 0.4 for a batch of 1024.
    "ghostnet": dict(opt="sgd", lr_base=0.4, lr_base_batch=1024, momentum=0.9, weight_decay=4e-5,
                     warmup_epochs=3, smoothing=0.1, drop_rate=0.2, color_jitter=0.4, auto_augment=None,
                     re_prob=0.0, mixup=0.0, cutmix=0.0, ema=False, ema_decay=0.9999),
    # DeiT's recipe, used by TNT, ViG, Wave-MLP, AugViT: AdamW, RandAugment, mixup/cutmix, erasing, EMA.
    "deit": dict(opt="adamw", lr_base=5e-4, lr_base_batch=512, momentum=0.9, weight_decay=0.05,
                 warmup_epochs=5, smoothing=0.1, drop_rate=0.0, color_jitter=None,
                 auto_augment="rand-m9-mstd0.5-inc1", re_prob=0.25, mixup=0.8, cutmix=1.0, ema=True,
                 ema_decay=0.99996),
}


def recipe_defaults(recipe: str) -> Dict[str, Any]:
    try:
        return dict(RECIPES[recipe])
    except KeyError:
        raise GhostzooError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}") from None


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
    img_size: Optional[int] = None
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

    def finalize(self) -> "TrainConfig":
        """Fill ``None`` knobs from the recipe and scale the learning rate to the batch size."""
        recipe = recipe_defaults(self.recipe)
        for key, value in recipe.items():
            if hasattr(self, key) and getattr(self, key) is None:
                setattr(self, key, value)
        if self.lr is None:
            self.lr = recipe["lr_base"] * self.batch_size * _world_size() / recipe["lr_base_batch"]
        if not self.output_dir:
            self.output_dir = str(Path("runs") / self.model)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise GhostzooError(f"{name} must be at least 1")
        return self


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


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
    return EpochSeeds((seed * 1_000_003 + epoch * 10_007 + rank) % (2 ** 31), seed * 7919 + epoch,
                      seed * 104_729 + epoch)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> Dict[str, Any]:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                      "has_gauss": int(np_state[3]), "gauss": float(np_state[4])}}


def _set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))


def _parameters_digest(model: nn.Module) -> bytes:
    h = hashlib.sha256()
    for _, t in sorted(model.named_parameters()):
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.digest()


class _Distributed:
    """Process-group bookkeeping; a single process is world size 1, rank 0."""

    def __init__(self, device: str) -> None:
        self.world = _world_size()
        self.rank, self.local_rank = 0, 0
        self.device = resolve_device(device)
        if self.world > 1:
            self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            if self.device.type == "cuda":
                torch.cuda.set_device(self.local_rank)
                self.device = torch.device("cuda", self.local_rank)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self.rank = dist.get_rank()

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def sync_buffers(self, model: nn.Module) -> None:
        """Give every rank rank 0's BatchNorm statistics, as DDP does at the start of each forward;
        without this each rank keeps the statistics of its own last batch."""
        if self.world > 1:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)

    def replicas_identical(self, model: nn.Module) -> Optional[bool]:
        """Whether every rank holds bit-identical parameters (a check that DDP really synchronised)."""
        if self.world == 1:
            return None
        digest = torch.tensor(list(_parameters_digest(model)), dtype=torch.uint8)
        gathered = [torch.empty_like(digest) for _ in range(self.world)]
        dist.all_gather(gathered, digest)
        return all(torch.equal(g, gathered[0]) for g in gathered)

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _save_training_checkpoint(path: Path, state: Dict[str, Any]) -> None:
    with atomic_paths(path) as (tmp,):
        torch.save(state, tmp)


def _build_loss(cfg: TrainConfig, mixup_active: bool) -> nn.Module:
    if mixup_active:
        from timm.loss import SoftTargetCrossEntropy

        return SoftTargetCrossEntropy()  # mixup already smooths the targets
    return nn.CrossEntropyLoss(label_smoothing=cfg.smoothing or 0.0)


def train(cfg: TrainConfig, model: Optional[nn.Module] = None) -> Dict[str, Any]:
    """Train (or fine-tune) ``cfg.model`` on ``cfg.data``; returns the run summary (also summary.json).

    ``model``: train this module (in place) instead of building ``cfg.model``, e.g. the fake-quantized
    model of quantization-aware training; ``cfg.model`` then only names the preprocessing, and
    ``cfg.checkpoint``, ``num_classes`` and the drop rates are not used. It keeps its own cfg.
    """
    from timm.data import Mixup
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler
    from timm.utils import ModelEmaV3

    cfg.finalize()
    dist_ctx = _Distributed(cfg.device)
    device = dist_ctx.device
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    out_dir = Path(cfg.output_dir)
    last_path, best_path = out_dir / "last.pth", out_dir / "best.pth"
    if dist_ctx.main:
        check_writable_folder(out_dir, "--output-dir")  # created with its first file: bad input leaves nothing
        if not cfg.resume and last_path.exists():
            raise GhostzooError(f"{out_dir} already holds a run; pass --resume to continue it or choose "
                                f"another --output-dir")
    if cfg.resume and not last_path.exists():
        raise GhostzooError(f"nothing to resume: {last_path} does not exist")

    pcfg = get_pretrained_cfg(cfg.model)
    img_size = cfg.img_size or pcfg.input_size[-1]
    train_set = build_dataset(cfg.data, cfg.train_split, create_train_transform(
        pcfg, img_size, auto_augment=cfg.auto_augment, re_prob=cfg.re_prob or 0.0, color_jitter=cfg.color_jitter))
    val_set = build_dataset(cfg.data, cfg.val_split, create_transform(pcfg, img_size))
    if train_set.classes != val_set.classes:
        raise GhostzooError(f"train and val splits have different classes ({len(train_set.classes)} vs "
                            f"{len(val_set.classes)})")
    num_classes = cfg.num_classes or len(train_set.classes)
    class_names = readable_class_names(train_set.classes)  # what predict will print

    seed_everything(epoch_seeds(cfg.seed, epoch=-1).global_)  # the same initial weights on every rank and run
    if model is not None:
        outputs = getattr(model, "num_classes", None)
        if outputs != len(train_set.classes):
            raise GhostzooError(f"the model predicts {outputs} classes but {cfg.data} has {len(train_set.classes)}")
        num_classes = outputs
    else:
        model_kwargs: Dict[str, Any] = {"drop_rate": cfg.drop_rate}
        if cfg.drop_path_rate:
            model_kwargs["drop_path_rate"] = cfg.drop_path_rate
        model = create_model(cfg.model, checkpoint_path=None if cfg.resume else cfg.checkpoint,
                             num_classes=num_classes, **model_kwargs)
        model.pretrained_cfg = dataclasses.replace(
            model.pretrained_cfg, tag="trained", url="", hf_hub_id="", num_classes=num_classes,
            input_size=(pcfg.input_size[0], img_size, img_size), class_names=tuple(class_names),
            label_names="", published=dataclasses.replace(model.pretrained_cfg.published, top1=None, top5=None,
                                                          source=""))
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                    momentum=cfg.momentum)
    sampler_gen = torch.Generator()
    sampler = (DistributedSampler(train_set, seed=cfg.seed, drop_last=True) if dist_ctx.world > 1
               else RandomSampler(train_set, generator=sampler_gen))
    loader_gen = torch.Generator()
    loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                        collate_fn=collate_skipping, drop_last=True, generator=loader_gen,
                        pin_memory=device.type == "cuda")
    if len(loader) == 0:
        raise GhostzooError(f"batch size {cfg.batch_size} is larger than the training split "
                            f"({len(train_set)} images)")
    steps = min(len(loader), cfg.steps_per_epoch or len(loader))
    scheduler = CosineLRScheduler(optimizer, t_initial=cfg.epochs * steps, lr_min=cfg.min_lr,
                                  warmup_t=int(cfg.warmup_epochs * steps), warmup_lr_init=cfg.lr * 1e-3,
                                  t_in_epochs=False)
    mixup_fn = (Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.smoothing or 0.0,
                      num_classes=num_classes) if (cfg.mixup or cfg.cutmix) else None)
    criterion = _build_loss(cfg, mixup_fn is not None)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16" and device.type == "cuda")
    ema = ModelEmaV3(model, decay=cfg.ema_decay) if cfg.ema else None
    train_model: nn.Module = model
    if dist_ctx.world > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[dist_ctx.local_rank] if device.type == "cuda" else None)
    if cfg.compile:
        # Only the training step is compiled; evaluation and checkpoints use the eager module, which
        # shares the parameters, so eval mode costs no second compile and state_dict keys stay plain.
        train_model = torch.compile(train_model)

    start_epoch, history, best = 0, [], -1.0
    if cfg.resume:
        state = torch.load(last_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None and state.get("state_dict_ema") is not None:
            ema.module.load_state_dict(state["state_dict_ema"])
        start_epoch, history, best = state["epoch"] + 1, state["history"], state["best_top1"]
        _set_rng_state(state["rng"])
        if dist_ctx.main:
            print(f"resumed {last_path} after epoch {state['epoch'] + 1}/{cfg.epochs}")

    def checkpoint_state(epoch: int) -> Dict[str, Any]:
        return {"format": GHOSTZOO_FORMAT, "architecture": model.pretrained_cfg.architecture,
                "num_classes": num_classes, "class_names": class_names, "img_size": img_size,
                "state_dict": model.state_dict(),
                "state_dict_ema": ema.module.state_dict() if ema is not None else None,
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "epoch": epoch, "rng": _rng_state(),
                "config": dataclasses.asdict(cfg),
                "history": history, "best_top1": best}

    from tqdm import tqdm

    num_updates = start_epoch * steps
    for epoch in range(start_epoch, cfg.epochs):
        seeds = epoch_seeds(cfg.seed, epoch, dist_ctx.rank)
        seed_everything(seeds.global_)
        sampler_gen.manual_seed(seeds.sampler)
        loader_gen.manual_seed(seeds.loader)
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        train_model.train()
        loss_sum, seen, skipped = 0.0, 0, []
        t0 = time.perf_counter()
        bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
                   disable=None if (cfg.progress and dist_ctx.main) else True, leave=False)
        for step, (images, targets, bad) in enumerate(loader):
            if step >= steps:
                break
            skipped += [{"path": s.path, "reason": s.reason} for s in bad]
            if images is None:
                continue
            if mixup_fn is not None and len(images) % 2:
                images, targets = images[:-1], targets[:-1]  # mixup pairs samples: keep the batch even
                if len(images) == 0:
                    continue
            images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            if mixup_fn is not None:
                images, targets = mixup_fn(images, targets)
            images = to_memory_format(images, cfg.channels_last)
            try:
                with autocast(device, cfg.amp):
                    loss = criterion(train_model(images), targets)
            except torch._dynamo.exc.BackendCompilerFailed as e:  # e.g. no C++ compiler for inductor on CPU
                inner = e.inner_exception
                raise GhostzooError(f"--compile failed: {type(inner).__name__}: {first_line(inner)}; "
                                    f"train without --compile") from e
            if not math.isfinite(loss.item()):
                raise GhostzooError(f"loss became {loss.item()} at epoch {epoch + 1} step {step}; "
                                    f"lower --lr or check the data")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            num_updates += 1
            scheduler.step_update(num_updates)
            if ema is not None:
                ema.update(model, step=num_updates)
            loss_sum += loss.item() * len(images)
            seen += len(images)
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
            bar.update()
        bar.close()
        train_time = time.perf_counter() - t0
        dist_ctx.sync_buffers(model)

        record: Dict[str, Any] = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1),
                                  "train_images_per_s": seen * dist_ctx.world / train_time,
                                  "lr": optimizer.param_groups[0]["lr"], "skipped": skipped}
        if dist_ctx.main:
            val_loader = DataLoader(val_set, batch_size=cfg.batch_size, num_workers=cfg.workers,
                                    collate_fn=collate_skipping)
            result = evaluate(model, val_loader, device, cfg.amp, cfg.channels_last, val_set.classes)
            record.update(top1=result.top1, top5=result.top5, val_loss=result.loss)
            if ema is not None:
                ema_result = evaluate(ema.module, val_loader, device, cfg.amp, cfg.channels_last, val_set.classes)
                record.update(ema_top1=ema_result.top1, ema_top5=ema_result.top5)
            history.append(record)
            improved = record["top1"] > best
            best = max(best, record["top1"])
            state = checkpoint_state(epoch)
            _save_training_checkpoint(last_path, state)
            if improved:
                _save_training_checkpoint(best_path, state)
            write_json_atomic(out_dir / "summary.json", _summary(cfg, history, best, dist_ctx.world))
            print(f"epoch {epoch + 1}/{cfg.epochs}: loss {record['train_loss']:.4f}  top-1 {record['top1']:.2f}  "
                  f"top-5 {record['top5']:.2f}" + (f"  ema top-1 {record['ema_top1']:.2f}" if ema else "")
                  + f"  {record['train_images_per_s']:.1f} img/s" + (f"  skipped {len(skipped)}" if skipped else ""),
                  flush=True)
        dist_ctx.barrier()

    identical = dist_ctx.replicas_identical(model)
    summary = _summary(cfg, history, best, dist_ctx.world, identical)
    if dist_ctx.main:
        write_json_atomic(out_dir / "summary.json", summary)
    dist_ctx.close()
    return summary


def _summary(cfg: TrainConfig, history: List[Dict[str, Any]], best: float, world: int,
             identical: Optional[bool] = None) -> Dict[str, Any]:
    out = {"model": cfg.model, "data": cfg.data, "recipe": cfg.recipe, "epochs": cfg.epochs,
           "world_size": world, "best_top1": best, "history": history,
           "config": dataclasses.asdict(cfg)}
    if identical is not None:
        out["replicas_identical"] = identical
    return json.loads(json.dumps(out, default=str))
