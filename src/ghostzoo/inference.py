"""Prediction: images in, top-k class names and probabilities out."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import torch
import torch.nn as nn

from ._runtime import resolve_device
from .data import create_transform, find_images, imagenet_class_names, imagenet_wnids, read_image
from .errors import ImageError
from .registry import PretrainedCfg


def class_names_for(cfg: PretrainedCfg, num_classes: int) -> List[str]:
    """Human-readable names of a model's outputs (generic ``class_<i>`` when unknown)."""
    if len(cfg.class_names) == num_classes:
        return list(cfg.class_names)
    if cfg.label_names == "imagenet-1k" and num_classes == 1000:
        return imagenet_class_names()
    return [f"class_{i}" for i in range(num_classes)]


def topk_labels(logits: torch.Tensor, k: int, names: Sequence[str]) -> List[List[Dict]]:
    """Softmax over classes, then the ``k`` most probable per row as ``{index, label, prob}``."""
    probs = logits.float().softmax(dim=-1)
    values, indices = probs.topk(min(k, probs.shape[-1]), dim=-1)
    return [
        [{"index": int(i), "label": names[int(i)], "prob": float(p)} for p, i in zip(pv, iv)]
        for pv, iv in zip(values, indices)
    ]


@dataclass
class PredictReport:
    predictions: List[Dict] = field(default_factory=list)  # {"path", "topk": [...]}
    skipped: List[Dict] = field(default_factory=list)  # {"path", "reason"}


class Predictor:
    """Runs a classifier on image files with its own evaluation preprocessing.

    ``backend``: ``eager`` (the model as it is), ``compile``, ``onnxruntime``, ``openvino`` or ``auto``
    (the fastest runtime installed), see :mod:`ghostzoo.deploy.backend`.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: Optional[PretrainedCfg] = None,
        device: str | torch.device = "cpu",
        batch_size: int = 16,
        backend: str = "eager",
        precision: str = "fp32",
    ) -> None:
        from .deploy.backend import with_backend

        self.cfg = cfg or model.pretrained_cfg
        self.device = resolve_device(device)
        self.model = with_backend(model.eval().to(self.device), backend, precision, self.device)
        self.batch_size = batch_size
        self.transform = create_transform(self.cfg)
        self.names = class_names_for(self.cfg, getattr(model, "num_classes", self.cfg.num_classes))

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch.to(self.device)).cpu()

    def predict(
        self,
        paths: str | os.PathLike | Iterable[str | os.PathLike],
        topk: int = 5,
        on_image: Optional[Callable[[], None]] = None,
    ) -> PredictReport:
        """Predict every readable image under ``paths`` (files and folders, or a single one); unreadable
        images are reported, not raised."""
        if isinstance(paths, (str, os.PathLike)):  # one path, not the characters of one
            paths = [paths]
        images, problems = find_images(paths)
        report = PredictReport(skipped=[{"path": str(p), "reason": r} for p, r in problems])
        pending: List[tuple] = []

        def flush() -> None:
            if not pending:
                return
            batch = torch.stack([t for _, t in pending])
            for (path, _), top in zip(pending, topk_labels(self.logits(batch), topk, self.names)):
                report.predictions.append({"path": str(path), "topk": top})
            pending.clear()

        for path in images:
            try:
                pending.append((path, self.transform(read_image(path))))
            except ImageError as e:
                report.skipped.append({"path": str(path), "reason": str(e)})
            if on_image is not None:
                on_image()
            if len(pending) >= self.batch_size:
                flush()
        flush()
        return report


def demo_images() -> Path:
    """The ten Imagenette photos shipped with the package (ImageFolder layout, WordNet-id folders)."""
    from importlib.resources import files

    return Path(str(files("ghostzoo").joinpath("assets", "imagenette_demo")))


def true_label(path: str | os.PathLike) -> Optional[str]:
    """The class name of an image stored under a WordNet-id folder (ImageNet / Imagenette layout)."""
    wnid = Path(path).parent.name
    wnids = imagenet_wnids()
    return imagenet_class_names()[wnids.index(wnid)] if wnid in wnids else None
