"""Vision GNN: ViG (isotropic) and Pyramid ViG.

Kai Han, Yunhe Wang, Jianyuan Guo, Yehui Tang, Enhua Wu. "Vision GNN: An Image is Worth Graph of
Nodes." NeurIPS 2022. https://arxiv.org/abs/2206.00272

The pixels of a feature map are the nodes of a graph that links each one to its k nearest
neighbours in feature space, rebuilt at every block. A Grapher (1x1 conv, max-relative graph
convolution from ``layers.DynamicGraphConv2d``, 1x1 conv) exchanges information along the graph and
an FFN transforms every node. ViG keeps one stride-16 graph; Pyramid ViG has four stages (stride 4
to 32), takes the candidate neighbours from an average-pooled map on the early stages and adds a
fixed relative-position term to the distances.

Module names equal the official ``vig_pytorch`` code (``stem.convs``, ``pos_embed``,
``backbone.i.{0,1}``, ``graph_conv.gconv.nn``, ``relative_pos``, ``prediction``), so the released
checkpoints load without a remap. Beyond the official code, any input size from 64 works: the
position embedding and the relative-position table are resized (bicubic, the latter in 2-D over
query and key positions) and k and the dilation shrink to what a small graph holds.
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath

from ..layers import DynamicGraphConv2d
from ..registry import PretrainedCfg, Published, register_model
from ._contract import TimmContract, chain_modules

__all__ = ["VisionGNN", "Grapher", "relative_pos_table", "resize_relative_pos"]

PYRAMID_REDUCTIONS = (4, 2, 1, 1)  # average pooling of the candidate neighbours, per Pyramid ViG stage


def _conv_bn(in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2), nn.BatchNorm2d(out_chs))


def _sincos_2d(dim: int, grid: int) -> torch.Tensor:
    """The 2-D sine-cosine embedding of MAE for a ``grid x grid`` map: ``[grid**2, dim]``, float64.

    A quarter of the channels each hold sin and cos of the column, then of the row, at frequencies
    ``10000 ** -(i / (dim / 4))``.
    """
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, cols = torch.meshgrid(
        torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64), indexing="ij"
    )
    parts = []
    for coord in (cols.reshape(-1), rows.reshape(-1)):
        angles = coord[:, None] * omega[None, :]
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1)


def relative_pos_table(dim: int, grid: int, reduction: int = 1) -> torch.Tensor:
    """Pyramid ViG's fixed relative-position term, ``[1, grid**2, (grid / reduction)**2]``.

    ``-2 <e_i, e_j> / dim`` for the sine-cosine embeddings ``e`` of two positions (a function of
    their offset, -1 for the same place); with ``reduction > 1`` the official code resizes the
    square table to the pooled key count as an image, which is reproduced here so that a model
    built from scratch holds the same values as the released checkpoints.
    """
    emb = _sincos_2d(dim, grid)
    table = (2 * emb @ emb.T / dim).float()
    num_nodes = grid * grid
    table = F.interpolate(
        table[None, None], size=(num_nodes, num_nodes // reduction**2), mode="bicubic", align_corners=False
    )
    return -table[0]


def resize_relative_pos(table: torch.Tensor, grid: Tuple[int, int], key_grid: Tuple[int, int]) -> torch.Tensor:
    """A ``[1, N0, M0]`` table made for square grids, resized to ``grid`` queries and ``key_grid`` keys.

    The table is a function of a query position and a key position, so it is resized as such:
    bicubically over the key rows and columns, then over the query rows and columns.
    """
    _, num_queries, num_keys = table.shape
    side, key_side = math.isqrt(num_queries), math.isqrt(num_keys)
    table = table.reshape(num_queries, 1, key_side, key_side)
    if (key_side, key_side) != tuple(key_grid):
        table = F.interpolate(table, size=key_grid, mode="bicubic", align_corners=False)
    num_keys = key_grid[0] * key_grid[1]
    table = table.reshape(side, side, num_keys).permute(2, 0, 1).unsqueeze(1)
    if (side, side) != tuple(grid):
        table = F.interpolate(table, size=grid, mode="bicubic", align_corners=False)
    return table.reshape(num_keys, grid[0] * grid[1]).t().unsqueeze(0)


class Grapher(nn.Module):
    """1x1 conv-BN, dynamic graph convolution (doubling the width), 1x1 conv-BN, residual.

    ``relative_pos`` (Pyramid ViG: a ``relative_pos_table`` of the native grid) becomes a frozen
    parameter, as in the official checkpoints, and is added to the k-NN distances.
    """

    def __init__(
        self,
        chs: int,
        k: int = 9,
        dilation: int = 1,
        reduction: int = 1,
        act_layer: Callable[..., nn.Module] = nn.GELU,
        drop_path: float = 0.0,
        relative_pos: Optional[torch.Tensor] = None,
    ) -> None:
        super().__init__()
        self.fc1 = _conv_bn(chs, chs)
        self.graph_conv = DynamicGraphConv2d(chs, 2 * chs, k, dilation, reduction, act_layer)
        self.fc2 = _conv_bn(2 * chs, chs)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        frozen = nn.Parameter(relative_pos, requires_grad=False) if relative_pos is not None else None
        self.register_parameter("relative_pos", frozen)

    def _relative_pos(self, height: int, width: int) -> Optional[torch.Tensor]:
        table = self.relative_pos
        side = math.isqrt(table.shape[1]) if table is not None else 0
        if table is None or (height, width) == (side, side):
            return table
        r = self.graph_conv.reduction
        return resize_relative_pos(table, (height, width), (height // r, width // r))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.fc1(x)
        x = self.graph_conv(x, self._relative_pos(*x.shape[-2:]))
        return self.drop_path(self.fc2(x)) + shortcut


class FFN(nn.Module):
    """Per-node MLP as 1x1 conv-BN, activation, 1x1 conv-BN, with a residual."""

    def __init__(
        self, chs: int, hidden_chs: int, act_layer: Callable[..., nn.Module] = nn.GELU, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.fc1 = _conv_bn(chs, hidden_chs)
        self.act = act_layer()
        self.fc2 = _conv_bn(hidden_chs, chs)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop_path(self.fc2(self.act(self.fc1(x)))) + x


class Stem(nn.Module):
    """Overlapping 3x3 stem: one stride-2 conv-BN-act per width, then a stride-1 conv-BN."""

    def __init__(self, in_chans: int, widths: Sequence[int], act_layer: Callable[..., nn.Module]) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        prev = in_chans
        for width in widths:
            layers += [*_conv_bn(prev, width, 3, 2), act_layer()]
            prev = width
        layers += [*_conv_bn(prev, prev, 3)]
        self.convs = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


class Downsample(nn.Module):
    """Stride-2 3x3 conv-BN between Pyramid ViG stages."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.conv = _conv_bn(in_chs, out_chs, 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class VisionGNN(TimmContract, nn.Module):
    """ViG (one stage: ``channels=[C]``, ``depths=[n]``) or Pyramid ViG (four stages).

    As officially: ViG's neighbour count grows linearly from ``k`` to ``2k`` over the blocks and its
    stem has stride 16; Pyramid ViG keeps ``k``, has a stride-4 stem and relative positions. Block
    ``i`` uses dilation ``min(i // 4 + 1, nodes of the last stage // max k)``. The head is the
    official one: global pool, 1x1 conv to 1024, BN, activation, dropout, 1x1 conv classifier
    (``prediction.4``). ``feature_info`` taps every block of ViG (all stride 16) and the last
    block of each Pyramid ViG stage.
    """

    def __init__(
        self,
        channels: Sequence[int],
        depths: Sequence[int],
        k: int = 9,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        act_layer: Callable[..., nn.Module] = nn.GELU,
        img_size: int = 224,
        head_chs: int = 1024,
    ) -> None:
        super().__init__()
        pyramid = len(depths) > 1
        num_blocks = sum(depths)
        self.num_classes = num_classes
        self.num_features = channels[-1]
        self.head_hidden_size = head_chs

        stem_widths = [channels[0] // 2, channels[0]] if pyramid else [channels[0] // d for d in (8, 4, 2, 1)]
        self.stem = Stem(in_chans, stem_widths, act_layer)
        reduction = 2 ** len(stem_widths)
        grid = img_size // reduction
        self.pos_embed = nn.Parameter(torch.zeros(1, channels[0], grid, grid))

        num_knn = [int(v) for v in torch.linspace(k, k if pyramid else 2 * k, num_blocks)]
        last_grid = grid // 2 ** (len(depths) - 1)
        max_dilation = last_grid**2 // max(num_knn)
        drop_paths = torch.linspace(0, drop_path_rate, num_blocks).tolist()

        blocks: List[nn.Module] = []
        self.feature_info = []
        idx = 0
        for stage, (chs, depth) in enumerate(zip(channels, depths)):
            if stage > 0:
                blocks.append(Downsample(channels[stage - 1], chs))
                grid, reduction = grid // 2, reduction * 2
            pooling = PYRAMID_REDUCTIONS[stage] if pyramid else 1
            table = relative_pos_table(chs, grid, pooling) if pyramid else None  # same for the whole stage
            for j in range(depth):
                blocks.append(
                    nn.Sequential(
                        Grapher(
                            chs,
                            num_knn[idx],
                            min(idx // 4 + 1, max_dilation),
                            pooling,
                            act_layer,
                            drop_paths[idx],
                            relative_pos=table.clone() if table is not None else None,
                        ),
                        FFN(chs, 4 * chs, act_layer, drop_paths[idx]),
                    )
                )
                idx += 1
                if not pyramid or j == depth - 1:
                    tap = f"backbone.{len(blocks) - 1}"
                    self.feature_info.append(dict(num_chs=chs, reduction=reduction, module=tap))
        self.backbone = nn.Sequential(*blocks)

        self.prediction = nn.Sequential(
            nn.Conv2d(channels[-1], head_chs, 1),
            nn.BatchNorm2d(head_chs),
            act_layer(),
            nn.Dropout(drop_rate),
            nn.Conv2d(head_chs, num_classes, 1) if num_classes > 0 else nn.Identity(),
        )
        self.apply(_init_weights)

    @property
    def feature_chain(self) -> List[str]:
        """The child modules in order, with the position embedding step after the stem."""
        names = [name for name, _ in chain_modules(self)]
        return names[:1] + ["add_pos_embed"] + names[1:]

    def add_pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        """Add the learned position embedding, bicubically resized when the map is not the native one."""
        pos = self.pos_embed
        if pos.shape[-2:] != x.shape[-2:]:
            pos = F.interpolate(pos, size=x.shape[-2:], mode="bicubic", align_corners=False)
        return x + pos

    def _reset_head(self, num_classes: int) -> None:
        """A fresh 1x1 conv classifier for ``num_classes`` (0 removes it: forward returns the 1024-d pre-logits)."""
        self.num_classes = num_classes
        device = self.prediction[0].weight.device
        head = nn.Conv2d(self.head_hidden_size, num_classes, 1, device=device) if num_classes > 0 else nn.Identity()
        head.apply(_init_weights)
        self.prediction[-1] = head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_blocks(self.backbone, self.add_pos_embed(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, 1)
        for layer in self.prediction[:-1]:
            x = layer(x)
        return (x if pre_logits else self.prediction[-1](x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _init_weights(module: nn.Module) -> None:
    """The official initialisation: He normal (fan-in) for every conv, zero biases."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


_PAPER = "https://arxiv.org/abs/2206.00272"
_README = "official vig_pytorch/readme.md (FLOPs column = MACs at 224)"
_RELEASE = "https://github.com/huawei-noah/Efficient-AI-Backbones/releases/download"


def _cfg(url: str, crop_pct: float = 0.9, **kwargs: Any) -> PretrainedCfg:
    return PretrainedCfg(
        tag="in1k",
        url=url,
        first_conv="stem.convs.0",
        classifier="prediction.4",
        interpolation="bicubic",
        crop_pct=crop_pct,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        license="apache-2.0",
        paper=_PAPER,
        **kwargs,
    )


_VIG_NOTE = (
    "Official release; the file name carries the authors' accuracy of these weights ({}), the readme "
    "table the paper's ({})."
)


@register_model(
    "vig",
    [
        _cfg(
            f"{_RELEASE}/vig/vig_ti_74.5.pth",
            published=Published(params=7_184_744, macs=1_300_000_000, top1=73.9, source=_README),
            notes=_VIG_NOTE.format(74.5, 73.9),
        ),
    ],
)
def vig_ti_224_gelu(**kwargs: Any) -> VisionGNN:
    """ViG-Ti: 12 blocks of width 192."""
    return VisionGNN([192], [12], **kwargs)


@register_model(
    "vig",
    [
        _cfg(
            f"{_RELEASE}/vig/vig_s_80.6.pth",
            published=Published(params=22_747_752, macs=4_500_000_000, top1=80.4, source=_README),
            notes=_VIG_NOTE.format(80.6, 80.4),
        ),
    ],
)
def vig_s_224_gelu(**kwargs: Any) -> VisionGNN:
    """ViG-S: 16 blocks of width 320."""
    return VisionGNN([320], [16], **kwargs)


@register_model(
    "vig",
    [
        _cfg(
            f"{_RELEASE}/vig/vig_b_82.6.pth",
            published=Published(params=86_841_832, macs=17_700_000_000, top1=82.3, source=_README),
            notes=_VIG_NOTE.format(82.6, 82.3),
        ),
    ],
)
def vig_b_224_gelu(**kwargs: Any) -> VisionGNN:
    """ViG-B: 16 blocks of width 640."""
    return VisionGNN([640], [16], **kwargs)


_PVIG_NOTE = (
    "Official release. The parameter count includes the frozen relative-position tables "
    "({:,} trainable); the readme table lists {}M."
)


@register_model(
    "pyramid_vig",
    [
        _cfg(
            f"{_RELEASE}/pyramid-vig/pvig_ti_78.5.pth.tar",
            published=Published(params=12_486_314, macs=1_700_000_000, top1=78.5, source=_README),
            notes=_PVIG_NOTE.format(10_714_376, 10.7),
        ),
    ],
)
def pvig_ti_224_gelu(**kwargs: Any) -> VisionGNN:
    """Pyramid ViG-Ti: depths 2-2-6-2, widths 48-96-240-384."""
    return VisionGNN([48, 96, 240, 384], [2, 2, 6, 2], **kwargs)


@register_model(
    "pyramid_vig",
    [
        _cfg(
            f"{_RELEASE}/pyramid-vig/pvig_s_82.1.pth.tar",
            published=Published(params=29_023_850, macs=4_600_000_000, top1=82.1, source=_README),
            notes=_PVIG_NOTE.format(27_251_912, 27.3),
        ),
    ],
)
def pvig_s_224_gelu(**kwargs: Any) -> VisionGNN:
    """Pyramid ViG-S: depths 2-2-6-2, widths 80-160-400-640."""
    return VisionGNN([80, 160, 400, 640], [2, 2, 6, 2], **kwargs)


@register_model(
    "pyramid_vig",
    [
        _cfg(
            f"{_RELEASE}/pyramid-vig/pvig_m_83.1.pth.tar",
            published=Published(params=51_681_930, macs=8_900_000_000, top1=83.1, source=_README),
            notes=_PVIG_NOTE.format(49_525_832, 51.7),
        ),
    ],
)
def pvig_m_224_gelu(**kwargs: Any) -> VisionGNN:
    """Pyramid ViG-M: depths 2-2-16-2, widths 96-192-384-768."""
    return VisionGNN([96, 192, 384, 768], [2, 2, 16, 2], **kwargs)


@register_model(
    "pyramid_vig",
    [
        _cfg(
            f"{_RELEASE}/pyramid-vig/pvig_b_83.66.pth.tar",
            crop_pct=0.95,
            published=Published(
                params=95_213_258, macs=16_800_000_000, top1=83.7, source=_README + "; file name: 83.66"
            ),
            notes=_PVIG_NOTE.format(92_980_328, 82.6),
        ),
    ],
)
def pvig_b_224_gelu(**kwargs: Any) -> VisionGNN:
    """Pyramid ViG-B: depths 2-2-18-2, widths 128-256-512-1024; evaluated with crop 0.95."""
    return VisionGNN([128, 256, 512, 1024], [2, 2, 18, 2], **kwargs)
