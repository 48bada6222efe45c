"""Building blocks shared by several families.

Each family file builds its blocks from these instead of carrying its own copy, as the official
code does; the attribute names follow the official code so its checkpoints load without a remap.
"""

from timm.layers import make_divisible

from .conv_bn_act import ConvBnAct
from .ghost import GhostModule
from .squeeze_excite import SqueezeExcite

__all__ = ["ConvBnAct", "GhostModule", "SqueezeExcite", "make_divisible"]
