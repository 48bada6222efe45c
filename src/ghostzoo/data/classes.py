"""ImageNet-1k class names, shipped with the package (``imagenet1k_classes.tsv``).

One ``<wordnet id>\t<name>`` line per class, in the sorted-WordNet-id order that torchvision, timm
and the official checkpoints use, so line ``i`` names logit ``i``.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from typing import List, Tuple


@lru_cache(maxsize=None)
def _table() -> Tuple[Tuple[str, str], ...]:
    text = files(__package__).joinpath("imagenet1k_classes.tsv").read_text(encoding="utf-8")
    rows = tuple(tuple(line.split("\t", 1)) for line in text.splitlines() if line)
    assert len(rows) == 1000, "imagenet1k_classes.tsv must have 1000 rows"
    return rows  # type: ignore[return-value]


def imagenet_class_names() -> List[str]:
    return [name for _, name in _table()]


def imagenet_wnids() -> List[str]:
    return [wnid for wnid, _ in _table()]
