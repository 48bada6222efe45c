"""VGG-style feature stacks for the families that replace VGG's convolution by their own.

LegoNet and Versatile filters are both demonstrated on VGG; they share this builder, which lays out
``conv [BN] ReLU`` units and max pools exactly as torchvision's and the official ``make_layers`` do
(so ``features.i`` keys match) and records where the feature maps of each stride are.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Sequence, Tuple, Union

import torch.nn as nn

VggCfg = Sequence[Union[int, str]]


def vgg_features(
    cfg: VggCfg,
    in_chans: int,
    conv_layer: Callable[[int, int, int], nn.Module],
    batch_norm: bool = True,
    prefix: str = "features",
) -> Tuple[nn.Sequential, List[Dict]]:
    """The ``features`` stack for ``cfg`` (ints: conv widths, ``"M"``: 2x2 max pool) and its taps.

    ``conv_layer(in_chs, out_chs, index)`` builds the ``index``-th convolution. Taps: the ReLU
    before each pool (reductions 1, 2, 4, ... as in timm's VGG) and the output of the last layer.
    """
    layers: List[nn.Module] = []
    info: List[Dict] = []
    prev, reduction, num_convs = in_chans, 1, 0
    for v in cfg:
        if v == "M":
            info.append(dict(num_chs=prev, reduction=reduction, module=f"{prefix}.{len(layers) - 1}"))
            layers.append(nn.MaxPool2d(2, 2))
            reduction *= 2
        else:
            layers.append(conv_layer(prev, int(v), num_convs))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(v)))
            layers.append(nn.ReLU(inplace=True))
            prev, num_convs = int(v), num_convs + 1
    info.append(dict(num_chs=prev, reduction=reduction, module=f"{prefix}.{len(layers) - 1}"))
    return nn.Sequential(*layers), info
