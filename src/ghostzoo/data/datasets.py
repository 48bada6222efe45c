"""Labelled image datasets in the layouts users have on disk.

Three layouts are recognised from their files, so ``--data DIR`` is all a user gives:

* ImageFolder: ``DIR/<class>/*.jpg``, or ``DIR/<split>/<class>/*.jpg`` (Imagenette, most datasets).
* ILSVRC2012 validation: images in ``DIR`` or ``DIR/images`` plus a ground-truth file of
  ``<file> <class index>`` lines (``val.txt``, or ``--labels FILE``), indices in the sorted-WordNet-id
  order of ImageNet-1k.
* Oxford-IIIT Pet: ``DIR/images/*.jpg`` and ``DIR/annotations/list.txt``; the official
  ``trainval.txt`` / ``test.txt`` give the splits when present. Without them the split is
  :func:`stratified_split`: per breed, files sorted by name, every fifth one (20%) is ``test``.

Every dataset yields ``(tensor, target)`` and, for an image that cannot be decoded, ``None`` plus a
record in ``dataset.skipped`` (see :func:`collate_skipping`), so one bad file never ends a run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from torch.utils.data import Dataset, default_collate

from .._io import first_line
from ..errors import GhostzooError, ImageError
from .classes import imagenet_wnids
from .images import IMAGE_EXTENSIONS, read_image

Sample = Tuple[Path, int]


@dataclass
class Skipped:
    """A sample the loader could not use; travels through DataLoader workers back to the loop."""

    path: str
    reason: str


class LabelledImages(Dataset):
    """A list of ``(path, target)`` with class names, decoded lazily and defensively."""

    def __init__(
        self,
        samples: Sequence[Sample],
        classes: Sequence[str],
        transform: Optional[Callable] = None,
        layout: str = "",
        root: str = "",
    ) -> None:
        if not samples:
            raise GhostzooError(f"no images found in {root or 'the dataset'} ({layout} layout)")
        self.samples = list(samples)
        self.classes = list(classes)
        self.transform = transform
        self.layout = layout
        self.root = root

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> List[int]:
        return [t for _, t in self.samples]

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        try:
            image = read_image(path)
        except ImageError as e:
            return Skipped(str(path), str(e))
        return (self.transform(image) if self.transform else image), target


def collate_skipping(batch: list):
    """Collate the readable samples; return ``(images, targets, skipped)``."""
    skipped = [b for b in batch if isinstance(b, Skipped)]
    good = [b for b in batch if not isinstance(b, Skipped)]
    if not good:
        return None, None, skipped
    images, targets = default_collate(good)
    return images, targets, skipped


def _read_label_lines(path: Path) -> List[Tuple[int, List[str]]]:
    """``(line number, fields)`` of the non-empty, non-comment lines of a label file."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise GhostzooError(f"cannot read {path}: {first_line(e)}") from None
    return [
        (n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.startswith("#")
    ]


def image_folder(root: Path) -> Tuple[List[Sample], List[str]]:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    samples = [
        (f, i)
        for i, c in enumerate(classes)
        for f in sorted(p for p in (root / c).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    ]
    return samples, classes


def ilsvrc_val(root: Path, labels: Path) -> Tuple[List[Sample], List[str]]:
    folder = root / "images" if (root / "images").is_dir() else root
    classes = imagenet_wnids()
    samples = []
    for n, parts in _read_label_lines(labels):
        if len(parts) < 2 or not parts[1].lstrip("-").isdigit():
            raise GhostzooError(f"{labels}:{n}: expected '<file> <class index>', got {' '.join(parts)!r}")
        if not 0 <= int(parts[1]) < len(classes):
            raise GhostzooError(f"{labels}:{n}: class index {parts[1]} is outside ImageNet's 0..{len(classes) - 1}")
        samples.append((folder / parts[0], int(parts[1])))
    return samples, classes


def stratified_split(names_by_class: Dict[int, List[str]], every: int = 5) -> Dict[str, List[str]]:
    """Deterministic per-class split: sorted names, each ``every``-th one (from the last) is test."""
    split: Dict[str, List[str]] = {"train": [], "test": []}
    for _, names in sorted(names_by_class.items()):
        for i, name in enumerate(sorted(names)):
            split["test" if i % every == every - 1 else "train"].append(name)
    return split


def _pet_labels(path: Path) -> Tuple[Dict[str, int], List[str]]:
    """Image name -> class index, and the class (breed) names, from ``annotations/list.txt``.

    Lines are ``<image> <class id> <species> <breed id>``; any subset of the 37 breeds is a dataset,
    so the class ids present are numbered 0.. in their order, and each class is named by its breed.
    """
    ids: Dict[str, int] = {}
    for n, parts in _read_label_lines(path):
        if len(parts) < 2 or not parts[1].isdigit() or int(parts[1]) < 1:
            raise GhostzooError(
                f"{path}:{n}: expected '<image> <class id> <species> <breed id>', got {' '.join(parts)!r}"
            )
        ids[parts[0]] = int(parts[1])
    if not ids:
        raise GhostzooError(f"{path}: no labelled image")
    index = {cid: i for i, cid in enumerate(sorted(set(ids.values())))}
    breeds = {index[cid]: name.rsplit("_", 1)[0].replace("_", " ") for name, cid in sorted(ids.items())}
    return {name: index[cid] for name, cid in ids.items()}, [breeds[i] for i in range(len(index))]


def oxford_pet(root: Path, split: str) -> Tuple[List[Sample], List[str]]:
    ann = root / "annotations"
    label, classes = _pet_labels(ann / "list.txt")
    official = {
        "train": ann / "trainval.txt",
        "trainval": ann / "trainval.txt",
        "val": ann / "test.txt",
        "test": ann / "test.txt",
    }
    if split not in official:
        raise GhostzooError(f"Oxford-IIIT Pet splits are train (trainval) and test (val), not {split!r}")
    if official[split].is_file():
        names = []
        for n, parts in _read_label_lines(official[split]):
            if parts[0] not in label:
                raise GhostzooError(f"{official[split]}:{n}: {parts[0]!r} is not in {ann / 'list.txt'}")
            names.append(parts[0])
    else:
        by_class: Dict[int, List[str]] = {}
        for name, idx in label.items():
            by_class.setdefault(idx, []).append(name)
        names = stratified_split(by_class)["train" if split in ("train", "trainval") else "test"]
    return [(root / "images" / f"{n}.jpg", label[n]) for n in names], classes


def detect_layout(root: Path, labels: Optional[Path] = None) -> str:
    if labels is not None or (root / "val.txt").is_file():
        return "ilsvrc-val"
    if (root / "annotations" / "list.txt").is_file() and (root / "images").is_dir():
        return "oxford-pet"
    return "imagefolder"


def build_dataset(
    root: str | os.PathLike,
    split: str = "val",
    transform: Optional[Callable] = None,
    labels: Optional[str | os.PathLike] = None,
) -> LabelledImages:
    """The ``split`` of the dataset at ``root``, in whichever layout it has (see module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise GhostzooError(f"dataset folder not found: {root}")
    labels_path = Path(labels) if labels else None
    if labels_path is not None and not labels_path.is_file():
        raise GhostzooError(f"labels file not found: {labels_path}")
    layout = detect_layout(root, labels_path)
    if layout == "ilsvrc-val":
        samples, classes = ilsvrc_val(root, labels_path or root / "val.txt")
    elif layout == "oxford-pet":
        samples, classes = oxford_pet(root, split)
    else:
        folder = root / split if (root / split).is_dir() else root
        if folder == root and split and any((root / s).is_dir() for s in ("train", "val", "test")):
            raise GhostzooError(f"{root} has no {split!r} split folder")
        samples, classes = image_folder(folder)
        root = folder
    return LabelledImages(samples, classes, transform, layout, str(root))


def readable_class_names(classes: Sequence[str]) -> List[str]:
    """ImageNet WordNet ids (Imagenette's folder names) replaced by their class names."""
    from .classes import imagenet_class_names

    index = {w: i for i, w in enumerate(imagenet_wnids())}
    names = imagenet_class_names()
    return [names[index[c]] if c in index else c for c in classes]


def imagenet_target_map(classes: Sequence[str]) -> Optional[List[int]]:
    """ImageNet-1k indices of ``classes`` when they are all WordNet ids (Imagenette), else None.

    Lets an ImageNet model be validated on an ImageNet subset without retraining its head.
    """
    index = {w: i for i, w in enumerate(imagenet_wnids())}
    if classes and all(c in index for c in classes):
        return [index[c] for c in classes]
    return None
