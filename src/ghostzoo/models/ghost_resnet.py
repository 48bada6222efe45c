"""Ghost-ResNet-50.

Kai Han, Yunhe Wang, Qi Tian, Jianyuan Guo, Chunjing Xu, Chang Xu. "GhostNet: More Features from
Cheap Operations." CVPR 2020. https://arxiv.org/abs/1911.11907 (Section 4.1, Table 5)

ResNet-50 with every convolution of the bottlenecks and downsampling paths replaced by a Ghost
convolution: ``s`` = 4 (a quarter of the output channels from an ordinary convolution, the rest
from a cheap depthwise ``d`` x ``d`` = 3 x 3 one on those).

This is the model of the official ``ghostnet_pytorch/ghost_resnet.py``, kept checkpoint-compatible
with it, and that file differs from the paper's description:

* its Ghost convolution has no BatchNorm and no activation: ``conv1`` and ``conv2`` carry biases,
  and the blocks apply ReLU after the Ghost convolution only;
* each Ghost convolution also registers ``weight1``, ``weight2``, ``bn1`` and ``bn2``, which its
  forward pass never uses. They are kept so that the official state_dict loads strictly and the
  parameter count equals the official code's, 14,218,472; 8,125,256 of them compute.

One extension: global average pooling is a mean over the whole map, where the official
``AvgPool2d(7)`` accepts 224x224 inputs only; at 224x224 both are the same operation.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
import torch.nn as nn

from ..layers.classifier import linear_head
from ..layers.dilation import set_output_stride
from ..layers.init import init_resnet_style
from ..registry import PretrainedCfg, Published, register_model
from ._contract import TimmContract

__all__ = ["GhostResNet", "GhostConv", "GhostResNetBottleneck"]


class GhostConv(nn.Module):
    """The official Ghost-ResNet "GhostModule": ``cat(x1, cheap(x1))`` with ``x1 = conv1(x)``.

    ``conv1`` (``kernel_size``, stride, padding) makes ``ceil(out / ratio)`` channels, the
    depthwise ``conv2`` makes ``ratio - 1`` ghosts of each, trimmed to ``out_chs`` in total. Both
    have a bias; there is no normalisation. ``weight1`` / ``weight2`` / ``bn1`` / ``bn2`` exist
    only for checkpoint compatibility (see the module docstring).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        ratio: int = 4,
        dw_size: int = 3,
    ) -> None:
        super().__init__()
        init_chs = math.ceil(out_chs / ratio)
        new_chs = init_chs * (ratio - 1)
        self.ghost_chs = out_chs - init_chs
        self.conv1 = nn.Conv2d(in_chs, init_chs, kernel_size, stride, padding)
        self.conv2 = nn.Conv2d(init_chs, new_chs, dw_size, 1, dw_size // 2, groups=init_chs)
        # unused by forward(); present in the official state_dict and parameter count
        self.weight1 = nn.Parameter(torch.empty(init_chs, in_chs, kernel_size, kernel_size))
        self.bn1 = nn.BatchNorm2d(init_chs)
        self.weight2 = nn.Parameter(torch.empty(new_chs, 1, dw_size, dw_size))
        self.bn2 = nn.BatchNorm2d(out_chs - init_chs)
        for w in (self.weight1, self.weight2):
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        x2 = self.conv2(x1)
        return torch.cat([x1, x2[:, : self.ghost_chs]], dim=1)


class GhostResNetBottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 (x4 expansion) Ghost convolutions, ReLU between, + shortcut."""

    expansion = 4

    def __init__(
        self,
        in_chs: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        ratio: int = 4,
        dw_size: int = 3,
    ) -> None:
        super().__init__()
        self.conv1 = GhostConv(in_chs, planes, 1, ratio=ratio, dw_size=dw_size)
        self.conv2 = GhostConv(planes, planes, 3, stride, 1, ratio=ratio, dw_size=dw_size)
        self.conv3 = GhostConv(planes, planes * self.expansion, 1, ratio=ratio, dw_size=dw_size)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.conv1(x))
        out = self.relu(self.conv2(out))
        return self.relu(self.conv3(out) + shortcut)


class GhostResNet(TimmContract, nn.Module):
    """ResNet stem (7x7 conv, BN, ReLU, max pool), four stages of Ghost bottlenecks, linear head.

    ``feature_info`` taps the stem activation (stride 2) and the last block of every stage
    (strides 4 to 32); ``output_stride`` 16 or 8 dilates the later stages (dense prediction).
    """

    def __init__(
        self,
        layers: Sequence[int] = (3, 4, 6, 3),
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        ratio: int = 4,
        dw_size: int = 3,
        output_stride: int = 32,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.feature_info = [dict(num_chs=64, reduction=2, module="relu")]

        in_chs, reduction = 64, 4
        for i, (planes, depth) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            stride = 1 if i == 1 else 2
            reduction *= stride
            out_chs = planes * GhostResNetBottleneck.expansion
            downsample = None
            if stride != 1 or in_chs != out_chs:
                downsample = nn.Sequential(GhostConv(in_chs, out_chs, 1, stride, ratio=ratio, dw_size=dw_size))
            blocks = [GhostResNetBottleneck(in_chs, planes, stride, downsample, ratio, dw_size)]
            blocks += [GhostResNetBottleneck(out_chs, planes, ratio=ratio, dw_size=dw_size) for _ in range(1, depth)]
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=out_chs, reduction=reduction, module=f"layer{i}.{depth - 1}"))
            in_chs = out_chs

        self.num_features = in_chs
        self.fc = linear_head(in_chs, num_classes)
        init_resnet_style(self)
        if output_stride != 32:
            stages = (self.layer1, self.layer2, self.layer3, self.layer4)
            set_output_stride([blk for stage in stages for blk in stage], self.feature_info, 4, output_stride)

    def _reset_head(self, num_classes: int) -> None:
        """A fresh linear head for ``num_classes`` (0 removes it: forward returns pooled features)."""
        self.num_classes = num_classes
        device = self.conv1.weight.device
        self.fc = linear_head(self.num_features, num_classes, device=device)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = self.run_blocks(stage, x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3))  # the official AvgPool2d(7) at 224, and any other size
        if self.drop_rate > 0.0:
            x = nn.functional.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_DIFFERENCES = (
    "Official ghost_resnet.py model, which differs from the paper: no BatchNorm in the "
    "Ghost convolutions (biased convs instead), and unused weight1/weight2/bn1/bn2 "
    "parameters in each, kept so official checkpoints load; 14,218,472 parameters, "
    "8,125,256 of which compute. Global pooling over any input size. No weights "
    "were released; published numbers are the paper's (s=4, d=3)."
)


@register_model(
    "ghost_resnet",
    [
        PretrainedCfg(
            tag="untrained",
            first_conv="conv1",
            classifier="fc",
            interpolation="bilinear",
            crop_pct=0.875,
            license="apache-2.0",
            paper="https://arxiv.org/abs/1911.11907",
            published=Published(
                params=14_218_472,
                macs=1_200_000_000,
                top1=74.1,
                top5=91.9,
                source="GhostNet paper (CVPR 2020), Table 5, Ghost-ResNet-50 (s=4); "
                "params: the official code's count (paper: 6.5M)",
            ),
            notes=_DIFFERENCES,
        ),
    ],
)
def ghost_resnet50(**kwargs: Any) -> GhostResNet:
    """Ghost-ResNet-50 (s=4, d=3) as in the official ghost_resnet.py.

    That code differs from the paper: its Ghost convolutions have no BatchNorm (biased convs
    instead) and carry unused weight1/weight2/bn1/bn2 parameters, kept here so official
    checkpoints load (14,218,472 parameters, 8,125,256 of which compute). Unlike it, global
    pooling is adaptive, so any input size works. No weights were released.
    """
    return GhostResNet((3, 4, 6, 3), **kwargs)
