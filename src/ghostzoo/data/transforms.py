"""Evaluation preprocessing derived from a model's pretrained cfg."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Tuple, Union

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..registry import PretrainedCfg

_INTERPOLATION = {
    "nearest": v2.InterpolationMode.NEAREST,
    "bilinear": v2.InterpolationMode.BILINEAR,
    "bicubic": v2.InterpolationMode.BICUBIC,
}


def to_unit_range(image: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [0, 1] by dividing by 255, as ``ToTensor`` does.

    ``v2.ToDtype(scale=True)`` multiplies by 1/255 instead, which differs in the last bit and would
    make our tensors differ from the official pipeline's.
    """
    return image.to(torch.float32).div(255)


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
        raise ValueError(
            f"unknown interpolation {get('interpolation')!r}; use one of {sorted(_INTERPOLATION)}"
        ) from None
    resize = int(math.floor(size / float(get("crop_pct"))))
    # Resize and crop before ToImage: a PIL input is then resized by PIL, exactly as in the
    # official (torchvision v1) pipeline; tensor inputs go through the tensor kernels.
    return v2.Compose(
        [
            v2.Resize(resize, interpolation=interpolation, antialias=True),
            v2.CenterCrop(size),
            v2.ToImage(),
            v2.Lambda(to_unit_range, tv_tensors.Image),
            v2.Normalize(mean=list(get("mean")), std=list(get("std"))),
        ]
    )


def create_train_transform(
    cfg: Union[PretrainedCfg, Mapping[str, Any]],
    input_size: int | None = None,
    auto_augment: str | None = None,
    re_prob: float = 0.0,
    color_jitter: float | None = 0.4,
    scale: Tuple[float, float] = (0.08, 1.0),
) -> Callable:
    """Training augmentation (random-resized crop of ``scale`` of the area, flip, jitter / RandAugment,
    erasing) from timm."""
    from timm.data import create_transform as timm_create_transform

    get = cfg.get if isinstance(cfg, Mapping) else lambda k: getattr(cfg, k)
    size = int(input_size or get("input_size")[-1])
    return timm_create_transform(
        size,
        is_training=True,
        scale=tuple(scale),
        auto_augment=auto_augment,
        re_prob=re_prob,
        color_jitter=color_jitter if not auto_augment else None,
        interpolation=get("interpolation"),
        mean=tuple(get("mean")),
        std=tuple(get("std")),
    )
