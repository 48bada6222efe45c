"""PyramidTNT.

Kai Han, Jianyuan Guo, Yehui Tang, Yunhe Wang. "PyramidTNT: Improved Transformer-in-Transformer
Baselines with Pyramid Architecture." arXiv 2022. https://arxiv.org/abs/2201.00978

TNT (:mod:`ghostzoo.models.tnt`) in four stages at strides 8, 16, 32 and 64, like PVT: a
convolutional stem makes both the words (4x4 per patch) and the sentences, and between stages the
words of 2x2 neighbouring patches and the sentences are merged by strided convolutions. Outer
attention in the early stages attends to average-pooled keys (spatial reduction) and adds a
learned bias ``relative_pos`` over (query, key) positions; only the first block or two of each
stage keep an inner transformer. Module names equal the official ``tnt_pytorch/pyramid_tnt.py``.

The official code only runs at its training resolution. Here the position embedding and the
attention biases are resampled to the input's token grids at forward time, and to the model's
grids when a checkpoint trained at another size is loaded (:func:`checkpoint_filter`); inputs that
are not a multiple of 8 are padded where the official code would fail.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, calculate_drop_path_rates, trunc_normal_
from timm.models.vision_transformer import init_weights_vit_timm

from ..layers import (
    dot_product_attention,
    patchify,
    resize_pos_embed,
    resize_rel_pos_bias,
    square_grid,
    tokens_to_map,
    unpatchify,
)
from ..layers.classifier import linear_head
from ..layers.patches import Grid
from ..registry import PretrainedCfg, Published, register_model
from ._contract import Indices, TimmContract, check_output_fmt, take_indices

__all__ = ["PyramidTNT", "checkpoint_filter"]

WORDS = 4  # words per patch side, at every stage
SR_RATIOS = (4, 2, 1, 1)  # key pooling of the outer attention per stage


def _half(grid: Grid) -> Grid:
    return math.ceil(grid[0] / 2), math.ceil(grid[1] / 2)


def _pooled(grid: Grid, sr_ratio: int) -> Grid:
    return grid[0] // sr_ratio, grid[1] // sr_ratio


def _words(x: torch.Tensor) -> torch.Tensor:
    """Word map ``[B, C, 4 gh, 4 gw]`` -> words ``[B * gh * gw, 16, C]``, row-major in each patch."""
    return patchify(x, WORDS)[0].flatten(2).transpose(1, 2)


def _word_map(words: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Inverse of :func:`_words`: the words laid out where they are in the image."""
    x = words.transpose(1, 2).reshape(words.shape[0], -1, WORDS, WORDS)
    return unpatchify(x, grid)


def _conv_bn_relu(in_chs: int, out_chs: int, stride: int, inplace: bool = True) -> List[nn.Module]:
    return [nn.Conv2d(in_chs, out_chs, 3, stride, 1), nn.BatchNorm2d(out_chs), nn.ReLU(inplace=inplace)]


class Stem(nn.Module):
    """Overlapping convolutional stem: a shared stride-2 conv, then words at stride 2 (one word per
    2x2 pixels, 4x4 words per 8x8 patch) and sentences at stride 8."""

    def __init__(self, in_chans: int = 3, outer_dim: int = 80, inner_dim: int = 5) -> None:
        super().__init__()
        self.common_conv = nn.Sequential(*_conv_bn_relu(in_chans, inner_dim * 2, 2))
        self.inner_convs = nn.Sequential(*_conv_bn_relu(inner_dim * 2, inner_dim, 1, inplace=False))
        self.outer_convs = nn.Sequential(
            *_conv_bn_relu(inner_dim * 2, inner_dim * 4, 2),
            *_conv_bn_relu(inner_dim * 4, inner_dim * 8, 2),
            *_conv_bn_relu(inner_dim * 8, outer_dim, 1, inplace=False),
        )

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, Grid]:
        x = self.common_conv(x)
        outer = self.outer_convs(x)
        grid = (outer.shape[2], outer.shape[3])
        inner = self.inner_convs(x)
        # an input that is not a multiple of 8 leaves the word map short of 4 words per patch
        inner = F.pad(inner, (0, WORDS * grid[1] - inner.shape[3], 0, WORDS * grid[0] - inner.shape[2]))
        return _words(inner), outer.flatten(2).transpose(1, 2), grid


class SRAttention(nn.Module):
    """Multi-head self-attention whose keys/values may come from ``sr_ratio``-pooled tokens, with an
    optional additive bias on the attention logits. Keys (``q``, ``kv``, ``linear``, ``norm``)
    follow the official code."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False, sr_ratio: int = 1) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.pool = nn.AvgPool2d(sr_ratio, stride=sr_ratio)
            self.linear = nn.Linear(dim, dim)
            self.norm = nn.LayerNorm(dim)

    def forward(
        self, x: torch.Tensor, grid: Optional[Grid] = None, bias: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        B, N, C = x.shape
        q = self.q(x).reshape(B, N, self.num_heads, -1).transpose(1, 2)
        if self.sr_ratio > 1:
            x = self.norm(self.linear(self.pool(tokens_to_map(x, grid)).flatten(2).transpose(1, 2)))
        kv = self.kv(x).reshape(B, -1, 2, self.num_heads, C // self.num_heads)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(dot_product_attention(q, k, v, bias).transpose(1, 2).reshape(B, N, C))


class PyramidTNTBlock(nn.Module):
    """Optional inner transformer over words (``inner_dim > 0``), then the outer transformer.

    Unlike TNT, the inner LayerNorms normalise all words of a patch together, and there is no
    class token: every sentence receives its words.
    """

    def __init__(
        self,
        outer_dim: int,
        inner_dim: int,
        outer_heads: int,
        inner_heads: int,
        num_words: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        drop_path: float = 0.0,
        sr_ratio: int = 1,
    ) -> None:
        super().__init__()
        self.has_inner = inner_dim > 0
        if self.has_inner:
            self.inner_norm1 = nn.LayerNorm(num_words * inner_dim)
            self.inner_attn = SRAttention(inner_dim, inner_heads, qkv_bias)
            self.inner_norm2 = nn.LayerNorm(num_words * inner_dim)
            self.inner_mlp = Mlp(inner_dim, int(inner_dim * mlp_ratio))
            self.proj_norm1 = nn.LayerNorm(num_words * inner_dim)
            self.proj = nn.Linear(num_words * inner_dim, outer_dim, bias=False)
            self.proj_norm2 = nn.LayerNorm(outer_dim)
        self.outer_norm1 = nn.LayerNorm(outer_dim)
        self.outer_attn = SRAttention(outer_dim, outer_heads, qkv_bias, sr_ratio)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.outer_norm2 = nn.LayerNorm(outer_dim)
        self.outer_mlp = Mlp(outer_dim, int(outer_dim * mlp_ratio))

    def forward(
        self, inner: torch.Tensor, outer: torch.Tensor, grid: Grid, bias: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        B, N, _ = outer.shape
        if self.has_inner:
            # the inner norms see all words of a patch at once: [B * N, M, c] -> [B * N, M * c]
            inner = inner + self.drop_path(self.inner_attn(self.inner_norm1(inner.flatten(1)).view_as(inner)))
            inner = inner + self.drop_path(self.inner_mlp(self.inner_norm2(inner.flatten(1)).view_as(inner)))
            outer = outer + self.proj_norm2(self.proj(self.proj_norm1(inner.reshape(B, N, -1))))
        outer = outer + self.drop_path(self.outer_attn(self.outer_norm1(outer), grid, bias))
        outer = outer + self.drop_path(self.outer_mlp(self.outer_norm2(outer)))
        return inner, outer


class Stage(nn.Module):
    """Blocks sharing one attention bias ``relative_pos [1, heads, N, N / sr^2]``, learned for the
    stage's token grid at the training resolution and resampled for any other."""

    def __init__(
        self,
        depth: int,
        outer_dim: int,
        inner_dim: int,
        outer_heads: int,
        inner_heads: int,
        grid: Grid,
        num_words: int,
        mlp_ratio: float,
        qkv_bias: bool,
        drop_path: Sequence[float],
        sr_ratio: int,
    ) -> None:
        super().__init__()
        self.grid_size, self.sr_ratio = grid, sr_ratio
        # the first block has words; deep stages (more than 6 blocks) keep them one block longer
        with_words = 2 if depth > 6 else 1
        self.blocks = nn.ModuleList(
            [
                PyramidTNTBlock(
                    outer_dim,
                    inner_dim if j < with_words else -1,
                    outer_heads,
                    inner_heads,
                    num_words,
                    mlp_ratio,
                    qkv_bias,
                    drop_path[j],
                    sr_ratio,
                )
                for j in range(depth)
            ]
        )
        keys = _pooled(grid, sr_ratio)
        self.relative_pos = nn.Parameter(torch.randn(1, outer_heads, grid[0] * grid[1], keys[0] * keys[1]))

    def forward(self, inner: torch.Tensor, outer: torch.Tensor, grid: Grid) -> Tuple[torch.Tensor, torch.Tensor]:
        bias = resize_rel_pos_bias(
            self.relative_pos,
            self.grid_size,
            grid,
            _pooled(self.grid_size, self.sr_ratio),
            _pooled(grid, self.sr_ratio),
        )
        for blk in self.blocks:
            inner, outer = blk(inner, outer, grid, bias)
        return inner, outer


class WordAggregation(nn.Module):
    """Merge the words of 2x2 neighbouring patches (an 8x8 word map) into 4x4 words with a stride-2
    convolution applied to each new patch on its own. An odd patch grid is zero-padded."""

    def __init__(self, dim_in: int, dim_out: int, stride: int = 2) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim_in)
        self.conv = nn.Sequential(nn.Conv2d(dim_in, dim_out, 2 * stride - 1, stride, stride - 1))

    def forward(self, words: torch.Tensor, grid: Grid) -> torch.Tensor:
        x = _word_map(self.norm(words), grid)
        new_grid = _half(grid)
        x = F.pad(x, (0, 2 * WORDS * new_grid[1] - x.shape[3], 0, 2 * WORDS * new_grid[0] - x.shape[2]))
        patches, _ = patchify(x, 2 * WORDS)
        return self.conv(patches).flatten(2).transpose(1, 2)


class SentenceAggregation(nn.Module):
    """Halve the sentence grid (rounding up) with a strided convolution over the token map."""

    def __init__(self, dim_in: int, dim_out: int, stride: int = 2) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim_in)
        self.conv = nn.Sequential(nn.Conv2d(dim_in, dim_out, 2 * stride - 1, stride, stride - 1))

    def forward(self, tokens: torch.Tensor, grid: Grid) -> Tuple[torch.Tensor, Grid]:
        x = self.conv(tokens_to_map(self.norm(tokens), grid))
        return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])


class PyramidTNT(TimmContract, nn.Module):
    """Four-stage TNT classifying from the mean of the last stage's sentences."""

    no_weight_decay_names = frozenset({"inner_pos", "outer_pos"})

    def __init__(
        self,
        depths: Sequence[int],
        outer_dim: int,
        inner_dim: int,
        outer_heads: int,
        inner_heads: int,
        img_size: int = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        # widths double from stage to stage, until the last, which keeps the third stage's
        scale = (1, 2, 4, 4)
        outer_dims, inner_dims = [outer_dim * s for s in scale], [inner_dim * s for s in scale]
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.num_features = self.head_hidden_size = outer_dims[-1]
        self.grid_size = (img_size // 8, img_size // 8)  # of outer_pos
        num_words = WORDS * WORDS

        self.patch_embed = Stem(in_chans, outer_dims[0], inner_dims[0])
        self.outer_pos = nn.Parameter(torch.zeros(1, self.grid_size[0] * self.grid_size[1], outer_dims[0]))
        self.inner_pos = nn.Parameter(torch.zeros(1, num_words, inner_dims[0]))

        dpr = calculate_drop_path_rates(drop_path_rate, list(depths), stagewise=False)
        self.word_merges = nn.ModuleList()
        self.sentence_merges = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.feature_info = []
        grid, first = self.grid_size, 0
        for i, depth in enumerate(depths):
            if i > 0:
                self.word_merges.append(WordAggregation(inner_dims[i - 1], inner_dims[i]))
                self.sentence_merges.append(SentenceAggregation(outer_dims[i - 1], outer_dims[i]))
                grid = _half(grid)
            self.stages.append(
                Stage(
                    depth,
                    outer_dims[i],
                    inner_dims[i],
                    outer_heads * scale[i],
                    inner_heads * scale[i],
                    grid,
                    num_words,
                    mlp_ratio,
                    qkv_bias,
                    dpr[first : first + depth],
                    SR_RATIOS[i],
                )
            )
            self.feature_info.append(dict(num_chs=outer_dims[i], reduction=8 * 2**i, module=f"stages.{i}"))
            first += depth
        self.norm = nn.LayerNorm(outer_dims[-1])
        self.head = linear_head(outer_dims[-1], num_classes)

        trunc_normal_(self.outer_pos, std=0.02)
        trunc_normal_(self.inner_pos, std=0.02)
        self.apply(_init_weights)

    def _reset_head(self, num_classes: int) -> None:
        """A fresh linear head for ``num_classes`` (0 removes it: forward returns pooled features)."""
        self.num_classes = num_classes
        self.head = linear_head(self.num_features, num_classes, device=self.outer_pos.device)

    def _stages(self, x: torch.Tensor, last: int) -> List[Tuple[torch.Tensor, Grid]]:
        """Sentences ``[B, N, C]`` and their grid after each stage up to ``last``."""
        inner, outer, grid = self.patch_embed(x)
        inner = inner + self.inner_pos
        outer = outer + resize_pos_embed(self.outer_pos, self.grid_size, grid)
        out = []
        for i, stage in enumerate(self.stages[: last + 1]):
            if i > 0:
                inner = self.word_merges[i - 1](inner, grid)
                outer, grid = self.sentence_merges[i - 1](outer, grid)
            inner, outer = self.run_block(stage, inner, outer, grid)
            out.append((outer, grid))
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised sentences of the last stage, ``[B, N, C]``."""
        return self.norm(self._stages(x, len(self.stages) - 1)[-1][0])

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=1)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
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
        """Sentences after the stages in ``indices`` as ``[B, C, H, W]`` maps at strides 8..64 and,
        unless ``intermediates_only``, ``forward_features``' tokens. ``norm``: the final norm is the
        last stage's, applied to that stage's map only."""
        check_output_fmt(output_fmt)
        levels = take_indices(len(self.stages), indices)
        last = levels[-1] if stop_early or intermediates_only else len(self.stages) - 1
        stages = self._stages(x, last)
        maps = []
        for i in levels:
            outer, grid = stages[i]
            maps.append(tokens_to_map(self.norm(outer) if norm and i == len(self.stages) - 1 else outer, grid))
        return maps if intermediates_only else (self.norm(stages[-1][0]), maps)

    def prune_intermediate_layers(
        self, indices: Indices = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> List[int]:
        """Drop the stages after the deepest level in ``indices`` (and the final norm, the head)."""
        levels = take_indices(len(self.stages), indices)
        last = levels[-1]
        self.stages = self.stages[: last + 1]
        self.word_merges, self.sentence_merges = self.word_merges[:last], self.sentence_merges[:last]
        return self._prune_norm_and_head(levels, prune_norm, prune_head)


def _init_weights(m: nn.Module) -> None:
    """The official initialisation: He-normal (fan-out) convolutions, truncated-normal linears."""
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    else:
        init_weights_vit_timm(m)


def checkpoint_filter(state_dict: Dict[str, torch.Tensor], model: PyramidTNT) -> Dict[str, torch.Tensor]:
    """Resample a checkpoint's position embedding and attention biases to ``model``'s grids.

    Checkpoints do not record their grid; a square one is assumed (all official training was square).
    """
    pos = state_dict.get("outer_pos")
    if pos is not None and pos.shape != model.outer_pos.shape:
        state_dict["outer_pos"] = resize_pos_embed(pos, square_grid(pos.shape[1]), model.grid_size)
    for i, stage in enumerate(model.stages):
        key = f"stages.{i}.relative_pos"
        bias = state_dict.get(key)
        if bias is not None and bias.shape != stage.relative_pos.shape:
            state_dict[key] = resize_rel_pos_bias(
                bias,
                square_grid(bias.shape[2]),
                stage.grid_size,
                square_grid(bias.shape[3]),
                _pooled(stage.grid_size, stage.sr_ratio),
            )
    return state_dict


_PAPER = "https://arxiv.org/abs/2201.00978"
_README = "official tnt_pytorch/readme.md (Params, FLOPs, Top-1)"


def _cfg(resolution: int, params: int, macs: int, top1: float, baidu: str) -> PretrainedCfg:
    return PretrainedCfg(
        tag="in1k",
        input_size=(3, resolution, resolution),
        crop_pct=0.9,
        interpolation="bicubic",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        first_conv="patch_embed.common_conv.0",
        classifier="head",
        license="apache-2.0",
        paper=_PAPER,
        published=Published(params=params, macs=macs, top1=top1, source=_README),
        notes=f"The official weights are only on Baidu Netdisk ({baidu}); download them there and "
        f"pass the file with checkpoint_path / --checkpoint.",
    )


def _create(
    img_size: int,
    depths: Sequence[int],
    outer_dim: int,
    inner_dim: int,
    outer_heads: int,
    inner_heads: int,
    **kwargs: Any,
) -> PyramidTNT:
    return PyramidTNT(depths, outer_dim, inner_dim, outer_heads, inner_heads, img_size=img_size, **kwargs)


@register_model(
    "pyramid_tnt",
    [_cfg(192, 10_578_529, 600_000_000, 75.2, "https://pan.baidu.com/s/1xm3DSGcAJbvFQm4jmDAlnQ, password 0r5t")],
    checkpoint_filter=checkpoint_filter,
)
def ptnt_ti_patch16_192(img_size: int = 192, **kwargs: Any) -> PyramidTNT:
    """PyramidTNT-Ti: sentences 80-d / 2 heads, words 5-d / 1 head at stage 1; depths 2-6-3-2."""
    return _create(img_size, (2, 6, 3, 2), 80, 5, 2, 1, **kwargs)


@register_model(
    "pyramid_tnt",
    [_cfg(256, 31_953_200, 3_300_000_000, 82.0, "https://pan.baidu.com/s/1xha8x3DTlPq9-KeC6EPPow, password v5w5")],
    checkpoint_filter=checkpoint_filter,
)
def ptnt_s_patch16_256(img_size: int = 256, **kwargs: Any) -> PyramidTNT:
    """PyramidTNT-S: sentences 128-d / 4 heads, words 8-d / 2 heads at stage 1; depths 2-8-4-2."""
    return _create(img_size, (2, 8, 4, 2), 128, 8, 4, 2, **kwargs)


@register_model(
    "pyramid_tnt",
    [_cfg(256, 84_943_572, 8_200_000_000, 83.5, "https://pan.baidu.com/s/1B9zkWkrUAETuiyr08ClY-w, password jqm3")],
    checkpoint_filter=checkpoint_filter,
)
def ptnt_m_patch16_256(img_size: int = 256, **kwargs: Any) -> PyramidTNT:
    """PyramidTNT-M: sentences 192-d / 4 heads, words 12-d / 2 heads at stage 1; depths 2-8-6-2."""
    return _create(img_size, (2, 8, 6, 2), 192, 12, 4, 2, **kwargs)


@register_model(
    "pyramid_tnt",
    [_cfg(256, 156_990_072, 16_000_000_000, 84.1, "https://pan.baidu.com/s/1tT0mxRrZQx6facYsdPBt0g, password ns4t")],
    checkpoint_filter=checkpoint_filter,
)
def ptnt_b_patch16_256(img_size: int = 256, **kwargs: Any) -> PyramidTNT:
    """PyramidTNT-B: sentences 256-d / 4 heads, words 16-d / 2 heads at stage 1; depths 2-10-6-2."""
    return _create(img_size, (2, 10, 6, 2), 256, 16, 4, 2, **kwargs)
