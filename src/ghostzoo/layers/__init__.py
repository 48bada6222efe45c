"""Building blocks shared by several families.

Each family file builds its blocks from these instead of carrying its own copy, as the official
code does; the attribute names follow the official code so its checkpoints load without a remap.
"""

from timm.layers import make_divisible

from .attention import dot_product_attention
from .circulant import BlockCirculantLinear
from .conv_bn_act import ConvBnAct
from .dfc_attention import DFCAttention
from .dynamic_conv import DynamicConv
from .ghost import GhostModule
from .graph_conv import DynamicGraphConv2d, MaxRelativeConv2d, max_over_neighbours
from .knn_graph import knn_graph, neighbour_choices
from .lego_conv import LegoConv2d
from .patches import patchify, tokens_to_map, unpatchify
from .pos_embed import resize_pos_embed, resize_rel_pos_bias, square_grid
from .rep_branches import ConvBn, add_rep_branches, fold_bn, fuse_rep_branches, rep_branches_forward
from .rep_ghost import RepGhostModule
from .same_pad import SamePad2d, same_conv2d
from .squeeze_excite import SqueezeExcite
from .vconv import VConv2d
from .vgg import vgg_features

__all__ = [
    "BlockCirculantLinear",
    "ConvBn",
    "ConvBnAct",
    "DFCAttention",
    "DynamicConv",
    "DynamicGraphConv2d",
    "GhostModule",
    "LegoConv2d",
    "MaxRelativeConv2d",
    "RepGhostModule",
    "SamePad2d",
    "SqueezeExcite",
    "VConv2d",
    "add_rep_branches",
    "dot_product_attention",
    "same_conv2d",
    "fold_bn",
    "fuse_rep_branches",
    "knn_graph",
    "make_divisible",
    "max_over_neighbours",
    "neighbour_choices",
    "patchify",
    "rep_branches_forward",
    "resize_pos_embed",
    "resize_rel_pos_bias",
    "square_grid",
    "tokens_to_map",
    "unpatchify",
    "vgg_features",
]
