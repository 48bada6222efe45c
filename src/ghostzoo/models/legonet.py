"""LegoNet.

Zhaohui Yang, Yunhe Wang, Chuanjian Liu, Hanting Chen, Chunjing Xu, Boxin Shi, Chao Xu, Chang Xu.
"LegoNet: Efficient Convolutional Neural Networks with Lego Filters." ICML 2019.
http://proceedings.mlr.press/v97/yang19c/yang19c.pdf

A VGG-16-style CIFAR-10 network (three 3x3 convolutions per stage) whose convolutions after the
first are ``layers.LegoConv2d``: every filter is assembled from a small shared set of "lego"
filters. Module names equal the official ``legonet_pytorch/vgg.py`` (``features.i``,
``classifier``), so its checkpoints load without a remap.
"""

from __future__ import annotations

from typing import Any, List, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import LegoConv2d, vgg_features
from ..layers.classifier import linear_head
from ..registry import PretrainedCfg, Published, register_model
from ._contract import TimmContract

__all__ = ["LegoVGG"]

LEGO_VGG16_CFG: List[Union[int, str]] = [
    64,
    64,
    64,
    "M",
    128,
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
]
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)


class LegoVGG(TimmContract, nn.Module):
    """Conv-BN-ReLU, then LegoConv2d-BN-ReLU layers and max pools per ``cfg``, then a linear classifier.

    The official model flattens the 1x1 map left by five pools on a 32x32 input; here the map is
    average-pooled first when it is larger, so other input sizes work and 32x32 is unchanged.
    ``drop_rate`` (dropout before the classifier) is 0 as in the official model.
    """

    def __init__(
        self,
        cfg: Sequence[Union[int, str]] = LEGO_VGG16_CFG,
        n_split: int = 2,
        n_lego: float = 0.5,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.drop_rate = drop_rate

        def conv(in_chs: int, out_chs: int, index: int) -> nn.Module:
            if index == 0:  # the first convolution is an ordinary one
                return nn.Conv2d(in_chs, out_chs, 3, padding=1)
            return LegoConv2d(in_chs, out_chs, 3, n_split, n_lego)

        self.features, self.feature_info = vgg_features(cfg, in_chans, conv, batch_norm=True)
        self.num_features = self.head_hidden_size = self.feature_info[-1]["num_chs"]
        self.classifier = linear_head(self.num_features, num_classes)

    def _reset_head(self, num_classes: int) -> None:
        """A fresh linear head for ``num_classes`` (0 removes it: forward returns pooled features)."""
        self.num_classes = num_classes
        device = self.features[0].weight.device
        self.classifier = linear_head(self.num_features, num_classes, device=device)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_blocks(self.features, x, segments=5)  # one checkpoint per pooling stage

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)  # exact no-op on the 1x1 map of 32 px inputs
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model(
    "legonet",
    [
        PretrainedCfg(
            tag="untrained",
            num_classes=10,
            input_size=(3, 32, 32),
            crop_pct=1.0,
            interpolation="bilinear",
            mean=CIFAR10_MEAN,
            std=CIFAR10_STD,
            first_conv="features.0",
            classifier="classifier",
            label_names="cifar-10",
            license="bsd-3-clause",
            paper="http://proceedings.mlr.press/v97/yang19c/yang19c.pdf",
            published=Published(
                params=7_392_650,
                top1=93.88,
                source="official legonet_pytorch/README.md (CIFAR-10 test accuracy, not ImageNet)",
            ),
            notes="CIFAR-10 model (10 classes, 32x32, CIFAR mean/std as in the official train.py); "
            "n_split 2 and n_lego 0.5 are the official training defaults. No weights were released.",
        ),
    ],
)
def lego_vgg16(n_split: int = 2, n_lego: float = 0.5, **kwargs: Any) -> LegoVGG:
    """Lego-VGG-16 for CIFAR-10: each LegoConv2d holds ``n_lego * out_chs`` legos over ``1/n_split`` of its input."""
    return LegoVGG(LEGO_VGG16_CFG, n_split, n_lego, **kwargs)
