"""``create_model``: build a registered model and put weights in it."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional, Sequence

import torch.nn as nn

from .checkpoints import apply_checkpoint, pretrained_source, read_checkpoint
from .errors import GhostzooError
from .hub import is_hub_model, read_hub_model
from .models import OUTPUT_STRIDE_FAMILIES, create_feature_net
from .registry import ModelEntry, PretrainedCfg, get_model_entry, get_pretrained_cfg


def _cfg_from_checkpoint(cfg: PretrainedCfg, meta: dict, num_classes: int) -> PretrainedCfg:
    """The cfg of a model trained by ghostzoo: its classes and evaluation size and crop travel in the file."""
    changes: dict = {"num_classes": num_classes}
    names = tuple(meta.get("class_names") or ())
    if names and len(names) == num_classes:
        changes.update(class_names=names, label_names="")
    if meta.get("img_size"):
        changes["input_size"] = (cfg.input_size[0], int(meta["img_size"]), int(meta["img_size"]))
    if meta.get("crop_pct"):
        changes["crop_pct"] = float(meta["crop_pct"])
    return dataclasses.replace(cfg, **changes)


def _check_arguments(
    entry: ModelEntry, features_only: bool, out_indices: Optional[Sequence[int]], output_stride: int
) -> None:
    if output_stride != 32 and entry.family not in OUTPUT_STRIDE_FAMILIES:
        raise GhostzooError(
            f"{entry.name} ({entry.family}) has no output_stride: it dilates the CNN families "
            f"({', '.join(sorted(OUTPUT_STRIDE_FAMILIES))})"
        )
    if out_indices is not None and not features_only:
        raise ValueError("out_indices is only meaningful with features_only=True")


def create_model(
    name: str,
    pretrained: bool = False,
    checkpoint_path: Optional[str | os.PathLike] = None,
    num_classes: Optional[int] = None,
    in_chans: int = 3,
    drop_rate: Optional[float] = None,
    features_only: bool = False,
    out_indices: Optional[Sequence[int]] = None,
    use_ema: Optional[bool] = None,
    progress: bool = True,
    **kwargs: Any,
) -> nn.Module:
    """Build ``name`` (``arch``, ``arch.tag``, or a repository as ``hf-hub:org/name`` or
    ``local-dir:PATH`` with timm's ``config.json``), optionally with weights.

    Args:
        pretrained: load the weights named by the pretrained cfg (URL, else hub id), cached.
        checkpoint_path: a local file, ``http(s)://`` / ``file://`` URL or ``hf-hub:org/name``;
            any supported format (ghostzoo, official Huawei, timm; .pth/.pth.tar/.safetensors).
            Takes precedence over ``pretrained``.
        num_classes: classifier size; defaults to the checkpoint's (read from the file) or the
            cfg's (1000 for ImageNet weights). When it differs from the checkpoint's, the backbone
            is loaded and the head re-initialised, with a warning: that is how fine-tuning starts.
        in_chans: input channels; pretrained first-conv weights are adapted when it is not 3.
        drop_rate: dropout before the classifier (the family's default when None).
        features_only: return a module that outputs the feature maps listed by ``feature_info``.
        out_indices: which feature levels to return with ``features_only`` (default: all).
        output_stride: 16 or 8 dilates the later stages of a CNN (dense prediction), same weights.
        use_ema: take the EMA weights of a checkpoint that has both (None: the cfg's choice, which
            is the EMA weights where those are the published model, as for GhostNetV3).
    """
    hub = read_hub_model(name) if is_hub_model(name) else None
    if hub is not None:  # a repository's model: its own classes and preprocessing, its weights if pretrained
        name = hub.name
        if checkpoint_path is None and pretrained:
            checkpoint_path = hub.weights
    entry = get_model_entry(name)
    cfg = get_pretrained_cfg(name)
    if hub is not None:
        cfg = dataclasses.replace(cfg, **hub.cfg_changes, tag="hub", url="", hf_hub_id="", file="")
    _check_arguments(entry, features_only, out_indices, kwargs.get("output_stride", 32))
    source = checkpoint_path if checkpoint_path is not None else (pretrained_source(cfg) if pretrained else None)
    ckpt = None
    if source is not None:
        ckpt = read_checkpoint(source, use_ema=use_ema, progress=progress, prefer_ema=cfg.use_ema)
        stored = ckpt.num_classes(cfg.classifier)
        if num_classes is None and stored:
            num_classes = stored
        cfg = _cfg_from_checkpoint(cfg, ckpt.meta, num_classes or cfg.num_classes)

    build_kwargs = dict(
        num_classes=cfg.num_classes if num_classes is None else num_classes, in_chans=in_chans, **kwargs
    )
    if build_kwargs["num_classes"] != cfg.num_classes:  # a new head: the cfg (and any export of it) says so
        cfg = dataclasses.replace(cfg, num_classes=build_kwargs["num_classes"])
    if drop_rate is not None:
        build_kwargs["drop_rate"] = drop_rate
    model = entry.builder(**build_kwargs)
    model.pretrained_cfg = cfg
    if ckpt is not None:
        apply_checkpoint(model, ckpt, cfg, entry.checkpoint_filter)
    if features_only:
        model = create_feature_net(model, out_indices)
        model.pretrained_cfg = cfg
    return model
