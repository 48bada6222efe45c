"""The ``ghostzoo quantize`` flow: calibration images from a folder, PTQ, optional QAT, the int8 file, a check.

The check runs the float model (PyTorch) and the written int8 file (ONNX Runtime) on the same
labelled images and reports both top-1 accuracies and how often their top-1 classes agree.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from ..data import LabelledImages, build_dataset, collate_skipping, create_transform, find_images
from ..deploy.export import export_model
from ..deploy.runtime import load_exported
from ..engine.evaluate import dataset_target_map
from ..errors import GhostzooError
from .api import CALIBRATION_BATCH, check_output, export_int8, scheme
from .prepare import calibrate, prepare
from .qat import finetune, qat_learning_rate


def calibration_set(root: str | os.PathLike, split: str, transform: Any) -> LabelledImages:
    """The images of a dataset folder (any layout ``validate`` reads), or of a plain folder of images
    (labels are not needed to calibrate)."""
    root = Path(root)
    if not root.is_dir():
        raise GhostzooError(f"calibration folder not found: {root}")
    try:
        return build_dataset(root, split, transform)
    except GhostzooError:
        if any((root / s).is_dir() for s in ("train", "val", "test", "annotations")):
            raise  # a dataset with splits: all of it would take in the images the result is judged on
        images, _ = find_images([root])
        if not images:
            raise GhostzooError(f"no images found in calibration folder {root}") from None
        return LabelledImages([(p, -1) for p in images], [], transform, "unlabelled", str(root))


def random_subset(dataset: LabelledImages, size: Optional[int], seed: int) -> Subset:
    """``size`` images drawn at random (seeded) across the whole dataset; all when ``size`` is None."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, order[:size].tolist() if size else order.tolist())


def _loader(subset: Subset, batch_size: int, workers: int) -> DataLoader:
    return DataLoader(subset, batch_size=batch_size, num_workers=workers, collate_fn=collate_skipping)


@dataclass
class Agreement:
    """Float vs int8 on the same images; accuracies are None on unlabelled images."""

    images: int
    agreement: float  # % of images where both give the same top-1 class
    fp32_top1: Optional[float] = None
    int8_top1: Optional[float] = None


@torch.no_grad()
def compare(
    fp32: nn.Module,
    int8: nn.Module,
    loader: DataLoader,
    target_map: Optional[Sequence[int]] = None,
    labelled: bool = True,
    progress: bool = False,
) -> Agreement:
    """Top-1 agreement of both models over ``loader``'s ``(images, targets, skipped)``, and their
    top-1 accuracies when ``labelled`` (``target_map``: dataset label -> model output index)."""
    fp32.eval()
    same = hits_fp32 = hits_int8 = seen = 0
    mapping = torch.tensor(target_map) if target_map is not None else None
    for images, targets, _ in tqdm(
        loader, desc="compare", unit="batch", disable=None if progress else True, leave=False
    ):
        if images is None:
            continue
        a, b = fp32(images).argmax(1), int8(images).argmax(1)
        same += int((a == b).sum())
        seen += len(images)
        if labelled:
            labels = targets if mapping is None else mapping[targets]
            hits_fp32 += int((a == labels).sum())
            hits_int8 += int((b == labels).sum())
    if seen == 0:
        raise GhostzooError("no readable image to compare on")
    pct = lambda n: 100.0 * n / seen  # noqa: E731
    return Agreement(seen, pct(same), pct(hits_fp32) if labelled else None, pct(hits_int8) if labelled else None)


@dataclass
class QuantizeReport:
    model: str
    output: str
    observer: str
    calibration_images: int
    keep_float: list = field(default_factory=list)
    qat_epochs: int = 0
    qat: Optional[Dict[str, Any]] = None  # the training summary
    check_data: str = ""
    check_split: str = ""
    check: Optional[Agreement] = None
    file_bytes: int = 0

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _write(model: nn.Module, qmodel: nn.Module, output: Path, facts: Dict[str, Any], exporter: str) -> None:
    """The int8 file: the QDQ ONNX graph, or (``.xml``) that graph carried to an OpenVINO IR, whose
    CPU plugin runs it on int8 kernels that pay at every batch size (docs/int8.md)."""
    if output.suffix.lower() == ".onnx":
        export_int8(qmodel, output, exporter=exporter, **facts)
        return
    with tempfile.TemporaryDirectory() as tmp:
        onnx_file = Path(tmp) / f"{output.stem}.onnx"
        export_int8(qmodel, onnx_file, exporter=exporter, **facts)
        export_model(model, "openvino", output, int8=onnx_file)


def quantize(
    model: nn.Module,
    calib_data: str | os.PathLike,
    output: str | os.PathLike,
    calib_split: str = "train",
    calib_size: int = 256,
    observer: str = "minmax",
    keep_float: Sequence[str] = (),
    qat_epochs: int = 0,
    train_data: Optional[str | os.PathLike] = None,
    lr: Optional[float] = None,
    batch_size: int = 64,
    check_split: Optional[str] = "val",
    check_size: Optional[int] = None,
    workers: int = 2,
    seed: int = 0,
    qat_dir: Optional[str | os.PathLike] = None,
    train_split: str = "train",
    val_split: str = "val",
    progress: bool = False,
    exporter: str = "torchscript",
) -> QuantizeReport:
    """PTQ of ``model`` on ``calib_size`` images of ``calib_data``, then (``qat_epochs`` > 0) QAT on
    ``train_data``, written to ``output`` (``.onnx``, or ``.xml`` for an OpenVINO IR); then float vs
    int8 on ``check_split`` of ``calib_data`` (``check_size`` images, all by default; ``None`` split:
    on the calibration images).

    QAT checkpoints go to ``qat_dir`` (a temporary folder by default); ``exporter``: torch's ONNX
    exporter (:mod:`ghostzoo.deploy.onnx_export`).
    """
    output = check_output(output, exporter=exporter)
    if qat_epochs and train_data is None:
        raise GhostzooError("QAT (--qat-epochs) needs --train-data DIR")
    cfg = model.pretrained_cfg
    transform = create_transform(cfg)
    calib = random_subset(calibration_set(calib_data, calib_split, transform), calib_size, seed)
    qmodel = prepare(model, observer, keep_float)
    seen = calibrate(qmodel, (batch for batch, _, _ in _loader(calib, CALIBRATION_BATCH, workers) if batch is not None))
    report = QuantizeReport(cfg.architecture, str(output), observer, seen, list(keep_float), qat_epochs)
    facts = scheme(qmodel.quant_spec, seen)
    if qat_epochs:
        lr = lr if lr is not None else qat_learning_rate(batch_size)
        with tempfile.TemporaryDirectory() as tmp:
            report.qat = finetune(
                qmodel,
                train_data,
                qat_epochs,
                qat_dir or Path(tmp) / "qat",
                lr=lr,
                batch_size=batch_size,
                workers=workers,
                seed=seed,
                train_split=train_split,
                val_split=val_split,
                progress=progress,
            )
        facts.update(qat_epochs=qat_epochs, qat_lr=lr, qat_data=str(train_data))
    _write(model, qmodel, output, facts, exporter)
    report.file_bytes = sum(p.stat().st_size for p in (output, output.with_suffix(".bin")) if p.is_file())

    int8 = load_exported(output)
    report.check_data = str(calib_data)
    if check_split is not None:
        dataset = build_dataset(calib_data, check_split, transform)
        loader = _loader(random_subset(dataset, check_size, seed), batch_size, workers)
        report.check_split = check_split
        report.check = compare(model, int8, loader, dataset_target_map(dataset, int8.num_classes), progress=progress)
    else:
        report.check_split = f"{calib_split} (the calibration images, agreement only)"
        report.check = compare(model, int8, _loader(calib, batch_size, workers), labelled=False, progress=progress)
    return report
