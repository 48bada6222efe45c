"""Building blocks shared by several families.

Each family file builds its blocks from these instead of carrying its own copy, as the official
code does; the attribute names follow the official code so its checkpoints load without a remap.
"""

from timm.layers import make_divisible

from .conv_bn_act import ConvBnAct
from .ghost import GhostModule
from .graph_conv import DynamicGraphConv2d, MaxRelativeConv2d, max_over_neighbours
from .knn_graph import knn_graph
from .lego_conv import LegoConv2d
from .squeeze_excite import SqueezeExcite
from .vconv import VConv2d
from .vgg import vgg_features

__all__ = ["ConvBnAct", "DynamicGraphConv2d", "GhostModule", "LegoConv2d", "MaxRelativeConv2d",
           "SqueezeExcite", "VConv2d", "knn_graph", "make_divisible", "max_over_neighbours", "vgg_features"]
