"""Evaluation preprocessing derived from a model's pretrained cfg."""

from __future__ import annotations

import math
from typing import Any, Mapping, Union

import torch
from torchvision.transforms import v2

from ..registry import PretrainedCfg

_INTERPOLATION = {
    "nearest": v2.InterpolationMode.NEAREST,
    "bilinear": v2.InterpolationMode.BILINEAR,
    "bicubic": v2.InterpolationMode.BICUBIC,
}


def create_transform(cfg: Union[PretrainedCfg, Mapping[str, Any]], input_size: int | None = None) -> v2.Compose:
    """Resize the shorter side to ``size / crop_pct``, center-crop ``size``, scale to [0, 1], normalise.

    With GhostNet's cfg (224, crop_pct 0.875, bilinear, ImageNet mean/std) this is exactly the
    official ``Resize(256) + CenterCrop(224) + ToTensor() + Normalize`` pipeline. Accepts PIL images
    and uint8 tensors (C, H, W).
    """
    get = cfg.get if isinstance(cfg, Mapping) else lambda k: getattr(cfg, k)
    size = int(input_size or get("input_size")[-1])
    try:
        interpolation = _INTERPOLATION[get("interpolation")]
    except KeyError:
        raise ValueError(f"unknown interpolation {get('interpolation')!r}; use one of {sorted(_INTERPOLATION)}") from None
    resize = int(math.floor(size / float(get("crop_pct"))))
    return v2.Compose([
        v2.ToImage(),
        v2.Resize(resize, interpolation=interpolation, antialias=True),
        v2.CenterCrop(size),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(get("mean")), std=list(get("std"))),
    ])
