"""GhostNetV3.

Zhenhua Liu, Zhiwei Hao, Kai Han, Yehui Tang, Yunhe Wang. "GhostNetV3: Exploring the Training
Strategies for Compact Models." 2024. https://arxiv.org/abs/2404.11202

The GhostNetV2 architecture trained with re-parameterizable branches: each convolution of a Ghost
module (``layers.RepGhostModule``) and the strided depthwise convolution of a bottleneck are sums
of three k x k conv+BN branches, a 1x1 conv+BN and, where shapes allow, a BN identity. The network
is ``models.ghostnet.GhostNet`` with ``attn_from=2`` (DFC attention, as V2) and the block below.

``create_model`` builds the released training form (the official checkpoint's keys);
``model.reparameterize()`` (or ``ghostzoo.deploy.reparameterize(model)``) folds the branches into
the deploy form, which is the paper's model: same logits, 6.1M parameters and 0.17 GMACs for 1.0x.
Unlike the official code, the forward pass does not ``squeeze()`` its logits, so a batch of one
keeps its shape ``[1, num_classes]``.
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn as nn

from ..layers import RepGhostModule, add_rep_branches, fuse_rep_branches, rep_branches_forward
from ..registry import PretrainedCfg, Published, StateDict, register_model
from .ghostnet import GHOSTNET_CFG, GhostBottleneck, GhostNet

__all__ = ["GhostNetV3", "RepGhostBottleneck"]


class RepGhostBottleneck(GhostBottleneck):
    """GhostNet's bottleneck with re-parameterizable Ghost modules and strided depthwise conv.

    Training form keys of the depthwise step: ``dw_rpr_conv.*``, ``dw_rpr_scale.*``; deploy form:
    ``conv_dw`` (with bias) and an identity ``bn_dw``, as in the official code.
    """

    ghost_layer = RepGhostModule

    def _init_dw(self, chs: int, kernel_size: int, stride: int) -> None:
        self.dw_deployed = False
        add_rep_branches(
            self, "dw", chs, chs, kernel_size, stride, groups=chs, num_branches=RepGhostModule.num_branches
        )

    def _dw(self, x: torch.Tensor) -> torch.Tensor:
        if self.dw_deployed:
            return super()._dw(x)
        return rep_branches_forward(self, "dw", x)

    def reparameterize(self) -> None:
        """Fold the depthwise branches into ``conv_dw`` (the Ghost modules fold themselves)."""
        if self.stride > 1 and not self.dw_deployed:
            self.conv_dw = fuse_rep_branches(self, "dw")
            self.bn_dw = nn.Identity()
            self.dw_deployed = True


class GhostNetV3(GhostNet):
    """GhostNet with :class:`RepGhostBottleneck` blocks and a ``reparameterize()`` deploy switch."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("drop_rate", 0.0)  # the official forward has its head dropout commented out
        super().__init__(block=RepGhostBottleneck, attn_from=2, **kwargs)

    def reparameterize(self) -> None:
        """Fold every branch set into one convolution: the deploy form, same eval-mode outputs.

        In place and idempotent. The BatchNorm running statistics are folded, so the result
        matches the model in eval mode; it is meant for inference, not for further training.
        """
        for module in list(self.modules()):
            if isinstance(module, (RepGhostModule, RepGhostBottleneck)):
                module.reparameterize()


_TIMM_BN = re.compile(r"(_rpr_(?:conv\.\d+|scale))\.bn1\.")


def checkpoint_filter(state_dict: StateDict, model: nn.Module) -> StateDict:
    """timm names the BatchNorm of a branch ``bn1`` where the official code says ``bn``."""
    return {_TIMM_BN.sub(r"\1.bn.", k): v for k, v in state_dict.items()}


def _create(width: float, **kwargs: Any) -> GhostNetV3:
    return GhostNetV3(cfgs=GHOSTNET_CFG, width=width, **kwargs)


_PAPER = "https://arxiv.org/abs/2404.11202"
_PAPER_TABLE = "GhostNetV3 paper (2024), comparison with compact models on ImageNet"
_FORMS = (
    "published params: the released training form that create_model builds; "
    "reparameterize() gives the deploy form, for which the paper reports params and MACs."
)


def _cfg(tag: str = "untrained", **kwargs: Any) -> PretrainedCfg:
    # the official train.py evaluates with timm's defaults: bicubic, crop 0.875, ImageNet mean/std
    return PretrainedCfg(
        tag=tag,
        first_conv="conv_stem",
        classifier="classifier",
        interpolation="bicubic",
        crop_pct=0.875,
        license="apache-2.0",
        paper=_PAPER,
        use_ema=True,
        **kwargs,
    )


@register_model(
    "ghostnetv3",
    [
        _cfg(
            published=Published(
                params=3_395_384, source="official ghostnetv3.py (training form); no ImageNet result released with code"
            ),
            notes=_FORMS,
        ),
    ],
    checkpoint_filter=checkpoint_filter,
)
def ghostnetv3_050(**kwargs: Any) -> GhostNetV3:
    """GhostNetV3 0.5x (training form). No official weights were released for this width."""
    return _create(0.5, **kwargs)


@register_model(
    "ghostnetv3",
    [
        _cfg(
            "in1k",
            url="https://github.com/huawei-noah/Efficient-AI-Backbones/releases/download/GhostNetV3/ghostnetv3-1.0.pth.tar",
            hf_hub_id="timm/ghostnetv3_100.in1k",
            published=Published(params=8_129_028, macs=167_000_000, top1=77.1, source=_PAPER_TABLE),
            notes="The release file holds 'state_dict' and 'state_dict_ema'; the EMA weights are the "
            "paper's model and the default (use_ema=False, or --no-use-ema, takes the others). "
            "timm's hub copy is a bare state_dict with timm's key names, remapped on load. " + _FORMS,
        ),
    ],
    checkpoint_filter=checkpoint_filter,
)
def ghostnetv3_100(**kwargs: Any) -> GhostNetV3:
    """GhostNetV3 1.0x (training form; ``reparameterize()`` for deployment): 77.1% top-1."""
    return _create(1.0, **kwargs)


@register_model(
    "ghostnetv3",
    [
        _cfg(
            published=Published(params=12_217_720, macs=269_000_000, top1=79.1, source=_PAPER_TABLE),
            notes="No official weights were released for this width. " + _FORMS,
        ),
    ],
    checkpoint_filter=checkpoint_filter,
)
def ghostnetv3_130(**kwargs: Any) -> GhostNetV3:
    """GhostNetV3 1.3x (training form). No official weights were released for this width."""
    return _create(1.3, **kwargs)


@register_model(
    "ghostnetv3",
    [
        _cfg(
            published=Published(params=17_275_700, macs=400_000_000, top1=80.4, source=_PAPER_TABLE),
            notes="No official weights were released for this width. " + _FORMS,
        ),
    ],
    checkpoint_filter=checkpoint_filter,
)
def ghostnetv3_160(**kwargs: Any) -> GhostNetV3:
    """GhostNetV3 1.6x (training form). No official weights were released for this width."""
    return _create(1.6, **kwargs)
