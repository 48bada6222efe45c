"""Model registry and pretrained configurations.

A model is registered once, by name (``ghostnet_100``); each set of weights for it is a
:class:`PretrainedCfg` under a tag (``ghostnet_100.in1k``), so one architecture can carry several
checkpoints with their own preprocessing and metrics, as torchvision's weight enums do.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import torch.nn as nn

from .errors import UnknownModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

StateDict = Dict[str, Any]
CheckpointFilter = Callable[[StateDict, nn.Module], StateDict]


@dataclass(frozen=True)
class Published:
    """Numbers reported by the authors, with where they were reported.

    ``params`` is the exact parameter count of the official implementation (what the code must
    build); ``macs`` is multiply-accumulates at ``input_size`` with batch 1; ``top1``/``top5`` are
    ImageNet-1k validation accuracies in percent for these weights (None where never published).
    """

    params: Optional[int] = None
    macs: Optional[int] = None
    top1: Optional[float] = None
    top5: Optional[float] = None
    source: str = ""


@dataclass(frozen=True)
class PretrainedCfg:
    """Everything needed to load one set of weights and feed it correctly."""

    architecture: str = ""
    tag: str = ""
    url: str = ""
    hf_hub_id: str = ""
    hf_hub_filename: str = ""
    file: str = ""  # weights shipped inside the package, relative to the ghostzoo package folder
    num_classes: int = 1000
    input_size: Tuple[int, int, int] = (3, 224, 224)
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: Tuple[float, ...] = IMAGENET_MEAN
    std: Tuple[float, ...] = IMAGENET_STD
    first_conv: str = ""
    classifier: str = "classifier"
    label_names: str = "imagenet-1k"  # a known label set; ``class_names`` below wins when given
    class_names: Tuple[str, ...] = ()
    license: str = ""
    paper: str = ""
    published: Published = field(default_factory=Published)
    use_ema: Optional[bool] = None  # which weights of a file holding raw + EMA ones are "the" model
    notes: str = ""

    @property
    def name(self) -> str:
        return f"{self.architecture}.{self.tag}" if self.tag else self.architecture

    @property
    def has_weights(self) -> bool:
        return bool(self.url or self.hf_hub_id or self.file)

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["name"] = self.name
        return d

    # Read as a mapping, the way timm reads its own pretrained_cfg dicts
    # (``timm.data.resolve_model_data_config(model)`` gets each model's own preprocessing).
    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.__dataclass_fields__ else default

    def __contains__(self, key: object) -> bool:
        return key in self.__dataclass_fields__

    def keys(self) -> List[str]:
        return list(self.__dataclass_fields__)


@dataclass
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    family: str
    cfgs: Dict[str, PretrainedCfg]  # tag -> cfg, the first one is the default
    checkpoint_filter: Optional[CheckpointFilter] = None

    @property
    def default_cfg(self) -> PretrainedCfg:
        return next(iter(self.cfgs.values()))


_MODELS: Dict[str, ModelEntry] = {}


def register_model(
    family: str,
    cfgs: Sequence[PretrainedCfg],
    checkpoint_filter: Optional[CheckpointFilter] = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a model entry point under its function name, with its pretrained cfgs."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = fn.__name__
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        if not cfgs:
            raise ValueError(f"model {name!r} needs at least one PretrainedCfg")
        resolved = {c.tag: dataclasses.replace(c, architecture=name) for c in cfgs}
        _MODELS[name] = ModelEntry(name, fn, family, resolved, checkpoint_filter)
        return fn

    return wrap


def split_name(name: str) -> Tuple[str, str]:
    """``'ghostnet_100.in1k'`` -> ``('ghostnet_100', 'in1k')``; no tag gives ``''``."""
    arch, _, tag = name.partition(".")
    return arch, tag


def _not_found(what: str, name: str, choices: Sequence[str]) -> UnknownModelError:
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `ghostzoo list`"
    return UnknownModelError(f"unknown {what} {name!r}{hint}")


def get_model_entry(name: str) -> ModelEntry:
    arch, _ = split_name(name)
    try:
        return _MODELS[arch]
    except KeyError:
        raise _not_found("model", arch, list(_MODELS)) from None


def get_pretrained_cfg(name: str) -> PretrainedCfg:
    """The cfg of ``name`` (``arch`` for its default weights, or ``arch.tag``)."""
    entry = get_model_entry(name)
    _, tag = split_name(name)
    if not tag:
        return entry.default_cfg
    try:
        return entry.cfgs[tag]
    except KeyError:
        raise _not_found("pretrained tag", f"{entry.name}.{tag}", [c.name for c in entry.cfgs.values()]) from None


def list_models(pattern: str = "", pretrained: bool = False, family: str = "") -> List[str]:
    """Registered model names matching a shell-style ``pattern`` (all when empty).

    With ``pretrained=True`` only models that have downloadable weights are listed.
    """
    names = []
    for name, entry in sorted(_MODELS.items()):
        if pattern and not fnmatch.fnmatchcase(name, pattern):
            continue
        if family and entry.family != family:
            continue
        if pretrained and not any(c.has_weights for c in entry.cfgs.values()):
            continue
        names.append(name)
    return names


def list_pretrained(pattern: str = "") -> List[str]:
    """Every ``arch.tag`` with weights, matching ``pattern`` against either form."""
    out = []
    for name in list_models():
        for cfg in _MODELS[name].cfgs.values():
            if cfg.has_weights and (
                not pattern or fnmatch.fnmatchcase(cfg.name, pattern) or fnmatch.fnmatchcase(name, pattern)
            ):
                out.append(cfg.name)
    return out


def model_entries() -> Mapping[str, ModelEntry]:
    """Every registered model by name: what tests and tools iterate over the whole zoo with."""
    return dict(_MODELS)


def smallest_per_family() -> Set[str]:
    """The registered model with the fewest published parameters of each family: one model per code
    path, for checks that need not run on every variant."""
    best: Dict[str, Tuple[float, str]] = {}
    for name, entry in sorted(_MODELS.items()):
        size = entry.default_cfg.published.params or math.inf
        if entry.family not in best or size < best[entry.family][0]:
            best[entry.family] = (size, name)
    return {name for _, name in best.values()}
