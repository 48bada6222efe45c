"""Versatile filters: VGG with spatial versatile convolutions.

Yunhe Wang, Chang Xu, Chunjing Xu, Chao Xu, Dacheng Tao. "Learning Versatile Filters for Efficient
Convolutional Neural Networks." NeurIPS 2018.
https://papers.nips.cc/paper/7433-learning-versatile-filters-for-efficient-convolutional-neural-networks

The official ``versatile_filters/vcnn.py`` VGG-11/13/16/19 (with and without BatchNorm) where every
convolution, including the 7x7 ``fc6`` that replaces VGG's first fully connected layer, is a
``layers.VConv2d``: each stored filter also acts as its centred sub-filters. Library names are
``vcnn_`` + the official function name; module names equal the official ones (``features.i``,
``fc6``, ``classifier.{2,5}``), so its checkpoints load without a remap.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Union

import torch
import torch.nn as nn

from ..layers import VConv2d, vgg_features
from ..layers.classifier import linear_head
from ..registry import IMAGENET_MEAN, IMAGENET_STD, PretrainedCfg, Published, register_model
from ._contract import TimmContract

__all__ = ["VersatileVGG"]

VGG_CFGS: Dict[str, List[Union[int, str]]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def _vconv3x3(in_chs: int, out_chs: int, index: int) -> VConv2d:
    return VConv2d(in_chs, out_chs, 3, padding=1)


class VersatileVGG(TimmContract, nn.Module):
    """VGG ``features`` of VConv2d [BN] ReLU, then ``fc6`` (a 7x7 VConv2d to 4096) and two linear layers.

    An adaptive average pool to 7x7 (an identity at 224x224, as in torchvision's VGG) lets other
    input sizes reach ``fc6``. ``feature_info`` taps the ReLU before each pool and the last pool.
    """

    def __init__(
        self,
        cfg: Sequence[Union[int, str]],
        batch_norm: bool = False,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.5,
        hidden_chs: int = 4096,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = 512
        self.head_hidden_size = hidden_chs
        self.features, self.feature_info = vgg_features(cfg, in_chans, _vconv3x3, batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d(7)
        self.fc6 = VConv2d(self.feature_info[-1]["num_chs"], hidden_chs, 7)
        self.classifier = nn.Sequential(
            nn.ReLU(True),
            nn.Dropout(drop_rate),
            nn.Linear(hidden_chs, hidden_chs),
            nn.ReLU(True),
            nn.Dropout(drop_rate),
            linear_head(hidden_chs, num_classes),
        )
        self.apply(_init_weights)

    def _reset_head(self, num_classes: int) -> None:
        """A fresh last linear layer for ``num_classes`` (0 removes it: forward returns the 4096-d pre-logits)."""
        self.num_classes = num_classes
        device = self.classifier[2].weight.device  # fc6 has no .weight in its deploy form
        head = linear_head(self.head_hidden_size, num_classes, device=device)
        head.apply(_init_weights)
        self.classifier[-1] = head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_blocks(self.features, x, segments=5)  # one checkpoint per pooling stage

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.fc6(self.avgpool(x)).flatten(1)
        for layer in self.classifier[:-1]:
            x = layer(x)
        return x if pre_logits else self.classifier[-1](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _init_weights(module: nn.Module) -> None:
    """The official initialisation (VConv2d does its own: He normal over fan-out, zero bias)."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0, 0.01)
        nn.init.zeros_(module.bias)


_PAPER = "https://papers.nips.cc/paper/7433-learning-versatile-filters-for-efficient-convolutional-neural-networks"


def _cfg(published: Published, **kwargs: Any) -> PretrainedCfg:
    return PretrainedCfg(
        tag="untrained",
        first_conv="features.0",
        classifier="classifier.5",
        interpolation="bilinear",
        crop_pct=0.875,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        license="bsd-3-clause",
        paper=_PAPER,
        published=published,
        notes="No weights were released. Evaluation as in the official imagenet-vcnn.py: "
        "Resize(256) + CenterCrop(224).",
        **kwargs,
    )


def _params(n: int) -> Published:
    return Published(params=n, source="parameter count of the official code")


@register_model("versatile_filters", [_cfg(_params(51_184_136))])
def vcnn_vgg11(**kwargs: Any) -> VersatileVGG:
    """Versatile VGG-11 (configuration A)."""
    return VersatileVGG(VGG_CFGS["vgg11"], **kwargs)


@register_model("versatile_filters", [_cfg(_params(51_189_640))])
def vcnn_vgg11_bn(**kwargs: Any) -> VersatileVGG:
    """Versatile VGG-11 with BatchNorm."""
    return VersatileVGG(VGG_CFGS["vgg11"], batch_norm=True, **kwargs)


@register_model("versatile_filters", [_cfg(_params(51_276_488))])
def vcnn_vgg13(**kwargs: Any) -> VersatileVGG:
    """Versatile VGG-13 (configuration B)."""
    return VersatileVGG(VGG_CFGS["vgg13"], **kwargs)


@register_model("versatile_filters", [_cfg(_params(51_282_376))])
def vcnn_vgg13_bn(**kwargs: Any) -> VersatileVGG:
    """Versatile VGG-13 with BatchNorm."""
    return VersatileVGG(VGG_CFGS["vgg13"], batch_norm=True, **kwargs)


@register_model(
    "versatile_filters",
    [
        _cfg(
            Published(
                params=53_931_976,
                top1=72.2,
                top5=91.1,
                source="official versatile_filters/readme.md, 'VGG-16 spatial versatile filters' (the paper's baseline "
                "is the BN-free VGG-16, 71.6 top-1)",
            )
        )
    ],
)
def vcnn_vgg16(**kwargs: Any) -> VersatileVGG:
    """Versatile VGG-16 (configuration D): the model of the paper's ImageNet result."""
    return VersatileVGG(VGG_CFGS["vgg16"], **kwargs)


@register_model("versatile_filters", [_cfg(_params(53_940_424))])
def vcnn_vgg16_bn(**kwargs: Any) -> VersatileVGG:
    """Versatile VGG-16 with BatchNorm."""
    return VersatileVGG(VGG_CFGS["vgg16"], batch_norm=True, **kwargs)


@register_model("versatile_filters", [_cfg(_params(56_587_464))])
def vcnn_vgg19(**kwargs: Any) -> VersatileVGG:
    """Versatile VGG-19 (configuration E)."""
    return VersatileVGG(VGG_CFGS["vgg19"], **kwargs)


@register_model("versatile_filters", [_cfg(_params(56_598_472))])
def vcnn_vgg19_bn(**kwargs: Any) -> VersatileVGG:
    """Versatile VGG-19 with BatchNorm."""
    return VersatileVGG(VGG_CFGS["vgg19"], batch_norm=True, **kwargs)
