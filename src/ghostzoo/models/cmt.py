"""CMT.

Jianyuan Guo, Kai Han, Han Wu, Yehui Tang, Xinghao Chen, Yunhe Wang, Chang Xu. "CMT: Convolutional
Neural Networks Meet Vision Transformers." CVPR 2022. https://arxiv.org/abs/2107.06263

A four-stage hybrid: a convolutional stem (three 3x3 convolutions), then at strides 4, 8, 16 and 32
a 2x2 patch embedding and blocks of three parts: a depthwise 3x3 "local perception unit" added to
its input, lightweight multi-head self-attention whose keys and values come from a depthwise
strided convolution (spatial reduction) with a learned bias ``relative_pos`` over (query, key)
positions, and an inverted-residual feed-forward network (1x1, depthwise 3x3 with a residual, 1x1).
A 1x1 convolution to 1280 channels, BatchNorm and Swish precede the pooled linear classifier.
Module names equal the official ``cmt_pytorch/cmt.py``.

The official code runs only at its training resolution (``relative_pos`` is sized for it). As in
:mod:`.pyramid_tnt`, the biases are resampled to the input's token grids at forward time and to the
model's grids when a checkpoint trained at another size is loaded (:func:`checkpoint_filter`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple, Union

import torch
import torch.nn as nn
from timm.layers import DropPath, calculate_drop_path_rates, trunc_normal_

from ..errors import GhostzooError
from ..layers import dot_product_attention, resize_rel_pos_bias, square_grid, tokens_to_map
from ..layers.classifier import linear_head
from ..layers.patches import Grid
from ..registry import IMAGENET_MEAN, IMAGENET_STD, PretrainedCfg, Published, register_model
from ._contract import Indices, TimmContract, check_output_fmt, take_indices

__all__ = ["CMT", "checkpoint_filter"]

SR_RATIOS = (8, 4, 2, 1)  # spatial reduction of the keys and values, per stage
STAGES = ("a", "b", "c", "d")  # the official suffixes of each stage's modules


def _pooled(grid: Grid, sr_ratio: int) -> Grid:
    return grid[0] // sr_ratio, grid[1] // sr_ratio


class Attention(nn.Module):
    """Multi-head self-attention over tokens whose keys and values are computed from the token map
    reduced ``sr_ratio`` times by a depthwise strided convolution + BatchNorm, plus a bias."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, sr_ratio: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Sequential(
                nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio, groups=dim), nn.BatchNorm2d(dim, eps=1e-5)
            )

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], self.num_heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, grid: Grid, bias: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q = self._heads(self.q(x))
        if self.sr_ratio > 1:
            x = self.sr(tokens_to_map(x, grid)).flatten(2).transpose(1, 2)
        out = dot_product_attention(q, self._heads(self.k(x)), self._heads(self.v(x)), bias)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    """The inverted-residual feed-forward network: 1x1 + GELU + BN, a depthwise 3x3 added to its
    input, GELU + BN, 1x1 + BN; on the token map."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.BatchNorm2d(hidden, eps=1e-5))
        self.proj = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.proj_act = nn.GELU()
        self.proj_bn = nn.BatchNorm2d(hidden, eps=1e-5)
        self.conv2 = nn.Sequential(nn.Conv2d(hidden, dim, 1), nn.BatchNorm2d(dim, eps=1e-5))

    def forward(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        x = self.conv1(tokens_to_map(x, grid))
        x = self.proj_bn(self.proj_act(self.proj(x) + x))
        return self.conv2(x).flatten(2).transpose(1, 2)


class Block(nn.Module):
    """Local perception unit (depthwise 3x3, residual), then attention and feed-forward, pre-norm."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop_path: float, sr_ratio: int
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias, sr_ratio)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.proj = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor, grid: Grid, bias: torch.Tensor) -> torch.Tensor:
        cnn = tokens_to_map(x, grid)
        x = (self.proj(cnn) + cnn).flatten(2).transpose(1, 2)
        x = x + self.drop_path(self.attn(self.norm1(x), grid, bias))
        return x + self.drop_path(self.mlp(self.norm2(x), grid))


class PatchEmbed(nn.Module):
    """2x2 patches (a stride-2 convolution) to tokens ``[B, N, C]``, LayerNorm; and their grid."""

    def __init__(self, in_chs: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chs, dim, 2, stride=2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Grid]:
        x = self.proj(x)
        return self.norm(x.flatten(2).transpose(1, 2)), (x.shape[2], x.shape[3])


class CMT(TimmContract, nn.Module):
    """Stem, four stages of CMT blocks, and the 1x1-conv + Swish head; features are the last stage's map."""

    def __init__(
        self,
        embed_dims: Sequence[int],
        stem_chs: int,
        depths: Sequence[int],
        mlp_ratio: float,
        img_size: int = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        num_heads: Sequence[int] = (1, 2, 4, 8),
        fc_dim: int = 1280,
        drop_rate: float = 0.1,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.num_features, self.head_hidden_size = embed_dims[-1], fc_dim
        stem = [in_chans, stem_chs, stem_chs]
        for i, chs in enumerate(stem, start=1):
            setattr(self, f"stem_conv{i}", nn.Conv2d(chs, stem_chs, 3, 2 if i == 1 else 1, 1))
            setattr(self, f"stem_relu{i}", nn.GELU())
            setattr(self, f"stem_norm{i}", nn.BatchNorm2d(stem_chs, eps=1e-5))

        dpr = calculate_drop_path_rates(drop_path_rate, list(depths), stagewise=False)
        self.grid_sizes: List[Grid] = []
        self.feature_info = []
        in_chs, first = stem_chs, 0
        for i, (s, dim, depth) in enumerate(zip(STAGES, embed_dims, depths)):
            side = img_size // (4 * 2**i)
            self.grid_sizes.append((side, side))
            keys = _pooled((side, side), SR_RATIOS[i])
            setattr(self, f"patch_embed_{s}", PatchEmbed(in_chs, dim))
            setattr(self, f"relative_pos_{s}", nn.Parameter(torch.randn(num_heads[i], side * side, keys[0] * keys[1])))
            blocks = [Block(dim, num_heads[i], mlp_ratio, True, dpr[first + j], SR_RATIOS[i]) for j in range(depth)]
            setattr(self, f"blocks_{s}", nn.ModuleList(blocks))
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2**i, module=f"blocks_{s}.{depth - 1}"))
            in_chs, first = dim, first + depth

        self._fc = nn.Conv2d(embed_dims[-1], fc_dim, 1)
        self._bn = nn.BatchNorm2d(fc_dim, eps=1e-5)
        self._swish = nn.SiLU()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._drop = nn.Dropout(drop_rate)
        self.head = linear_head(fc_dim, num_classes)
        self.apply(_init_weights)

    def _reset_head(self, num_classes: int) -> None:
        """A fresh linear head for ``num_classes`` (0 removes it: forward returns the 1280-d pooled features)."""
        self.num_classes = num_classes
        self.head = linear_head(self.head_hidden_size, num_classes, device=self._fc.weight.device)

    def _bias(self, i: int, grid: Grid) -> torch.Tensor:
        """Stage ``i``'s attention bias ``[heads, N, M]`` for a token grid ``grid`` (the parameter
        itself at the trained grid: a view of it made under no_grad would confuse autograd's hooks)."""
        trained, bias = self.grid_sizes[i], getattr(self, f"relative_pos_{STAGES[i]}")
        if tuple(grid) == tuple(trained):
            return bias
        sr = SR_RATIOS[i]
        return resize_rel_pos_bias(bias.unsqueeze(0), trained, grid, _pooled(trained, sr), _pooled(grid, sr))[0]

    def _stages(self, x: torch.Tensor, last: int) -> List[Tuple[torch.Tensor, Grid]]:
        """Tokens ``[B, N, C]`` and their grid after each stage up to ``last``."""
        for i in (1, 2, 3):
            x = getattr(self, f"stem_norm{i}")(getattr(self, f"stem_relu{i}")(getattr(self, f"stem_conv{i}")(x)))
        out = []
        for i, s in enumerate(STAGES[: last + 1]):
            x, grid = getattr(self, f"patch_embed_{s}")(x if i == 0 else tokens_to_map(*out[-1]))
            bias = self._bias(i, grid)
            for blk in getattr(self, f"blocks_{s}"):
                x = self.run_block(blk, x, grid, bias)
            out.append((x, grid))
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's tokens as a map ``[B, C, H/32, W/32]``."""
        return tokens_to_map(*self._stages(x, len(self.feature_info) - 1)[-1])

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self._avg_pooling(self._swish(self._bn(self._fc(x)))).flatten(1)
        x = self._drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Indices = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Tokens after the stages in ``indices`` as ``[B, C, H, W]`` maps at strides 4..32 and,
        unless ``intermediates_only``, ``forward_features``' map (CMT has no final norm: ``norm``
        changes nothing)."""
        check_output_fmt(output_fmt)
        levels = take_indices(len(self.feature_info), indices)
        last = levels[-1] if stop_early or intermediates_only else len(self.feature_info) - 1
        stages = self._stages(x, last)
        maps = [tokens_to_map(*stages[i]) for i in levels]
        return maps if intermediates_only else (tokens_to_map(*stages[-1]), maps)

    def prune_intermediate_layers(
        self, indices: Indices = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> List[int]:
        """Drop the stages after the deepest level in ``indices`` and the head (``features_only``)."""
        if not prune_head:
            raise GhostzooError("CMT keeps its head only whole: prune with prune_head=True")
        levels = take_indices(len(self.feature_info), indices)
        for s in STAGES[levels[-1] + 1 :]:
            for name in (f"patch_embed_{s}", f"blocks_{s}", f"relative_pos_{s}"):
                delattr(self, name)
        self.feature_info = self.feature_info[: levels[-1] + 1]
        self.reset_classifier(0)
        self._fc = self._bn = self._swish = self._avg_pooling = self._drop = nn.Identity()
        return levels


def _init_weights(m: nn.Module) -> None:
    """The official initialisation: truncated-normal linears, He-normal (fan-out) convolutions."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out")
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def checkpoint_filter(state_dict: Dict[str, torch.Tensor], model: CMT) -> Dict[str, torch.Tensor]:
    """Resample a checkpoint's attention biases to ``model``'s grids (checkpoints record no grid;
    a square one is assumed, as all official training was square)."""
    for i, s in enumerate(STAGES):
        key, own = f"relative_pos_{s}", getattr(model, f"relative_pos_{s}", None)
        bias = state_dict.get(key)
        if bias is None or own is None or bias.shape == own.shape:
            continue
        trained_q, trained_k = square_grid(bias.shape[1]), square_grid(bias.shape[2])
        grid = model.grid_sizes[i]
        resized = resize_rel_pos_bias(bias.unsqueeze(0), trained_q, grid, trained_k, _pooled(grid, SR_RATIOS[i]))
        state_dict[key] = resized[0]
    return state_dict


_PAPER = "https://arxiv.org/abs/2107.06263"
_README = "official cmt_pytorch/README.md (Top-1); paper Table 3 (FLOPs)"
_RELEASE = "https://github.com/ggjy/CMT.pytorch/releases/download/release-v1/{}.pth"


def _cfg(file: str, resolution: int, params: int, macs: int, top1: float) -> PretrainedCfg:
    return PretrainedCfg(
        tag="in1k",
        url=_RELEASE.format(file),
        input_size=(3, resolution, resolution),
        crop_pct=0.875,
        interpolation="bicubic",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        first_conv="stem_conv1",
        classifier="head",
        license="apache-2.0",
        paper=_PAPER,
        published=Published(params=params, macs=macs, top1=top1, source=_README),
        notes=f"Trained and evaluated at {resolution} px by the official DeiT-based train.py, whose evaluation "
        "resizes to input_size / 0.875 (bicubic) and center-crops.",
    )


def _create(
    img_size: int, embed_dims: Sequence[int], stem_chs: int, depths: Sequence[int], mlp_ratio: float, **kwargs: Any
) -> CMT:
    return CMT(embed_dims, stem_chs, depths, mlp_ratio, img_size=img_size, **kwargs)


@register_model("cmt", [_cfg("cmt_tiny", 160, 9_492_426, 600_000_000, 79.0)], checkpoint_filter=checkpoint_filter)
def cmt_ti(img_size: int = 160, **kwargs: Any) -> CMT:
    """CMT-Ti: widths 46-92-184-368, depths 2-2-10-2, stem 16, trained at 160 px."""
    return _create(img_size, (46, 92, 184, 368), 16, (2, 2, 10, 2), 3.6, **kwargs)


@register_model("cmt", [_cfg("cmt_xs", 192, 15_247_208, 1_500_000_000, 81.8)], checkpoint_filter=checkpoint_filter)
def cmt_xs(img_size: int = 192, **kwargs: Any) -> CMT:
    """CMT-XS: widths 52-104-208-416, depths 3-3-12-3, stem 16, trained at 192 px."""
    return _create(img_size, (52, 104, 208, 416), 16, (3, 3, 12, 3), 3.77, **kwargs)


@register_model("cmt", [_cfg("cmt_small", 224, 26_256_160, 4_000_000_000, 83.5)], checkpoint_filter=checkpoint_filter)
def cmt_s(img_size: int = 224, **kwargs: Any) -> CMT:
    """CMT-S: widths 64-128-256-512, depths 3-3-16-3, stem 32, trained at 224 px."""
    return _create(img_size, (64, 128, 256, 512), 32, (3, 3, 16, 3), 4.0, **kwargs)


@register_model("cmt", [_cfg("cmt_base", 256, 45_715_076, 9_300_000_000, 84.5)], checkpoint_filter=checkpoint_filter)
def cmt_b(img_size: int = 256, drop_rate: float = 0.3, **kwargs: Any) -> CMT:
    """CMT-B: widths 76-152-304-608, depths 4-4-20-4, stem 38, trained at 256 px (head dropout 0.3)."""
    return _create(img_size, (76, 152, 304, 608), 38, (4, 4, 20, 4), 4.0, drop_rate=drop_rate, **kwargs)
