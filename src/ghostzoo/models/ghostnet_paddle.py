"""GhostNet as PaddleClas builds it: ``ghostnet_x0_5``, ``ghostnet_x1_0``, ``ghostnet_x1_3`` (+ SSLD).

PaddleClas (``ppcls/arch/backbone/model_zoo/ghostnet.py``) publishes GhostNet weights the official
repository never released: 0.5x and 1.3x, and the 79.4% top-1 1.3x distilled by SSLD, the most
accurate GhostNet v1 there is. Its network is the official one but for three details, so it is
:class:`~ghostzoo.models.ghostnet.GhostNet` built with other parts rather than a copy:

- SE reduces to ``channels // 4`` (the official code rounds to a multiple of 4) and gates with
  ``clip(x, 0, 1)`` instead of hard-sigmoid;
- the head's 1x1 convolution has no bias and is followed by BatchNorm (epsilon 1e-5 everywhere);
- its weights are Paddle's: structured names (``_ghostbottleneck_3.se_block.squeeze.weight``) and
  Linear weights stored ``[in, out]``. :func:`checkpoint_filter` maps them, so ``.pdparams`` files
  (read by :mod:`ghostzoo.formats.paddle`) load as they are.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any, Callable, Dict, List, Tuple

import torch
import torch.nn as nn

from ..layers import SqueezeExcite
from ..registry import IMAGENET_MEAN, IMAGENET_STD, PretrainedCfg, Published, StateDict, register_model
from ._remap import fill_batchnorm_counters, rename
from .ghostnet import GHOSTNET_CFG, GhostBottleneck, GhostNet

_URL = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/{}_pretrained.pdparams"
_ZOO = "PaddleClas model zoo (docs/en/algorithm_introduction/ImageNet_models_en.md)"


def paddle_se(chs: int, se_ratio: float, act_layer: Callable[..., nn.Module] = nn.ReLU) -> SqueezeExcite:
    """PaddleClas's SE: ``chs // 4`` wide, gated by ``clip(x, 0, 1)``."""
    return SqueezeExcite(chs, act_layer=act_layer, reduced_chs=chs // 4, gate_layer=partial(nn.Hardtanh, 0.0, 1.0))


def _create(width: float, **kwargs: Any) -> GhostNet:
    block = partial(GhostBottleneck, se_layer=paddle_se)
    return GhostNet(GHOSTNET_CFG, width=width, block=block, head_norm=True, **kwargs)


# ----------------------------------------------------------------------------------------------
# Paddle structured names -> ghostzoo names
# ----------------------------------------------------------------------------------------------

_FLAT_BLOCK = re.compile(r"^_ghostbottleneck_(\d+)\.")
_RENAMES: List[Tuple[str, str]] = [  # applied in order, to the whole key
    (r"^conv1\._conv\.", "conv_stem."),
    (r"^conv1\._batch_norm\.", "bn1."),
    (r"^conv_last\._conv\.", "blocks.9.0.conv."),
    (r"^conv_last\._batch_norm\.", "blocks.9.0.bn1."),
    (r"^fc_0\._conv\.", "conv_head."),
    (r"^fc_0\._batch_norm\.", "norm_head."),
    (r"^fc_1\.", "classifier."),
    (r"\.ghost_module_([12])\.", r".ghost\1."),
    (r"\.(primary_conv|cheap_operation)\._conv\.", r".\1.0."),
    (r"\.(primary_conv|cheap_operation)\._batch_norm\.", r".\1.1."),
    (r"\.depthwise_conv\._conv\.", ".conv_dw."),
    (r"\.depthwise_conv\._batch_norm\.", ".bn_dw."),
    (r"\.se_block\.squeeze\.", ".se.conv_reduce."),
    (r"\.se_block\.excitation\.", ".se.conv_expand."),
    (r"\.shortcut_depthwise\._conv\.", ".shortcut.0."),
    (r"\.shortcut_depthwise\._batch_norm\.", ".shortcut.1."),
    (r"\.shortcut_conv\._conv\.", ".shortcut.2."),
    (r"\.shortcut_conv\._batch_norm\.", ".shortcut.3."),
    (r"\._mean$", ".running_mean"),
    (r"\._variance$", ".running_var"),
]


def _nested_blocks() -> Dict[int, str]:
    """PaddleClas numbers the bottlenecks 0..15 flat; ghostzoo nests them as ``blocks.{stage}.{i}``."""
    flat = [f"blocks.{s}.{i}" for s, stage in enumerate(GHOSTNET_CFG) for i in range(len(stage))]
    return dict(enumerate(flat))


def checkpoint_filter(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Map a PaddleClas state dict (structured names, Linear ``[in, out]``) to ghostzoo's names and
    layouts; a state dict already in ghostzoo's names passes unchanged."""
    if "conv1._conv.weight" not in state_dict:
        return state_dict
    nested, out = _nested_blocks(), {}
    for key, value in state_dict.items():
        name = rename(_FLAT_BLOCK.sub(lambda m: nested[int(m.group(1))] + ".", key), _RENAMES)
        if name.endswith(("se.conv_reduce.weight", "se.conv_expand.weight")):  # Linear [in, out] -> 1x1 conv
            value = value.t()[:, :, None, None]
        elif name == "classifier.weight":
            value = value.t()
        out[name] = value.contiguous() if isinstance(value, torch.Tensor) else value
    return fill_batchnorm_counters(out, model)


def _cfg(name: str, params: int, top1: float, top5: float, tag: str = "paddle_in1k") -> PretrainedCfg:
    return PretrainedCfg(
        tag=tag,
        url=_URL.format(name),
        input_size=(3, 224, 224),
        crop_pct=0.875,
        interpolation="bilinear",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        first_conv="conv_stem",
        classifier="classifier",
        license="apache-2.0 (PaddleClas)",
        paper="https://arxiv.org/abs/1911.11907",
        published=Published(params=params, top1=top1, top5=top5, source=_ZOO),
        notes="PaddleClas weights (.pdparams, read without PaddlePaddle). Evaluated as PaddleClas's ImageNet "
        "eval config does: resize the short side to 256, center crop 224, ImageNet mean/std.",
    )


_X1_3 = 7_352_622


@register_model("ghostnet_paddle", [_cfg("GhostNet_x0_5", 2_588_232, 66.8, 86.9)], checkpoint_filter)
def ghostnet_x0_5(**kwargs: Any) -> GhostNet:
    """GhostNet 0.5x, PaddleClas."""
    return _create(0.5, **kwargs)


@register_model("ghostnet_paddle", [_cfg("GhostNet_x1_0", 5_183_016, 74.0, 91.6)], checkpoint_filter)
def ghostnet_x1_0(**kwargs: Any) -> GhostNet:
    """GhostNet 1.0x, PaddleClas."""
    return _create(1.0, **kwargs)


@register_model(
    "ghostnet_paddle",
    [_cfg("GhostNet_x1_3", _X1_3, 75.7, 92.5), _cfg("GhostNet_x1_3_ssld", _X1_3, 79.4, 94.5, tag="paddle_ssld_in1k")],
    checkpoint_filter,
)
def ghostnet_x1_3(**kwargs: Any) -> GhostNet:
    """GhostNet 1.3x, PaddleClas (``.paddle_ssld_in1k``: the SSLD-distilled weights)."""
    return _create(1.3, **kwargs)


@register_model(
    "ghostnet_paddle", [_cfg("GhostNet_x1_3_ssld", _X1_3, 79.4, 94.5, tag="paddle_ssld_in1k")], checkpoint_filter
)
def ghostnet_x1_3_ssld(**kwargs: Any) -> GhostNet:
    """GhostNet 1.3x, PaddleClas, with the SSLD-distilled weights (the name PaddleClas's model zoo uses)."""
    return _create(1.3, **kwargs)
