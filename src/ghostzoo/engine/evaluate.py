"""Top-1 / top-5 evaluation with per-class accuracy and throughput."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from .._runtime import autocast, resolve_device, to_memory_format
from ..data import (
    LabelledImages,
    build_dataset,
    collate_skipping,
    create_transform,
    imagenet_target_map,
    readable_class_names,
)
from ..errors import GhostzooError


@dataclass
class EvalResult:
    top1: float
    top5: float
    loss: float
    images: int
    images_per_s: float
    per_class: Dict[str, float] = field(default_factory=dict)  # class name -> top-1 (%)
    skipped: List[Dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> Dict:
        return asdict(self)


class _Tally:
    """Running hits and loss of an evaluation, overall and per dataset class."""

    def __init__(self) -> None:
        self.correct1 = self.correct5 = self.seen = 0
        self.loss_sum = 0.0
        self.per_class_hits: Dict[int, List[int]] = {}  # dataset label -> [top-1 hits, images]

    def add(self, logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> None:
        """One batch: ``labels`` index the logits, ``targets`` are the dataset's labels."""
        self.loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hit1 = top[:, 0] == labels
        self.correct1 += int(hit1.sum())
        self.correct5 += int((top == labels[:, None]).any(dim=1).sum())
        self.seen += len(labels)
        for t, h in zip(targets.tolist(), hit1.tolist()):
            hits = self.per_class_hits.setdefault(t, [0, 0])
            hits[0] += int(h)
            hits[1] += 1

    def per_class(self, class_names: Sequence[str]) -> Dict[str, float]:
        """Top-1 (%) per class name (the label's number without names)."""
        names = list(class_names) if class_names else [str(i) for i in range(max(self.per_class_hits) + 1)]
        return {names[t]: 100.0 * h / n for t, (h, n) in sorted(self.per_class_hits.items())}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device | str = "cpu",
    amp: Optional[str] = None,
    channels_last: bool = True,
    class_names: Sequence[str] = (),
    target_map: Optional[Sequence[int]] = None,
    progress: bool = False,
) -> EvalResult:
    """Run ``model`` over ``loader`` (batches of ``(images, targets, skipped)``).

    ``target_map`` maps dataset labels to the model's output indices (an ImageNet model on an
    ImageNet subset); per-class accuracy is reported under the dataset's class names.
    """
    device = torch.device(device)
    model.eval()
    tally = _Tally()
    skipped: List[Dict[str, str]] = []
    mapping = torch.tensor(target_map) if target_map is not None else None
    start = time.perf_counter()
    batches = tqdm(loader, desc="validate", unit="batch", disable=None if progress else True, leave=False)
    for images, targets, bad in batches:
        skipped += [{"path": s.path, "reason": s.reason} for s in bad]
        if images is None:
            continue
        images = to_memory_format(images.to(device, non_blocking=True), channels_last)
        with autocast(device, amp):
            logits = model(images)
        tally.add(logits.float().cpu(), targets if mapping is None else mapping[targets], targets)
    elapsed = time.perf_counter() - start
    if tally.seen == 0:
        raise GhostzooError(f"no readable image to evaluate ({len(skipped)} skipped)")
    seen = tally.seen
    return EvalResult(
        100.0 * tally.correct1 / seen,
        100.0 * tally.correct5 / seen,
        tally.loss_sum / seen,
        seen,
        seen / elapsed,
        tally.per_class(class_names),
        skipped,
    )


def dataset_target_map(dataset: LabelledImages, num_outputs: int) -> Optional[List[int]]:
    """Model output index of each dataset label, None when they are the same (see :func:`evaluate`)."""
    if dataset.layout == "ilsvrc-val" or len(dataset.classes) == num_outputs:
        return None
    target_map = imagenet_target_map(dataset.classes) if num_outputs == 1000 else None
    if target_map is None:
        raise GhostzooError(
            f"the dataset has {len(dataset.classes)} classes but the model predicts "
            f"{num_outputs}; pass a checkpoint trained on it (or --num-classes when training)"
        )
    return target_map


def check_class_names(dataset: LabelledImages, model_classes: Sequence[str], data: str | os.PathLike) -> None:
    """Refuse to score a model whose classes (as its checkpoint names them) are not the dataset's, in
    the dataset's order: label i would be scored against another class's output without a word."""
    if not model_classes or len(model_classes) != len(dataset.classes):
        return
    names = readable_class_names(dataset.classes)
    for i, (ours, theirs) in enumerate(zip(model_classes, names)):
        if ours != theirs:
            raise GhostzooError(
                f"the model's class {i} is {ours!r} but {data}'s is {theirs!r}: it was trained on other "
                "classes (or another order); validate it on its own classes"
            )


def validate(
    model: nn.Module,
    data: str | os.PathLike,
    split: str = "val",
    labels: Optional[str] = None,
    batch_size: int = 64,
    workers: int = 2,
    device: str = "cpu",
    amp: Optional[str] = None,
    channels_last: bool = True,
    progress: bool = False,
    backend: str = "eager",
    precision: str = "fp32",
) -> EvalResult:
    """Evaluate ``model`` on the dataset at ``data`` with the model's own eval preprocessing, run by
    ``backend`` (:func:`ghostzoo.deploy.backend.with_backend`)."""
    from ..deploy.backend import with_backend
    from ..deploy.runtime import ExportedModel

    dev = resolve_device(device)
    runner = with_backend(model, backend, precision, dev)
    # a runtime or a compiled graph takes plain NCHW: converting each batch would cost a copy (and
    # keep PyTorch's threads spinning beside the runtime's)
    channels_last = channels_last and runner is model and not isinstance(model, ExportedModel)
    model = runner
    cfg = model.pretrained_cfg
    dataset = build_dataset(data, split, create_transform(cfg), labels=labels)
    target_map = dataset_target_map(dataset, getattr(model, "num_classes", cfg.num_classes))
    if target_map is None and dataset.layout != "ilsvrc-val":
        check_class_names(dataset, cfg.class_names, data)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_skipping,
        pin_memory=dev.type == "cuda",
    )
    model = model.to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return evaluate(model, loader, dev, amp, channels_last, dataset.classes, target_map, progress)
