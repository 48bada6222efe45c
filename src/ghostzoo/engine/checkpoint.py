"""A run's folder: ``last.pth`` / ``best.pth`` training checkpoints, written atomically, and resuming from them.

A training checkpoint holds, beside everything :class:`~ghostzoo.engine.setup.Trainer` updates,
what :func:`ghostzoo.create_model` needs to rebuild the trained model from the file alone
(architecture, classes, resolution), and the random generators' state.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch

from .._io import atomic_paths, check_writable_folder, first_line
from ..checkpoints import GHOSTZOO_FORMAT, read_file
from ..errors import GhostzooError
from .config import TrainConfig
from .setup import TrainData, Trainer


@dataclass
class RunFolder:
    """Where a run's checkpoints and ``summary.json`` go."""

    root: Path

    @property
    def last(self) -> Path:
        return self.root / "last.pth"

    @property
    def best(self) -> Path:
        return self.root / "best.pth"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"


def run_folder(cfg: TrainConfig) -> RunFolder:
    """``cfg.output_dir``, refused before any work when it cannot be written, when it already holds a run
    and ``cfg.resume`` is off, or when there is nothing to resume. Creates nothing (the first file does),
    so bad input leaves nothing behind. Every process of a torchrun checks, before the first collective
    call, so that all of them stop with the same line instead of one waiting for another that quit."""
    folder = RunFolder(Path(cfg.output_dir))
    check_writable_folder(folder.root, "--output-dir")
    if not cfg.resume and folder.last.exists():
        raise GhostzooError(
            f"{folder.root} already holds a run; pass --resume to continue it or choose another --output-dir"
        )
    if cfg.resume and not folder.last.exists():
        raise GhostzooError(f"nothing to resume: {folder.last} does not exist")
    return folder


@dataclass
class Progress:
    """Where a run stands: the next epoch to train, the finished epochs' records, the best top-1 so far."""

    epoch: int = 0
    history: List[Dict[str, Any]] = field(default_factory=list)
    best: float = -1.0

    def add(self, record: Dict[str, Any]) -> bool:
        """Record a finished epoch; whether its top-1 beats every earlier one."""
        self.history.append(record)
        improved = record["top1"] > self.best
        self.best = max(self.best, record["top1"])
        self.epoch = record["epoch"]
        return improved


def _rng_state() -> Dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
    }


def _set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))


def checkpoint_state(cfg: TrainConfig, trainer: Trainer, data: TrainData, progress: Progress) -> Dict[str, Any]:
    """The checkpoint of the epoch ``progress`` has just recorded (tensors and plain types only, so it
    loads with ``weights_only=True``)."""
    ema = trainer.ema
    return {
        "format": GHOSTZOO_FORMAT,
        "architecture": trainer.model.pretrained_cfg.architecture,
        "num_classes": trainer.num_classes,
        "class_names": data.class_names,
        "img_size": data.pretrained_cfg.input_size[-1],  # what to evaluate and predict at, as the run did
        "crop_pct": data.pretrained_cfg.crop_pct,
        "state_dict": trainer.model.state_dict(),
        "state_dict_ema": ema.module.state_dict() if ema is not None else None,
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "epoch": progress.epoch - 1,
        "rng": _rng_state(),
        "config": dataclasses.asdict(cfg),
        "history": progress.history,
        "best_top1": progress.best,
    }


def save_checkpoints(folder: RunFolder, state: Dict[str, Any], improved: bool) -> None:
    """``last.pth``, and ``best.pth`` too when the epoch ``improved``; each appears whole or not at all."""
    for path in [folder.last] + ([folder.best] if improved else []):
        with atomic_paths(path) as (tmp,):
            torch.save(state, tmp)


_RESUME_KEYS = ("state_dict", "optimizer", "scheduler", "scaler", "epoch", "rng", "history", "best_top1")


def resume(folder: RunFolder, trainer: Trainer) -> Progress:
    """Load ``last.pth`` into ``trainer`` and the random generators; where the run stands. A file that
    is damaged, not a training checkpoint, or of another model or head is refused in one line."""
    state = read_file(folder.last)
    missing = [k for k in _RESUME_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise GhostzooError(f"{folder.last} is not a ghostzoo training checkpoint (it has no {missing[0]!r})")
    arch = trainer.model.pretrained_cfg.architecture
    if state.get("architecture") != arch:
        raise GhostzooError(f"{folder.last} is a run of {state.get('architecture')}, not of {arch}")
    try:
        trainer.model.load_state_dict(state["state_dict"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scheduler.load_state_dict(state["scheduler"])
        trainer.scaler.load_state_dict(state["scaler"])
        if trainer.ema is not None and state.get("state_dict_ema") is not None:
            trainer.ema.module.load_state_dict(state["state_dict_ema"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise GhostzooError(f"{folder.last} does not fit this run's model or settings: {first_line(e)}") from None
    _set_rng_state(state["rng"])
    return Progress(state["epoch"] + 1, state["history"], state["best_top1"])
