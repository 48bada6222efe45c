"""TNT: Transformer in Transformer.

Kai Han, An Xiao, Enhua Wu, Jianyuan Guo, Chunjing Xu, Yunhe Wang. "Transformer in Transformer."
NeurIPS 2021. https://arxiv.org/abs/2103.00112

Each 16x16 patch ("sentence") is itself split into 4x4 "words". An inner transformer attends
between the words of each patch; its output is projected into the patch embedding, on which an
outer (ViT-style) transformer attends between patches. Module names equal the official
``tnt_pytorch/tnt.py``, so official checkpoints load as they are; timm renamed them, and
:func:`checkpoint_filter` maps timm's files back.

Unlike the official code, which asserts its training resolution, the model runs at any input size
(a multiple of the 16-pixel patch; a remainder is cropped): the outer position embedding is
resampled to the input's patch grid at forward time, and to the model's grid when a checkpoint
trained at another size is loaded (:mod:`ghostzoo.layers.pos_embed`).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, calculate_drop_path_rates, trunc_normal_
from timm.models.vision_transformer import init_weights_vit_timm

from ..layers import dot_product_attention, patchify, resize_pos_embed, square_grid, tokens_to_map
from ..layers.classifier import linear_head
from ..layers.patches import Grid
from ..registry import PretrainedCfg, Published, register_model
from ._contract import Indices, TimmContract, check_output_fmt, take_indices

__all__ = ["TNT", "TNTBlock", "checkpoint_filter"]


class QKVAttention(nn.Module):
    """Multi-head self-attention with queries and keys from one projection (``qk``), values from
    another (``v``): the layout of the official TNT weights."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qk = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k = self.qk(x).reshape(B, N, 2, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        v = self.v(x).reshape(B, N, self.num_heads, -1).transpose(1, 2)
        return self.proj(dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C))


class TNTBlock(nn.Module):
    """Inner transformer over words, words projected into their patch, outer transformer over patches.

    The class token (first outer token) has no words and receives no projection.
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
    ) -> None:
        super().__init__()
        self.inner_norm1 = nn.LayerNorm(inner_dim)
        self.inner_attn = QKVAttention(inner_dim, inner_heads, qkv_bias)
        self.inner_norm2 = nn.LayerNorm(inner_dim)
        self.inner_mlp = Mlp(inner_dim, int(inner_dim * mlp_ratio))
        self.proj_norm1 = nn.LayerNorm(num_words * inner_dim)
        self.proj = nn.Linear(num_words * inner_dim, outer_dim, bias=False)
        self.proj_norm2 = nn.LayerNorm(outer_dim)
        self.outer_norm1 = nn.LayerNorm(outer_dim)
        self.outer_attn = QKVAttention(outer_dim, outer_heads, qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.outer_norm2 = nn.LayerNorm(outer_dim)
        self.outer_mlp = Mlp(outer_dim, int(outer_dim * mlp_ratio))

    def forward(self, inner: torch.Tensor, outer: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        inner = inner + self.drop_path(self.inner_attn(self.inner_norm1(inner)))
        inner = inner + self.drop_path(self.inner_mlp(self.inner_norm2(inner)))
        B, N, _ = outer.shape
        words = self.proj_norm2(self.proj(self.proj_norm1(inner.reshape(B, N - 1, -1))))
        outer = torch.cat([outer[:, :1], outer[:, 1:] + words], dim=1)
        outer = outer + self.drop_path(self.outer_attn(self.outer_norm1(outer)))
        outer = outer + self.drop_path(self.outer_mlp(self.outer_norm2(outer)))
        return inner, outer


class PatchEmbed(nn.Module):
    """Image -> words: cut ``patch_size`` patches, then embed each patch separately with a 7x7
    convolution of stride ``inner_stride`` (zero-padded at the patch border, as in the official
    code, which unfolds the patches before the convolution)."""

    def __init__(self, patch_size: int = 16, in_chans: int = 3, inner_dim: int = 24, inner_stride: int = 4) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.num_words = math.ceil(patch_size / inner_stride) ** 2
        self.proj = nn.Conv2d(in_chans, inner_dim, kernel_size=7, stride=inner_stride, padding=3)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Grid]:
        """``[B, C, H, W]`` -> words ``[B * N, num_words, inner_dim]`` and the patch grid."""
        p = self.patch_size
        patches, grid = patchify(x[:, :, : x.shape[2] // p * p, : x.shape[3] // p * p], p)
        return self.proj(patches).flatten(2).transpose(1, 2), grid


class TNT(TimmContract, nn.Module):
    """Transformer in Transformer, classifying from the class token.

    ``outer_tokens`` is a frozen, unused parameter of the official model; it is kept because the
    official checkpoints hold it and the published parameter counts include it.
    """

    no_weight_decay_names = frozenset({"cls_token", "inner_pos", "outer_pos"})

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        outer_dim: int = 768,
        inner_dim: int = 48,
        depth: int = 12,
        outer_heads: int = 12,
        inner_heads: int = 4,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        inner_stride: int = 4,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.num_features = self.head_hidden_size = outer_dim
        self.grid_size = (img_size // patch_size, img_size // patch_size)  # of outer_pos
        num_patches = self.grid_size[0] * self.grid_size[1]

        self.patch_embed = PatchEmbed(patch_size, in_chans, inner_dim, inner_stride)
        num_words = self.patch_embed.num_words
        self.proj_norm1 = nn.LayerNorm(num_words * inner_dim)
        self.proj = nn.Linear(num_words * inner_dim, outer_dim)
        self.proj_norm2 = nn.LayerNorm(outer_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, outer_dim))
        self.outer_tokens = nn.Parameter(torch.zeros(1, num_patches, outer_dim), requires_grad=False)
        self.outer_pos = nn.Parameter(torch.zeros(1, num_patches + 1, outer_dim))
        self.inner_pos = nn.Parameter(torch.zeros(1, num_words, inner_dim))

        dpr = calculate_drop_path_rates(drop_path_rate, depth)
        self.blocks = nn.ModuleList(
            [
                TNTBlock(outer_dim, inner_dim, outer_heads, inner_heads, num_words, mlp_ratio, qkv_bias, dpr[i])
                for i in range(depth)
            ]
        )
        self.feature_info = [dict(num_chs=outer_dim, reduction=patch_size, module=f"blocks.{i}") for i in range(depth)]
        self.norm = nn.LayerNorm(outer_dim)
        self.head = linear_head(outer_dim, num_classes)

        for p in (self.cls_token, self.outer_pos, self.inner_pos):
            trunc_normal_(p, std=0.02)
        self.apply(init_weights_vit_timm)  # the official init: truncated-normal linears, zero biases

    def _reset_head(self, num_classes: int) -> None:
        """A fresh linear head for ``num_classes`` (0 removes it: forward returns the class token)."""
        self.num_classes = num_classes
        self.head = linear_head(self.num_features, num_classes, device=self.cls_token.device)

    def _embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, Grid]:
        B = x.shape[0]
        inner, grid = self.patch_embed(x)
        inner = inner + self.inner_pos
        outer = self.proj_norm2(self.proj(self.proj_norm1(inner.reshape(B, grid[0] * grid[1], -1))))
        outer = torch.cat([self.cls_token.expand(B, -1, -1), outer], dim=1)
        outer = outer + resize_pos_embed(self.outer_pos, self.grid_size, grid, num_prefix_tokens=1)
        return inner, outer, grid

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised outer tokens ``[B, 1 + N, C]``, class token first."""
        inner, outer, _ = self._embed(x)
        for blk in self.blocks:
            inner, outer = self.run_block(blk, inner, outer)
        return self.norm(outer)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Indices = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Patch tokens after the blocks in ``indices`` as ``[B, C, H/16, W/16]`` maps (through the
        final norm with ``norm``) and, unless ``intermediates_only``, ``forward_features``' tokens."""
        check_output_fmt(output_fmt)
        levels = take_indices(len(self.blocks), indices)
        last = levels[-1] if stop_early or intermediates_only else len(self.blocks) - 1
        inner, outer, grid = self._embed(x)
        maps = []
        for i, blk in enumerate(self.blocks[: last + 1]):
            inner, outer = self.run_block(blk, inner, outer)
            if i in levels:
                maps.append(tokens_to_map((self.norm(outer) if norm else outer)[:, 1:], grid))
        return maps if intermediates_only else (self.norm(outer), maps)

    def prune_intermediate_layers(
        self, indices: Indices = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> List[int]:
        """Drop the blocks after the deepest level in ``indices`` (and the final norm, the head)."""
        levels = take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[: levels[-1] + 1]
        return self._prune_norm_and_head(levels, prune_norm, prune_head)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x[:, 0]
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# timm's tnt.py renamed every module of the official model; one path component each.
_TIMM_NAMES = {
    "pixel_embed": "patch_embed",
    "patch_pos": "outer_pos",
    "pixel_pos": "inner_pos",
    "norm1_proj": "proj_norm1",
    "norm2_proj": "proj_norm2",
    "norm_in": "inner_norm1",
    "attn_in": "inner_attn",
    "norm_mlp_in": "inner_norm2",
    "mlp_in": "inner_mlp",
    "norm_out": "outer_norm1",
    "attn_out": "outer_attn",
    "norm_mlp": "outer_norm2",
    "mlp": "outer_mlp",
}


def checkpoint_filter(state_dict: Dict[str, torch.Tensor], model: TNT) -> Dict[str, torch.Tensor]:
    """Official or timm TNT weights, fitted to ``model``.

    timm's keys are renamed back to the official ones, its ``pixel_pos [1, C, 4, 4]`` becomes
    ``inner_pos [1, 16, C]``, and the unused ``outer_tokens`` it dropped is restored as zeros (the
    official value, never trained). A position embedding trained on another grid (a square one:
    checkpoints do not record the grid) is resampled to the model's.
    """
    if "patch_pos" in state_dict:
        state_dict = {".".join(_TIMM_NAMES.get(p, p) for p in k.split(".")): v for k, v in state_dict.items()}
        pos = state_dict["inner_pos"]
        state_dict["inner_pos"] = pos.flatten(2).transpose(1, 2)
    pos = state_dict.get("outer_pos")
    if pos is not None and pos.shape != model.outer_pos.shape:
        state_dict["outer_pos"] = resize_pos_embed(
            pos, square_grid(pos.shape[1] - 1), model.grid_size, num_prefix_tokens=1
        )
    tokens = state_dict.get("outer_tokens")
    if tokens is None or tokens.shape != model.outer_tokens.shape:
        state_dict["outer_tokens"] = torch.zeros_like(model.outer_tokens)
    return state_dict


_PAPER = "https://arxiv.org/abs/2103.00112"
_README = "official tnt_pytorch/readme.md (Params, FLOPs, Top-1, Top-5)"
_RELEASE = "https://github.com/huawei-noah/Efficient-AI-Backbones/releases/download/tnt"


def _cfg(**kwargs: Any) -> PretrainedCfg:
    return PretrainedCfg(
        tag="in1k",
        input_size=(3, 224, 224),
        crop_pct=0.9,
        interpolation="bicubic",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        first_conv="patch_embed.proj",
        classifier="head",
        license="apache-2.0",
        paper=_PAPER,
        **kwargs,
    )


@register_model(
    "tnt",
    [
        _cfg(
            url=f"{_RELEASE}/tnt_s_81.5.pth.tar",
            hf_hub_id="timm/tnt_s_patch16_224.in1k",
            published=Published(params=23_843_848, macs=5_200_000_000, top1=81.5, top5=95.7, source=_README),
            notes="Official release; timm's hub copy has renamed keys and loads through checkpoint_filter.",
        )
    ],
    checkpoint_filter=checkpoint_filter,
)
def tnt_s_patch16_224(**kwargs: Any) -> TNT:
    """TNT-S: outer 384-d x 6 heads, inner 24-d x 4 heads, 12 blocks."""
    return TNT(patch_size=16, outer_dim=384, inner_dim=24, depth=12, outer_heads=6, inner_heads=4, **kwargs)


@register_model(
    "tnt",
    [
        _cfg(
            url=f"{_RELEASE}/tnt_b_82.9.pth.tar",
            hf_hub_id="timm/tnt_b_patch16_224.in1k",
            published=Published(params=65_554_120, macs=14_100_000_000, top1=82.9, top5=96.3, source=_README),
            notes="Official release; timm's hub copy has renamed keys and loads through checkpoint_filter.",
        )
    ],
    checkpoint_filter=checkpoint_filter,
)
def tnt_b_patch16_224(**kwargs: Any) -> TNT:
    """TNT-B: outer 640-d x 10 heads, inner 40-d x 4 heads, 12 blocks."""
    return TNT(patch_size=16, outer_dim=640, inner_dim=40, depth=12, outer_heads=10, inner_heads=4, **kwargs)
