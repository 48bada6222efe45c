"""AugViT: vision transformers with augmented shortcuts.

Yehui Tang, Kai Han, Chang Xu, An Xiao, Yiping Deng, Chao Xu, Yunhe Wang. "Augmented Shortcuts
for Vision Transformers." NeurIPS 2021. https://arxiv.org/abs/2106.15941

Deep ViTs suffer "feature collapse": the tokens grow alike with depth. AugViT adds learned
projections of the block input in parallel with the identity shortcut of each attention and MLP
branch, which keeps the tokens diverse. The projections are dense (``linear``) or, to stay cheap,
block-circulant (``circulant``, :class:`ghostzoo.layers.BlockCirculantLinear`); with two of them per
branch (``*2`` variants) each carries a GELU and the branch sum is scaled by 3/4. ``augvit_small``
has no augmented shortcut: it is the DeiT-S baseline of the paper. Attention and MLP are timm's;
module names equal the official ``augvit_pytorch/models/augvit.py``.

The official code asserts its training resolution; here the position embedding is resampled to the
input's patch grid (inputs must be multiples of 16), and a checkpoint trained at another size is
fitted to the model's grid when loaded (:func:`checkpoint_filter`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Attention, DropPath, Mlp, PatchEmbed, calculate_drop_path_rates, trunc_normal_
from timm.models.vision_transformer import init_weights_vit_timm

from ..layers import BlockCirculantLinear, resize_pos_embed, square_grid, tokens_to_map
from ..layers.classifier import linear_head
from ..layers.patches import Grid
from ..registry import PretrainedCfg, Published, register_model
from ._contract import Indices, TimmContract, check_output_fmt, take_indices

__all__ = ["AugViT", "AugViTBlock", "checkpoint_filter"]

# official ``mode`` -> (projection of each augmented shortcut, shortcuts per branch)
SHORTCUTS: Dict[str, Tuple[str, int]] = {
    "base": ("", 0),
    "linear": ("linear", 1),
    "circulant": ("circulant", 1),
    "linear2": ("linear", 2),
    "circulant2": ("circulant", 2),
}


class AugViTBlock(nn.Module):
    """Pre-norm ViT block whose attention and MLP branches each get ``n`` augmented shortcuts.

    ``x + branch(norm(x)) + sum_i aug_i(norm(x))``, times 3/4 when ``n == 2`` (the official scaling
    of the four-way sum). Shortcut keys: ``augs_attn``/``augs`` (and ``augs_attn2``/``augs2``).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        mode: str = "base",
        num_cir: int = 4,
    ) -> None:
        super().__init__()
        kind, count = SHORTCUTS[mode]
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

        def shortcut() -> nn.Module:
            if kind == "linear":
                proj: nn.Module = nn.Linear(dim, dim)
            else:
                proj = BlockCirculantLinear(dim, dim, num_cir=num_cir)
            return nn.Sequential(proj, nn.GELU()) if count == 2 else proj

        self.attn_shortcuts = ["augs_attn", "augs_attn2"][:count]
        self.mlp_shortcuts = ["augs", "augs2"][:count]
        for name in self.attn_shortcuts + self.mlp_shortcuts:
            self.add_module(name, shortcut())
        self.scale = 0.75 if count == 2 else 1.0

    def _residual(self, x: torch.Tensor, norm: nn.Module, branch: nn.Module, shortcuts: List[str]) -> torch.Tensor:
        h = norm(x)
        out = x + self.drop_path(branch(h))
        for name in shortcuts:
            out = out + getattr(self, name)(h)
        return out * self.scale if self.scale != 1.0 else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._residual(x, self.norm1, self.attn, self.attn_shortcuts)
        return self._residual(x, self.norm2, self.mlp, self.mlp_shortcuts)


class AugViT(TimmContract, nn.Module):
    """ViT (class token, learned position embedding) built from :class:`AugViTBlock`."""

    no_weight_decay_names = frozenset({"cls_token", "pos_embed"})

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        mode: str = "base",
        num_cir: int = 4,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.num_features = self.head_hidden_size = embed_dim
        self.patch_embed = PatchEmbed(
            img_size, patch_size, in_chans, embed_dim, output_fmt="NCHW", strict_img_size=False
        )
        self.grid_size: Grid = self.patch_embed.grid_size  # of pos_embed
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        dpr = calculate_drop_path_rates(drop_path_rate, depth)
        self.blocks = nn.ModuleList(
            [AugViTBlock(embed_dim, num_heads, mlp_ratio, qkv_bias, dpr[i], mode, num_cir) for i in range(depth)]
        )
        self.feature_info = [dict(num_chs=embed_dim, reduction=patch_size, module=f"blocks.{i}") for i in range(depth)]
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = linear_head(embed_dim, num_classes)

        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        self.apply(init_weights_vit_timm)  # the official init: truncated-normal linears, zero biases

    def _reset_head(self, num_classes: int) -> None:
        """A fresh linear head for ``num_classes`` (0 removes it: forward returns the class token)."""
        self.num_classes = num_classes
        self.head = linear_head(self.num_features, num_classes, device=self.cls_token.device)

    def _embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, Grid]:
        x = self.patch_embed(x)
        grid = (x.shape[2], x.shape[3])
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x.flatten(2).transpose(1, 2)], dim=1)
        return x + resize_pos_embed(self.pos_embed, self.grid_size, grid, num_prefix_tokens=1), grid

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised tokens ``[B, 1 + N, C]``, class token first."""
        x, _ = self._embed(x)
        for blk in self.blocks:
            x = self.run_block(blk, x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x[:, 0]
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
        """Patch tokens after the blocks in ``indices`` as ``[B, C, H/16, W/16]`` maps (through the
        final norm with ``norm``) and, unless ``intermediates_only``, ``forward_features``' tokens."""
        check_output_fmt(output_fmt)
        levels = take_indices(len(self.blocks), indices)
        last = levels[-1] if stop_early or intermediates_only else len(self.blocks) - 1
        x, grid = self._embed(x)
        maps = []
        for i, blk in enumerate(self.blocks[: last + 1]):
            x = self.run_block(blk, x)
            if i in levels:
                maps.append(tokens_to_map((self.norm(x) if norm else x)[:, 1:], grid))
        return maps if intermediates_only else (self.norm(x), maps)

    def prune_intermediate_layers(
        self, indices: Indices = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> List[int]:
        """Drop the blocks after the deepest level in ``indices`` (and the final norm, the head)."""
        levels = take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[: levels[-1] + 1]
        return self._prune_norm_and_head(levels, prune_norm, prune_head)


def checkpoint_filter(state_dict: Dict[str, torch.Tensor], model: AugViT) -> Dict[str, torch.Tensor]:
    """Resample a position embedding trained on another (square) grid to ``model``'s grid."""
    pos = state_dict.get("pos_embed")
    if pos is not None and pos.shape != model.pos_embed.shape:
        state_dict["pos_embed"] = resize_pos_embed(
            pos, square_grid(pos.shape[1] - 1), model.grid_size, num_prefix_tokens=1
        )
    return state_dict


_PAPER = "https://arxiv.org/abs/2106.15941"
_TABLE = "AugViT paper (NeurIPS 2021), Table 2; params: the official code"


def _cfg(
    params: int, macs: int | None = None, top1: float | None = None, source: str = "official code", notes: str = ""
) -> PretrainedCfg:
    """No weights were released; the evaluation setting is the official default_cfg."""
    return PretrainedCfg(
        tag="untrained",
        input_size=(3, 224, 224),
        crop_pct=0.9,
        interpolation="bicubic",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        first_conv="patch_embed.proj",
        classifier="head",
        paper=_PAPER,
        published=Published(params=params, macs=macs, top1=top1, source=source),
        notes=notes,
    )


def _small(mode: str, **kwargs: Any) -> AugViT:
    return AugViT(patch_size=16, embed_dim=384, depth=12, num_heads=6, mode=mode, **kwargs)


def _register(params: int, **cfg_kwargs: Any) -> Callable[[Callable[..., AugViT]], Callable[..., AugViT]]:
    return register_model("augvit", [_cfg(params, **cfg_kwargs)], checkpoint_filter=checkpoint_filter)


@_register(22_050_664, macs=4_600_000_000, top1=79.8, source=_TABLE + " (the ViT(DeiT)-S row)")
def augvit_small(**kwargs: Any) -> AugViT:
    """ViT-S (DeiT-S) without augmented shortcuts: the baseline of the paper."""
    return _small("base", **kwargs)


@_register(25_598_824, notes="Ablation model: one dense shortcut per branch; no published accuracy.")
def augvit_small_linear(**kwargs: Any) -> AugViT:
    """ViT-S with one dense linear augmented shortcut per branch."""
    return _small("linear", **kwargs)


@_register(
    22_142_824,
    macs=4_700_000_000,
    top1=80.9,
    source=_TABLE + " (Aug-ViT-S)",
    notes="The paper counts the block-circulant projections at their FFT cost; this "
    "implementation (like the official one) multiplies by the dense weight, ~6.0 GMACs.",
)
def augvit_small_circulant2(**kwargs: Any) -> AugViT:
    """Aug-ViT-S: two block-circulant augmented shortcuts (with GELU) per branch."""
    return _small("circulant2", **kwargs)


@_register(29_146_984, notes="Ablation model: two dense shortcuts per branch; no published accuracy.")
def augvit_small_linear2(**kwargs: Any) -> AugViT:
    """ViT-S with two dense linear augmented shortcuts (with GELU) per branch."""
    return _small("linear2", **kwargs)


@_register(
    86_751_976,
    macs=17_700_000_000,
    top1=82.4,
    source=_TABLE + " (Aug-ViT-B)",
    notes="The paper counts the block-circulant projections at their FFT cost; this "
    "implementation (like the official one) multiplies by the dense weight.",
)
def augvit_base_circulant2(**kwargs: Any) -> AugViT:
    """Aug-ViT-B: ViT-B with two block-circulant augmented shortcuts (with GELU) per branch."""
    return AugViT(patch_size=16, embed_dim=768, depth=12, num_heads=12, mode="circulant2", **kwargs)
