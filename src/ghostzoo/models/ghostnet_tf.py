"""GhostNet 1.0x as the authors' TensorFlow code builds it: ``tf_ghostnet_100``.

The official repository also released a TensorFlow checkpoint (``ghostnet_tensorflow/models/
ghostnet_checkpoint.{index,data-00000-of-00001}``, 73.93% top-1). Its network is PaddleClas's
variant of GhostNet (SE ``channels // 4`` wide with a ``clip(0, 1)`` gate; a head of 1x1 conv without
bias, BatchNorm and ReLU), with TensorFlow's ``"SAME"`` padding on every strided convolution
(:mod:`ghostzoo.layers.same_pad`): timm's ``tf_`` prefix names such ports. :func:`checkpoint_filter`
maps the bundle's variables (read without TensorFlow by :mod:`ghostzoo.formats.tf_bundle`) to
ghostzoo's names and layouts.

The TF graph normalises BGR images (OpenCV order) with the ImageNet mean and std in that order. The
filter reverses the stem's input channels instead, so the model takes RGB images normalised as every
other ImageNet model here: ``create_transform`` and ``predict`` need nothing special, and the logits
are those of the official graph on the same photo.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any, Dict, Tuple

import torch
import torch.nn as nn

from ..layers import same_conv2d
from ..registry import IMAGENET_MEAN, IMAGENET_STD, PretrainedCfg, Published, StateDict, register_model
from ._remap import fill_batchnorm_counters
from .ghostnet import GHOSTNET_CFG, GhostBottleneck, GhostNet
from .ghostnet_paddle import paddle_se

_SCOPE = "MobileNetV2/"
_KERNEL = re.compile(r"^(.*)/(W|DW|b)$")
_BATCHNORM = re.compile(r"^(.*)/(?:bn|output)/(gamma|beta|mean/EMA|variance/EMA)$")
_BN_PARAMS = {"gamma": "weight", "beta": "bias", "mean/EMA": "running_mean", "variance/EMA": "running_var"}
_LAYERS = [  # the scope after a bottleneck's Conv2d_{i}: ghostzoo's convolution and its BatchNorm
    ("_up_pointwise/conv1", "ghost1.primary_conv.0", "ghost1.primary_conv.1"),
    ("_up_pointwise/dw1", "ghost1.cheap_operation.0", "ghost1.cheap_operation.1"),
    ("_down_pointwise/conv1", "ghost2.primary_conv.0", "ghost2.primary_conv.1"),
    ("_down_pointwise/dw1", "ghost2.cheap_operation.0", "ghost2.cheap_operation.1"),
    ("_depthwise", "conv_dw", "bn_dw"),
    ("_se/fc1", "se.conv_reduce", ""),
    ("_se/fc2", "se.conv_expand", ""),
    ("_shortcut_dw", "shortcut.0", "shortcut.1"),
    ("_shortcut_1x1", "shortcut.2", "shortcut.3"),
]


def _scopes() -> Dict[str, Tuple[str, str]]:
    """TF scope -> (ghostzoo convolution, its BatchNorm). TF's ``Conv2d_1`` .. ``Conv2d_16`` are the
    bottlenecks in order, ``Conv2d_17`` the last 1x1 stage, ``Conv2d_18`` the head."""
    scopes = {"Conv2d_0": ("conv_stem", "bn1"), "Conv2d_17": ("blocks.9.0.conv", "blocks.9.0.bn1")}
    scopes |= {"Conv2d_18": ("conv_head", "norm_head"), "Logits/Conv2d_1c_1x1": ("classifier", "")}
    flat = [f"blocks.{s}.{i}" for s, stage in enumerate(GHOSTNET_CFG) for i in range(len(stage))]
    for i, block in enumerate(flat, start=1):
        for suffix, conv, bn in _LAYERS:
            scopes[f"Conv2d_{i}{suffix}"] = (f"{block}.{conv}", f"{block}.{bn}")
    return scopes


def _name(key: str, scopes: Dict[str, Tuple[str, str]]) -> str:
    """ghostzoo's name of a TF variable."""
    key = key.removeprefix(_SCOPE)
    if m := _BATCHNORM.match(key):
        return f"{scopes[m.group(1)][1]}.{_BN_PARAMS[m.group(2)]}"
    if m := _KERNEL.match(key):
        return f"{scopes[m.group(1)][0]}.{'bias' if m.group(2) == 'b' else 'weight'}"
    raise KeyError(key)


def _torch_layout(value: torch.Tensor, target: torch.Size) -> torch.Tensor:
    """HWIO kernels (``[k, k, C, 1]`` for depthwise ones) to OIHW; a 1x1-conv classifier to Linear."""
    if value.dim() != 4:
        return value
    if len(target) == 2:  # the classifier
        return value[0, 0].t()
    depthwise = target[1] == 1 and value.shape[3] == 1 and value.shape[2] == target[0]
    return value.permute(2, 3, 0, 1) if depthwise else value.permute(3, 2, 0, 1)


def _padded(name: str, own: StateDict) -> str:
    """A strided convolution is ``Sequential(SamePad2d, Conv2d)`` here: its weight is ``<conv>.1.weight``."""
    module, leaf = name.rsplit(".", 1)
    return f"{module}.1.{leaf}" if name not in own and f"{module}.1.{leaf}" in own else name


def checkpoint_filter(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Map the official TF bundle's variables to ghostzoo's names and layouts (the stem's input
    channels reversed: BGR -> RGB); a state dict in ghostzoo's names passes unchanged."""
    if f"{_SCOPE}Conv2d_0/W" not in state_dict:
        return state_dict
    own, scopes, out = model.state_dict(), _scopes(), {}
    for key, value in state_dict.items():
        try:
            name = _padded(_name(key, scopes), own)
        except KeyError:
            name = key  # not GhostNet's: left for the loader to name as unexpected
        out[name] = _torch_layout(value, own[name].shape if name in own else value.shape).contiguous()
    out["conv_stem.1.weight"] = out["conv_stem.1.weight"].flip(1)  # BGR -> RGB input channels
    return fill_batchnorm_counters(out, model)


def _cfg() -> PretrainedCfg:
    return PretrainedCfg(
        tag="tf_in1k",
        input_size=(3, 224, 224),
        crop_pct=0.875,
        interpolation="bicubic",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        first_conv="conv_stem.1",
        classifier="classifier",
        license="apache-2.0",
        paper="https://arxiv.org/abs/1911.11907",
        published=Published(
            params=5_183_016,
            macs=141_000_000,
            top1=73.93,
            top5=91.39,
            source="official ghostnet_tensorflow/readme.md (top-1 error 0.26066, top-5 error 0.08614, 141M "
            "MAdds); params: the released checkpoint",
        ),
        notes="The authors' TensorFlow checkpoint (ghostnet_tensorflow/models/ghostnet_checkpoint.index and "
        ".data-00000-of-00001 in the official repository): pass the .index file as --checkpoint. Evaluated as "
        "the TF code does: shortest edge to 256 (bicubic), center crop 224.",
    )


@register_model("ghostnet_tf", [_cfg()], checkpoint_filter)
def tf_ghostnet_100(**kwargs: Any) -> GhostNet:
    """GhostNet 1.0x, the authors' TensorFlow version (TensorFlow's SAME padding)."""
    block = partial(GhostBottleneck, se_layer=paddle_se, conv_layer=same_conv2d, dw_conv_layer=same_conv2d)
    return GhostNet(GHOSTNET_CFG, width=1.0, block=block, conv_layer=same_conv2d, head_norm=True, **kwargs)
