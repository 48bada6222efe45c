"""Wave-MLP.

Yehui Tang, Kai Han, Jianyuan Guo, Chang Xu, Yanxi Li, Chao Xu, Yunhe Wang. "An Image Patch is a
Wave: Phase-Aware Vision MLP." CVPR 2022. https://arxiv.org/abs/2111.12294

A four-stage MLP whose token mixer (PATM, phase-aware token mixing) treats every token as a wave:
its features are the amplitude and a phase estimated from the image, unfolded as
``amplitude * cos(phase)`` and ``amplitude * sin(phase)``. Tokens are mixed along rows and along
columns by depthwise 1x7 / 7x1 convolutions over those unfolded waves, so the mixing weights act
differently on each image; a learned softmax re-weights the row, column and channel branches.

Module names equal the official ``wavemlp_pytorch/models/wavemlp.py`` (``patch_embed``,
``network.i``, ``attn.{fc_h,fc_w,fc_c,tfc_h,tfc_w,reweight,proj,theta_h_conv,theta_w_conv}``,
``norm``, ``head``), so the released checkpoints load without a remap.
"""

from __future__ import annotations

from typing import Any, Callable, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, GroupNorm1, Mlp, trunc_normal_

from ..layers.classifier import linear_head
from ..registry import IMAGENET_MEAN, IMAGENET_STD, PretrainedCfg, Published, register_model
from ._contract import TimmContract

__all__ = ["WaveMLP", "PATM", "WaveBlock"]

NormLayer = Callable[[int], nn.Module]


def _unfold_wave(amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """A wave ``|z| e^{i theta}`` as its real and imaginary parts, stacked along channels."""
    return torch.cat([amplitude * torch.cos(phase), amplitude * torch.sin(phase)], dim=1)


def _phase(dim: int, depthwise: bool) -> nn.Sequential:
    """The phase estimator: a 1x1 conv (or a 3x3 depthwise one, Wave-MLP-T*), BN, ReLU."""
    conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False) if depthwise else nn.Conv2d(dim, dim, 1, bias=True)
    return nn.Sequential(conv, nn.BatchNorm2d(dim), nn.ReLU())


class PATM(nn.Module):
    """Phase-aware token mixing.

    Row branch: amplitude ``fc_h(x)``, phase ``theta_h_conv(x)``, unfolded and mixed along the width
    by a 1x7 depthwise conv over the two parts of each channel's wave (``tfc_h``); the column branch
    is the same along the height; the channel branch is ``fc_c(x)``. The three are summed with
    per-channel softmax weights from ``reweight`` (an MLP on their global average), then projected.
    """

    def __init__(self, dim: int, qkv_bias: bool = False, proj_drop: float = 0.0, depthwise_phase: bool = False) -> None:
        super().__init__()
        self.fc_h = nn.Conv2d(dim, dim, 1, bias=qkv_bias)
        self.fc_w = nn.Conv2d(dim, dim, 1, bias=qkv_bias)
        self.fc_c = nn.Conv2d(dim, dim, 1, bias=qkv_bias)
        self.tfc_h = nn.Conv2d(2 * dim, dim, (1, 7), padding=(0, 3), groups=dim, bias=False)
        self.tfc_w = nn.Conv2d(2 * dim, dim, (7, 1), padding=(3, 0), groups=dim, bias=False)
        self.reweight = Mlp(dim, dim // 4, dim * 3, use_conv=True)
        self.proj = nn.Conv2d(dim, dim, 1, bias=True)
        self.proj_drop = nn.Dropout(proj_drop)
        self.theta_h_conv = _phase(dim, depthwise_phase)
        self.theta_w_conv = _phase(dim, depthwise_phase)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, chs = x.shape[:2]
        h = self.tfc_h(_unfold_wave(self.fc_h(x), self.theta_h_conv(x)))
        w = self.tfc_w(_unfold_wave(self.fc_w(x), self.theta_w_conv(x)))
        c = self.fc_c(x)
        weights = self.reweight(F.adaptive_avg_pool2d(h + w + c, 1))
        weights = weights.reshape(batch, chs, 3).permute(2, 0, 1).softmax(dim=0)[..., None, None]
        x = h * weights[0] + w * weights[1] + c * weights[2]
        return self.proj_drop(self.proj(x))


class WaveBlock(nn.Module):
    """Pre-norm residual block: ``x + PATM(norm1(x))``, then ``x + MLP(norm2(x))``."""

    def __init__(
        self,
        dim: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        drop_path: float = 0.0,
        norm_layer: NormLayer = nn.BatchNorm2d,
        act_layer: Callable[..., nn.Module] = nn.GELU,
        depthwise_phase: bool = False,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = PATM(dim, qkv_bias=qkv_bias, depthwise_phase=depthwise_phase)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, use_conv=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ConvNorm(nn.Module):
    """Strided conv then an optional norm: the patch embedding and the downsampling between stages."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int,
        stride: int,
        padding: int,
        norm_layer: NormLayer,
        use_norm: bool = True,
    ) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding)
        self.norm = norm_layer(out_chs) if use_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class WaveMLP(TimmContract, nn.Module):
    """Patch embedding (7x7 conv, stride 4), four stages of ``WaveBlock`` with stride-2 3x3 conv
    downsampling between them, final norm, global pool, linear classifier ``head``.

    ``feature_info`` taps the last block of each stage (stride 4, 8, 16, 32).
    """

    def __init__(
        self,
        depths: Sequence[int],
        embed_dims: Sequence[int],
        mlp_ratios: Sequence[float],
        num_classes: int = 1000,
        in_chans: int = 3,
        qkv_bias: bool = False,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_layer: NormLayer = nn.BatchNorm2d,
        downsample_norm: bool = True,
        depthwise_phase: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.num_features = self.head_hidden_size = embed_dims[-1]
        self.patch_embed = ConvNorm(in_chans, embed_dims[0], 7, 4, 2, norm_layer, downsample_norm)

        total, done = sum(depths), 0
        stages: List[nn.Module] = []
        self.feature_info = []
        for i, (depth, dim) in enumerate(zip(depths, embed_dims)):
            if i > 0:
                stages.append(ConvNorm(embed_dims[i - 1], dim, 3, 2, 1, norm_layer, downsample_norm))
            stages.append(
                nn.Sequential(
                    *[
                        WaveBlock(
                            dim,
                            mlp_ratios[i],
                            qkv_bias,
                            drop_path_rate * (done + j) / (total - 1),
                            norm_layer,
                            depthwise_phase=depthwise_phase,
                        )
                        for j in range(depth)
                    ]
                )
            )
            done += depth
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2**i, module=f"network.{len(stages) - 1}"))
        self.network = nn.Sequential(*stages)
        self.norm = norm_layer(self.num_features)
        self.head = linear_head(self.num_features, num_classes)
        self.apply(_init_weights)

    def _reset_head(self, num_classes: int) -> None:
        """A fresh linear head for ``num_classes`` (0 removes it: forward returns pooled features)."""
        self.num_classes = num_classes
        device = self.norm.weight.device
        self.head = linear_head(self.num_features, num_classes, device=device)
        self.head.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.run_blocks(self.network, self.patch_embed(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _init_weights(module: nn.Module) -> None:
    """The official initialisation: truncated normal (std 0.02) for the linear head, zero bias."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


_SMALL = dict(depths=(2, 2, 4, 2), embed_dims=(64, 128, 320, 512), mlp_ratios=(4, 4, 4, 4))

_PAPER = "https://arxiv.org/abs/2111.12294"
_README = "official wavemlp_pytorch/README.md (FLOPs column = MACs at 224)"
_RELEASE = "https://github.com/huawei-noah/Efficient-AI-Backbones/releases/download/wavemlp"


def _cfg(tag: str = "untrained", crop_pct: float = 0.9, **kwargs: Any) -> PretrainedCfg:
    return PretrainedCfg(
        tag=tag,
        first_conv="patch_embed.proj",
        classifier="head",
        interpolation="bicubic",
        crop_pct=crop_pct,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        license="apache-2.0",
        paper=_PAPER,
        **kwargs,
    )


@register_model(
    "wavemlp",
    [
        _cfg(
            "in1k",
            url=f"{_RELEASE}/WaveMLP_T_dw.pth.tar",
            published=Published(params=15_286_472, macs=2_100_000_000, top1=80.1, source=_README + " (Wave-MLP-T*)"),
        ),
    ],
)
def wavemlp_t_dw(**kwargs: Any) -> WaveMLP:
    """Wave-MLP-T*: Wave-MLP-T with 3x3 depthwise phase estimators."""
    return WaveMLP(**_SMALL, depthwise_phase=True, **kwargs)


@register_model(
    "wavemlp",
    [
        _cfg(
            "in1k",
            url=f"{_RELEASE}/WaveMLP_T.pth.tar",
            published=Published(params=17_193_160, macs=2_400_000_000, top1=80.9, source=_README),
        ),
    ],
)
def wavemlp_t(**kwargs: Any) -> WaveMLP:
    """Wave-MLP-T: depths 2-2-4-2, widths 64-128-320-512, BatchNorm."""
    return WaveMLP(**_SMALL, **kwargs)


@register_model(
    "wavemlp",
    [
        _cfg(
            "in1k",
            url=f"{_RELEASE}/WaveMLP_S.pth.tar",
            published=Published(params=30_708_040, macs=4_500_000_000, top1=82.9, source=_README),
        ),
    ],
)
def wavemlp_s(**kwargs: Any) -> WaveMLP:
    """Wave-MLP-S: depths 2-3-10-3, widths 64-128-320-512, GroupNorm(1)."""
    return WaveMLP((2, 3, 10, 3), (64, 128, 320, 512), (4, 4, 4, 4), norm_layer=GroupNorm1, **kwargs)


@register_model(
    "wavemlp",
    [
        _cfg(
            "in1k",
            url=f"{_RELEASE}/WaveMLP_M.pth.tar",
            published=Published(params=44_056_632, macs=7_900_000_000, top1=83.3, source=_README),
        ),
    ],
)
def wavemlp_m(**kwargs: Any) -> WaveMLP:
    """Wave-MLP-M: depths 3-4-18-3, widths 64-128-320-512, MLP ratios 8-8-4-4, GroupNorm(1), no norm
    after the patch embedding and downsampling convs."""
    return WaveMLP(
        (3, 4, 18, 3), (64, 128, 320, 512), (8, 8, 4, 4), norm_layer=GroupNorm1, downsample_norm=False, **kwargs
    )


@register_model(
    "wavemlp",
    [
        _cfg(
            crop_pct=0.875,
            published=Published(params=63_586_360, source="parameter count of the official code"),
            notes="The readme lists no checkpoint for Wave-MLP-B.",
        ),
    ],
)
def wavemlp_b(**kwargs: Any) -> WaveMLP:
    """Wave-MLP-B: depths 2-2-18-2, widths 96-192-384-768, GroupNorm(1), no norm after the patch
    embedding and downsampling convs. No official weights were released."""
    return WaveMLP(
        (2, 2, 18, 2), (96, 192, 384, 768), (4, 4, 4, 4), norm_layer=GroupNorm1, downsample_norm=False, **kwargs
    )
