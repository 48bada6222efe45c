"""Building blocks shared by several families.

Each family file builds its blocks from these instead of carrying its own copy, as the official
code does; the attribute names follow the official code so its checkpoints load without a remap.
"""

from timm.layers import make_divisible

from .attention import dot_product_attention
from .circulant import BlockCirculantLinear
from .conv_bn_act import ConvBnAct
from .ghost import GhostModule
from .patches import patchify, tokens_to_map, unpatchify
from .pos_embed import resize_pos_embed, resize_rel_pos_bias, square_grid
from .squeeze_excite import SqueezeExcite

__all__ = [
    "BlockCirculantLinear", "ConvBnAct", "GhostModule", "SqueezeExcite", "dot_product_attention",
    "make_divisible", "patchify", "resize_pos_embed", "resize_rel_pos_bias", "square_grid",
    "tokens_to_map", "unpatchify",
]
