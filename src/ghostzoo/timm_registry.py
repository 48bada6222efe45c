"""ghostzoo's models in timm's registry: ``timm.create_model("ghostzoo_vig_ti_224_gelu")``.

After ``import ghostzoo`` every ghostzoo model is also a timm model named ``ghostzoo_<name>``, with
its weights as timm pretrained tags (``timm.create_model("ghostzoo_ghostnet_100.imagenette",
pretrained=True)``), so timm's scripts, data and optimizer helpers and the timm adapters of
detection frameworks take them. The prefix keeps the two registries apart: no ghostzoo model
shadows one of timm's (timm's ``ghostnet_100`` stays timm's own), and no model timm adds later can
collide with a ghostzoo one. The models timm lacks (ViG, PyramidTNT, Wave-MLP, G-Ghost RegNet,
...) become reachable from timm this way; those it has are there under both names.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch.nn as nn
from timm.models import register_model
from timm.models._pretrained import DefaultCfg
from timm.models._pretrained import PretrainedCfg as TimmPretrainedCfg

from .checkpoints import HF_PREFIX, pretrained_source
from .errors import GhostzooError
from .factory import create_model
from .hub import LOCAL_PREFIX, timm_name
from .registry import PretrainedCfg, get_model_entry, list_models

#: timm's registry reads the pretrained configs of an entry point from its module's ``default_cfgs``
default_cfgs: Dict[str, DefaultCfg] = {}


def _timm_cfg(cfg: PretrainedCfg) -> TimmPretrainedCfg:
    """The fields of a ghostzoo config that timm's tools read; the weights stay ghostzoo's to load."""
    return TimmPretrainedCfg(
        url=cfg.url or None,
        hf_hub_id=cfg.hf_hub_id or None,
        file=pretrained_source(cfg) if cfg.file else None,  # the packaged file, by its absolute path
        input_size=cfg.input_size,
        interpolation=cfg.interpolation,
        crop_pct=cfg.crop_pct,
        mean=cfg.mean,
        std=cfg.std,
        num_classes=cfg.num_classes,
        label_names=cfg.class_names or None,
        first_conv=cfg.first_conv or None,
        classifier=cfg.classifier or None,
        license=cfg.license or None,
        paper_ids=cfg.paper or None,
        custom_load=True,
    )


def _hub_source(pretrained_cfg: Any) -> str:
    """The repository (or folder) timm read a model's config from, as ghostzoo names it; "" otherwise."""
    if pretrained_cfg is None or isinstance(pretrained_cfg, str):
        return ""
    get = pretrained_cfg.get if isinstance(pretrained_cfg, dict) else lambda key: getattr(pretrained_cfg, key, None)
    if get("source") == "hf-hub" and get("hf_hub_id"):
        return HF_PREFIX + str(get("hf_hub_id"))
    if get("source") == "local-dir" and get("file"):
        return LOCAL_PREFIX + str(Path(get("file")).parent)
    return ""


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    def create(
        pretrained: bool = False,
        pretrained_cfg: Optional[Any] = None,
        pretrained_cfg_overlay: Optional[Dict[str, Any]] = None,
        cache_dir: Optional[str] = None,  # timm's download folder; ghostzoo's cache keeps the downloads
        **kwargs: Any,
    ) -> nn.Module:
        if pretrained_cfg_overlay:  # silently ignoring it would load other weights than asked for
            raise GhostzooError(
                f"pretrained_cfg_overlay is not supported for {timm_name(name)}: pass checkpoint_path= instead"
            )
        hub = _hub_source(pretrained_cfg)
        if hub:  # timm.create_model("hf-hub:..."): the repository's weights, classes and preprocessing
            return create_model(hub, pretrained=pretrained, **kwargs)
        # timm passes the tag of "name.tag" as a string, or its own config of that tag
        tag = pretrained_cfg if isinstance(pretrained_cfg, str) else getattr(pretrained_cfg, "tag", None)
        return create_model(f"{name}.{tag}" if tag else name, pretrained=pretrained, **kwargs)

    create.__name__ = create.__qualname__ = timm_name(name)
    create.__module__ = __name__
    create.__doc__ = f"ghostzoo's ``{name}`` (see ``ghostzoo info {name}``)."
    return create


def register_in_timm() -> List[str]:
    """Register every ghostzoo model in timm's registry under ``ghostzoo_<name>``; the names added."""
    added = []
    for name in list_models():
        cfgs = {tag: _timm_cfg(cfg) for tag, cfg in get_model_entry(name).cfgs.items()}
        default_cfgs[timm_name(name)] = DefaultCfg(tags=deque(cfgs), cfgs=cfgs)
        register_model(_entrypoint(name))
        added.append(timm_name(name))
    return added
