"""G-Ghost RegNet (G-GhostNet on RegNetX).

Kai Han, Yunhe Wang, Chang Xu, Jianyuan Guo, Chunjing Xu, Enhua Wu, Qi Tian. "GhostNets on
Heterogeneous Devices via Cheap Operations." IJCV 2022. https://arxiv.org/abs/2201.03297

The GPU-efficient variant of the Ghost idea works across blocks instead of inside them: in a
G-Ghost stage only a part of the channels ("raw", about half) goes through the stage's middle
blocks; the rest ("cheap") is made from the first block's output by a 1x1 conv, enriched by a
"mix" of globally pooled features of every block (``merge``), and concatenated back before the
stage's last block. Stages with more than two blocks (from the second on) are G-Ghost stages;
the others are plain RegNetX stages. Module names equal the official
``g_ghost_pytorch/g_ghost_regnet.py`` so its checkpoints load unchanged.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers.classifier import linear_head
from ..layers.dilation import set_output_stride
from ..layers.init import init_resnet_style
from ..registry import PretrainedCfg, Published, register_model
from ._contract import TimmContract

__all__ = ["GGhostRegNet", "GGhostStage", "RegNetBottleneck"]


def _conv_bn(in_chs: int, out_chs: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, stride, bias=False), nn.BatchNorm2d(out_chs))


class RegNetBottleneck(nn.Module):
    """RegNetX block: 1x1, grouped 3x3 (stride; groups of ``group_width`` channels), 1x1 + shortcut."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, group_width: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, stride, 1, groups=out_chs // min(out_chs, group_width), bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.conv3 = nn.Conv2d(out_chs, out_chs, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_chs)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: Optional[nn.Module] = (
            _conv_bn(in_chs, out_chs, stride) if stride != 1 or in_chs != out_chs else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + shortcut)


class GGhostStage(nn.Module):
    """``base`` block (stride) -> raw channels through ``layers`` -> cheap channels + mix -> ``end``.

    The middle blocks use a group width of ``0.75 * group_width`` and ``raw`` channels, a multiple
    of that group width close to ``(1 - cheap_ratio) * out_chs``, as in the official code.
    """

    def __init__(
        self, in_chs: int, out_chs: int, depth: int, stride: int, group_width: int, cheap_ratio: float = 0.5
    ) -> None:
        super().__init__()
        self.base = RegNetBottleneck(in_chs, out_chs, stride, group_width)
        self.end = RegNetBottleneck(out_chs, out_chs, group_width=group_width)
        raw_group_width = int(group_width * 0.75)
        self.raw_chs = int(out_chs * (1 - cheap_ratio) / raw_group_width) * raw_group_width
        cheap_chs = out_chs - self.raw_chs
        self.merge = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(out_chs + self.raw_chs * (depth - 2), cheap_chs, 1, bias=False),
            nn.BatchNorm2d(cheap_chs),
            nn.ReLU(inplace=True),
            nn.Conv2d(cheap_chs, cheap_chs, 1, bias=False),
            nn.BatchNorm2d(cheap_chs),
        )
        self.cheap = _conv_bn(cheap_chs, cheap_chs)
        self.cheap_relu = nn.ReLU(inplace=True)
        self.layers = nn.Sequential(
            *[RegNetBottleneck(self.raw_chs, self.raw_chs, group_width=raw_group_width) for _ in range(depth - 2)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.base(x)
        raw = x0[:, : self.raw_chs]
        pooled_from: List[torch.Tensor] = [x0]
        for layer in self.layers:
            raw = layer(raw)
            pooled_from.append(raw)
        mix = self.merge(torch.cat(pooled_from, dim=1))
        cheap = self.cheap_relu(self.cheap(x0[:, self.raw_chs :]) + mix)
        return self.end(torch.cat([raw, cheap], dim=1))


class GGhostRegNet(TimmContract, nn.Module):
    """Stem (3x3 conv, 32 channels, stride 2), four stages of stride 2, pooled linear head.

    ``feature_info`` taps the stem activation (stride 2) and the end of every stage (4 to 32);
    ``output_stride`` 16 or 8 dilates the later stages (dense prediction).
    """

    def __init__(
        self,
        depths: Sequence[int],
        widths: Sequence[int],
        group_width: int,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        output_stride: int = 32,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        stem_chs = 32
        self.conv1 = nn.Conv2d(in_chans, stem_chs, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_chs)
        self.relu = nn.ReLU(inplace=True)
        self.feature_info = [dict(num_chs=stem_chs, reduction=2, module="relu")]

        in_chs, reduction = stem_chs, 2
        for i, (depth, width) in enumerate(zip(depths, widths), start=1):
            reduction *= 2
            if i > 1 and depth > 2:
                stage: nn.Module = GGhostStage(in_chs, width, depth, 2, group_width)
                tap = f"layer{i}"
            else:
                stage = nn.Sequential(
                    RegNetBottleneck(in_chs, width, 2, group_width),
                    *[RegNetBottleneck(width, width, group_width=group_width) for _ in range(depth - 1)],
                )
                tap = f"layer{i}.{depth - 1}"  # features_only runs Sequential stages block by block
            self.add_module(f"layer{i}", stage)
            self.feature_info.append(dict(num_chs=width, reduction=reduction, module=tap))
            in_chs = width

        self.num_features = in_chs
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = linear_head(in_chs, num_classes)
        init_resnet_style(self)
        if output_stride != 32:
            set_output_stride(self._units(), self.feature_info, 2, output_stride)

    def _units(self) -> List[nn.Module]:
        """The blocks in the order they run; a G-Ghost stage is its strided base block, then the rest."""
        units: List[nn.Module] = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            if isinstance(stage, GGhostStage):
                units += [stage.base] + [m for name, m in stage.named_children() if name != "base"]
            else:
                units += list(stage)
        return units

    def _reset_head(self, num_classes: int) -> None:
        """A fresh linear head for ``num_classes`` (0 removes it: forward returns pooled features)."""
        self.num_classes = num_classes
        device = self.conv1.weight.device
        self.fc = linear_head(self.num_features, num_classes, device=device)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = self.run_block(stage, x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.avgpool(x).flatten(1)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_PAPER = "https://arxiv.org/abs/2201.03297"
_RELEASE = "https://github.com/huawei-noah/Efficient-AI-Backbones/releases/download/g_ghost_regnet"
_README = "official g_ghost_pytorch/readme.md (pretrained models table)"
_CODE = "official g_ghost_regnet.py (parameter count); no ImageNet result published for this size"


def _cfg(params: int, file: str = "", macs: Optional[int] = None, top1: Optional[float] = None) -> PretrainedCfg:
    # the official training/evaluation follows the PyTorch ImageNet example: Resize(256), CenterCrop(224)
    return PretrainedCfg(
        tag="in1k" if file else "untrained",
        url=f"{_RELEASE}/{file}" if file else "",
        first_conv="conv1",
        classifier="fc",
        interpolation="bilinear",
        crop_pct=0.875,
        license="apache-2.0",
        paper=_PAPER,
        published=Published(params=params, macs=macs, top1=top1, source=_README if file else _CODE),
        notes=f"Official release {file}." if file else "No official weights were released for this size.",
    )


@register_model("g_ghost_regnet", [_cfg(1_825_440)])
def g_ghost_regnetx_002(**kwargs: Any) -> GGhostRegNet:
    """G-Ghost RegNetX-200MF."""
    return GGhostRegNet([1, 1, 4, 7], [24, 56, 152, 368], 8, **kwargs)


@register_model("g_ghost_regnet", [_cfg(2_884_456)])
def g_ghost_regnetx_004(**kwargs: Any) -> GGhostRegNet:
    """G-Ghost RegNetX-400MF."""
    return GGhostRegNet([1, 2, 7, 12], [32, 64, 160, 384], 16, **kwargs)


@register_model("g_ghost_regnet", [_cfg(4_029_776)])
def g_ghost_regnetx_006(**kwargs: Any) -> GGhostRegNet:
    """G-Ghost RegNetX-600MF."""
    return GGhostRegNet([1, 3, 5, 7], [48, 96, 240, 528], 24, **kwargs)


@register_model("g_ghost_regnet", [_cfg(5_248_328)])
def g_ghost_regnetx_008(**kwargs: Any) -> GGhostRegNet:
    """G-Ghost RegNetX-800MF."""
    return GGhostRegNet([1, 3, 7, 5], [64, 128, 288, 672], 16, **kwargs)


@register_model("g_ghost_regnet", [_cfg(7_109_660)])
def g_ghost_regnetx_016(**kwargs: Any) -> GGhostRegNet:
    """G-Ghost RegNetX-1.6GF."""
    return GGhostRegNet([2, 4, 10, 2], [72, 168, 408, 912], 24, **kwargs)


@register_model("g_ghost_regnet", [_cfg(10_511_000, "g_ghost_regnet_3.2g_77.8.pth", 1_800_000_000, 77.8)])
def g_ghost_regnetx_032(**kwargs: Any) -> GGhostRegNet:
    """G-Ghost RegNetX-3.2GF: 77.8% top-1 (official weights)."""
    return GGhostRegNet([2, 6, 15, 2], [96, 192, 432, 1008], 48, **kwargs)


@register_model("g_ghost_regnet", [_cfg(15_726_268, "g_ghost_regnet_4.0g_78.6.pth", 2_200_000_000, 78.6)])
def g_ghost_regnetx_040(**kwargs: Any) -> GGhostRegNet:
    """G-Ghost RegNetX-4.0GF: 78.6% top-1 (official weights)."""
    return GGhostRegNet([2, 5, 14, 2], [80, 240, 560, 1360], 40, **kwargs)


@register_model("g_ghost_regnet", [_cfg(17_993_748)])
def g_ghost_regnetx_064(**kwargs: Any) -> GGhostRegNet:
    """G-Ghost RegNetX-6.4GF."""
    return GGhostRegNet([2, 4, 10, 1], [168, 392, 784, 1624], 56, **kwargs)


@register_model("g_ghost_regnet", [_cfg(24_586_928, "g_ghost_regnet_8.0g_79.0.pth", 4_200_000_000, 79.0)])
def g_ghost_regnetx_080(**kwargs: Any) -> GGhostRegNet:
    """G-Ghost RegNetX-8.0GF: 79.0% top-1 (official weights)."""
    return GGhostRegNet([2, 5, 15, 1], [80, 240, 720, 1920], 120, **kwargs)


@register_model("g_ghost_regnet", [_cfg(30_627_208)])
def g_ghost_regnetx_120(**kwargs: Any) -> GGhostRegNet:
    """G-Ghost RegNetX-12GF."""
    return GGhostRegNet([2, 5, 11, 1], [224, 448, 896, 2240], 112, **kwargs)


@register_model("g_ghost_regnet", [_cfg(32_381_704, "g_ghost_regnet_16.0g_79.9.pth", 9_000_000_000, 79.9)])
def g_ghost_regnetx_160(**kwargs: Any) -> GGhostRegNet:
    """G-Ghost RegNetX-16GF: 79.9% top-1 (official weights)."""
    return GGhostRegNet([2, 6, 13, 1], [256, 512, 896, 2048], 128, **kwargs)


@register_model("g_ghost_regnet", [_cfg(62_815_448)])
def g_ghost_regnetx_320(**kwargs: Any) -> GGhostRegNet:
    """G-Ghost RegNetX-32GF."""
    return GGhostRegNet([2, 7, 13, 1], [336, 672, 1344, 2520], 168, **kwargs)
