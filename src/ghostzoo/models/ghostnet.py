"""GhostNet (v1).

Kai Han, Yunhe Wang, Qi Tian, Jianyuan Guo, Chunjing Xu, Chang Xu. "GhostNet: More Features from
Cheap Operations." CVPR 2020. https://arxiv.org/abs/1911.11907

A MobileNetV3-like network whose bottlenecks use Ghost modules (``layers.GhostModule``) instead of
1x1 convolutions. Module names equal the official ``ghostnet_pytorch/ghostnet.py`` and timm's
``ghostnet_*``, so both load without a key remap.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import ConvBnAct, GhostModule, SqueezeExcite, make_divisible
from ..layers.classifier import linear_head
from ..layers.dilation import set_output_stride
from ..registry import PretrainedCfg, Published, StateDict, register_model
from ._contract import TimmContract
from ._remap import fill_batchnorm_counters, rename

__all__ = ["GhostNet", "GhostBottleneck"]

# kernel, expansion width, output width, SE ratio, stride; one inner list per block of `blocks`.
BlockCfg = Tuple[int, int, int, float, int]
GHOSTNET_CFG: List[List[BlockCfg]] = [
    [(3, 16, 16, 0, 1)],
    [(3, 48, 24, 0, 2)],
    [(3, 72, 24, 0, 1)],
    [(5, 72, 40, 0.25, 2)],
    [(5, 120, 40, 0.25, 1)],
    [(3, 240, 80, 0, 2)],
    [(3, 200, 80, 0, 1), (3, 184, 80, 0, 1), (3, 184, 80, 0, 1), (3, 480, 112, 0.25, 1), (3, 672, 112, 0.25, 1)],
    [(5, 672, 160, 0.25, 2)],
    [(5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1), (5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1)],
]


def _dw_bn(
    chs: int, kernel_size: int, stride: int, conv_layer: Callable[..., nn.Module] = nn.Conv2d
) -> Tuple[nn.Module, nn.BatchNorm2d]:
    conv = conv_layer(chs, chs, kernel_size, stride, (kernel_size - 1) // 2, groups=chs, bias=False)
    return conv, nn.BatchNorm2d(chs)


class GhostBottleneck(nn.Module):
    """Ghost module (expand) -> [depthwise stride] -> [SE] -> Ghost module (project) + shortcut.

    GhostNetV2 and V3 reuse this block: ``attn=True`` gives the expanding Ghost module DFC
    attention (V2), and a subclass may change ``ghost_layer`` and the strided depthwise step
    (``_init_dw`` / ``_dw``), as GhostNetV3's re-parameterizable block does. ``conv_layer`` builds
    the Ghost modules' and the shortcut's convolutions, ``dw_conv_layer`` the strided depthwise one,
    ``se_layer`` the SE (ParameterNet's dynamic convolutions, PaddleClas's SE, TensorFlow's padding).
    """

    ghost_layer: Callable[..., nn.Module] = GhostModule

    def __init__(
        self,
        in_chs: int,
        mid_chs: int,
        out_chs: int,
        dw_kernel_size: int = 3,
        stride: int = 1,
        se_ratio: float = 0.0,
        attn: bool = False,
        conv_layer: Callable[..., nn.Module] = nn.Conv2d,
        act_layer: Callable[..., nn.Module] = nn.ReLU,
        se_layer: Callable[..., nn.Module] = SqueezeExcite,
        dw_conv_layer: Callable[..., nn.Module] = nn.Conv2d,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.dw_conv_layer = dw_conv_layer
        ghost = {"conv_layer": conv_layer} if conv_layer is not nn.Conv2d else {}  # RepGhost builds its own
        self.ghost1 = self.ghost_layer(in_chs, mid_chs, act_layer=act_layer, attn=attn, **ghost)
        if stride > 1:
            self._init_dw(mid_chs, dw_kernel_size, stride)
        self.se = se_layer(mid_chs, se_ratio, act_layer=act_layer) if se_ratio else None
        self.ghost2 = self.ghost_layer(mid_chs, out_chs, act_layer=None, **ghost)
        if in_chs == out_chs and stride == 1:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(
                *_dw_bn(in_chs, dw_kernel_size, stride, conv_layer),
                conv_layer(in_chs, out_chs, 1, bias=False),
                nn.BatchNorm2d(out_chs),
            )

    def _init_dw(self, chs: int, kernel_size: int, stride: int) -> None:
        self.conv_dw, self.bn_dw = _dw_bn(chs, kernel_size, stride, self.dw_conv_layer)

    def _dw(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn_dw(self.conv_dw(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut(x)
        x = self.ghost1(x)
        if self.stride > 1:
            x = self._dw(x)
        if self.se is not None:
            x = self.se(x)
        return self.ghost2(x) + shortcut


class GhostNet(TimmContract, nn.Module):
    """GhostNet backbone + classifier.

    The head is the official one: global pool, 1x1 conv to 1280 with bias and ReLU, dropout,
    linear (``head_norm``: PaddleClas's, a 1x1 conv without bias, then BatchNorm). ``feature_info``
    taps the last block at each stride (2, 4, 8, 16, 32): those are the maps a detection or
    segmentation neck wants. ``attn_from``: index (over all blocks) of the first block with DFC
    attention, 2 for GhostNetV2/V3, None for GhostNet v1. ``output_stride`` 16 or 8 dilates the
    later stages (dense prediction; the same weights). ``conv_layer`` and ``act_layer`` build the
    stem, the last 1x1 stage and the head's activation (ParameterNet's dynamic convolutions and
    Hardswish); a ``block`` takes its own, and may carry its own ``se_layer`` (PaddleClas's SE).
    """

    def __init__(
        self,
        cfgs: Sequence[Sequence[BlockCfg]] = GHOSTNET_CFG,
        num_classes: int = 1000,
        width: float = 1.0,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        block: Callable[..., nn.Module] = GhostBottleneck,
        head_chs: int = 1280,
        attn_from: Optional[int] = None,
        output_stride: int = 32,
        conv_layer: Callable[..., nn.Module] = nn.Conv2d,
        act_layer: Callable[..., nn.Module] = nn.ReLU,
        head_norm: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        stem_chs = make_divisible(16 * width, 4)
        self.conv_stem = conv_layer(in_chans, stem_chs, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_chs)
        self.act1 = act_layer(inplace=True)

        stages, reductions, channels = [], [], []
        prev_chs, reduction = stem_chs, 2
        layer_idx = 0
        for stage_cfg in cfgs:
            layers = []
            for k, exp_size, c, se_ratio, s in stage_cfg:
                out_chs = make_divisible(c * width, 4)
                attn = attn_from is not None and layer_idx >= attn_from
                layers.append(
                    block(prev_chs, make_divisible(exp_size * width, 4), out_chs, k, s, se_ratio=se_ratio, attn=attn)
                )
                prev_chs, reduction = out_chs, reduction * s
                layer_idx += 1
            stages.append(nn.Sequential(*layers))
            reductions.append(reduction)
            channels.append(prev_chs)
        self.num_features = make_divisible(cfgs[-1][-1][1] * width, 4)
        stages.append(
            nn.Sequential(ConvBnAct(prev_chs, self.num_features, 1, act_layer=act_layer, conv_layer=conv_layer))
        )
        reductions.append(reduction)
        channels.append(self.num_features)
        self.blocks = nn.Sequential(*stages)
        self.feature_info = [
            dict(num_chs=channels[i], reduction=r, module=f"blocks.{i}")
            for i, r in enumerate(reductions)
            if i + 1 == len(reductions) or reductions[i + 1] != r
        ]

        self.head_hidden_size = head_chs
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = nn.Conv2d(self.num_features, head_chs, 1, bias=not head_norm)
        self.norm_head = nn.BatchNorm2d(head_chs) if head_norm else nn.Identity()
        self.act2 = act_layer(inplace=True)
        self.flatten = nn.Flatten(1)
        self.classifier = linear_head(head_chs, num_classes)
        if output_stride != 32:
            set_output_stride([blk for stage in self.blocks for blk in stage], self.feature_info, 2, output_stride)

    def _reset_head(self, num_classes: int) -> None:
        """A fresh linear head for ``num_classes`` (0 removes it: forward returns pooled features)."""
        self.num_classes = num_classes
        device = self.conv_head.weight.device
        self.classifier = linear_head(self.head_hidden_size, num_classes, device=device)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_blocks(self.blocks, self.act1(self.bn1(self.conv_stem(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.flatten(self.act2(self.norm_head(self.conv_head(self.global_pool(x)))))
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _create(width: float, **kwargs: Any) -> GhostNet:
    return GhostNet(GHOSTNET_CFG, width=width, **kwargs)


_PAPER = "https://arxiv.org/abs/1911.11907"
_MINDCV = "https://download.mindspore.cn/toolkits/mindcv/ghostnet/{}.ckpt"
_MINDCV_TABLE = "MindCV configs/ghostnet/README.md"
# MindCV's names: MindSpore's BatchNorm parameters, and its last ConvBnAct as a SequentialCell
_MINDCV_RULES = [
    (r"\.gamma$", ".weight"),
    (r"\.beta$", ".bias"),
    (r"\.moving_mean$", ".running_mean"),
    (r"\.moving_variance$", ".running_var"),
    (r"^blocks\.9\.features\.0\.", "blocks.9.0.conv."),
    (r"^blocks\.9\.features\.1\.", "blocks.9.0.bn1."),
]


def mindcv_filter(state_dict: StateDict, model: nn.Module) -> StateDict:
    """MindCV's GhostNet (the official architecture) under ghostzoo's names; its training extras
    (optimizer moments, step counters) dropped. Other state dicts pass unchanged."""
    if "bn1.gamma" not in state_dict:
        return state_dict
    own = model.state_dict()
    renamed = {rename(k, _MINDCV_RULES): v for k, v in state_dict.items()}
    return fill_batchnorm_counters({k: v for k, v in renamed.items() if k in own}, model)


def _mindcv(name: str, top1: float, top5: float, params: int) -> PretrainedCfg:
    return _cfg(
        "mindcv_in1k",
        url=_MINDCV.format(name),
        published=Published(params=params, top1=top1, top5=top5, source=_MINDCV_TABLE),
        notes="MindCV's ImageNet weights (a MindSpore .ckpt, read without MindSpore), trained by MindCV with "
        "the official architecture.",
    )


# the packaged Imagenette model (10-class head); its accuracy is what `ghostzoo validate` measures
IMAGENETTE_PARAMS = 3_914_318
IMAGENETTE_TOP1 = 82.83
IMAGENETTE_TOP5 = 98.34
_PAPER_TABLE = "GhostNet paper (CVPR 2020), Table 7"


def _cfg(tag: str = "untrained", **kwargs: Any) -> PretrainedCfg:
    defaults = dict(
        first_conv="conv_stem",
        classifier="classifier",
        interpolation="bilinear",
        crop_pct=0.875,
        license="apache-2.0",
        paper=_PAPER,
    )
    return PretrainedCfg(tag=tag, **{**defaults, **kwargs})


@register_model(
    "ghostnet",
    [
        _cfg(published=Published(params=2_587_292, macs=42_000_000, top1=66.2, top5=86.6, source=_PAPER_TABLE)),
        _mindcv("ghostnet_050-85b91860", 66.03, 86.64, 2_587_292),
    ],
    mindcv_filter,
)
def ghostnet_050(**kwargs: Any) -> GhostNet:
    """GhostNet 0.5x. No official weights were released for this width; MindCV's are ``.mindcv_in1k``."""
    return _create(0.5, **kwargs)


@register_model(
    "ghostnet",
    [
        _cfg(
            "in1k",
            url="https://github.com/huawei-noah/Efficient-AI-Backbones/raw/master/ghostnet_pytorch/models/state_dict_73.98.pth",
            hf_hub_id="timm/ghostnet_100.in1k",
            published=Published(
                params=5_182_508,
                macs=141_000_000,
                top1=73.98,
                top5=91.46,
                source="official ghostnet_pytorch/readme.md (state_dict_73.98.pth); "
                "paper Table 7: 73.9 / 91.4 at 141M FLOPs",
            ),
            notes="Official release, evaluated by the authors with Resize(256, bilinear) + CenterCrop(224).",
        ),
        _cfg(
            "imagenette",
            file="weights/ghostnet_100_imagenette.safetensors",
            num_classes=10,
            input_size=(3, 160, 160),
            crop_pct=1.0,
            label_names="",
            class_names=(
                "tench",
                "English springer",
                "cassette player",
                "chain saw",
                "church",
                "French horn",
                "garbage truck",
                "gas pump",
                "golf ball",
                "parachute",
            ),
            license="apache-2.0 (weights trained by ghostzoo on Imagenette, Apache-2.0)",
            published=Published(
                params=IMAGENETTE_PARAMS,
                top1=IMAGENETTE_TOP1,
                top5=IMAGENETTE_TOP5,
                source="measured by `ghostzoo validate` on Imagenette-160 val (3,925 images), whole 160 px images",
            ),
            notes="Shipped inside the package so a fresh install can predict offline (`ghostzoo demo`). Trained "
            "from scratch on the 9,469 Imagenette-160 train images: `ghostzoo train ghostnet_100 --data "
            "imagenette-160 --recipe short --epochs 32 --img-size 128 --img-size-start 96 --val-img-size 160 "
            "--val-crop-pct 1.0 --batch-size 64 --workers 2 --seed 0` (docs/training.md).",
        ),
        _mindcv("ghostnet_100-bef8025a", 73.78, 91.66, 5_182_508),
    ],
    mindcv_filter,
)
def ghostnet_100(**kwargs: Any) -> GhostNet:
    """GhostNet 1.0x, the model of the paper's main results."""
    return _create(1.0, **kwargs)


@register_model(
    "ghostnet",
    [
        _cfg(published=Published(params=7_358_820, macs=226_000_000, top1=75.7, top5=92.7, source=_PAPER_TABLE)),
        _mindcv("ghostnet_130-cf4c235c", 75.50, 92.56, 7_358_820),
    ],
    mindcv_filter,
)
def ghostnet_130(**kwargs: Any) -> GhostNet:
    """GhostNet 1.3x. No official weights were released for this width; MindCV's are ``.mindcv_in1k``."""
    return _create(1.3, **kwargs)
