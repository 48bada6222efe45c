"""One module per family; importing them registers their models."""

from . import (
    augvit,  # noqa: F401
    cmt,  # noqa: F401
    g_ghost_regnet,  # noqa: F401
    ghost_resnet,  # noqa: F401
    ghostnet,  # noqa: F401
    ghostnet_paddle,  # noqa: F401
    ghostnet_tf,  # noqa: F401
    ghostnetv2,  # noqa: F401
    ghostnetv3,  # noqa: F401
    legonet,  # noqa: F401
    parameternet,  # noqa: F401
    pyramid_tnt,  # noqa: F401
    tinynet,  # noqa: F401
    tnt,  # noqa: F401
    versatile,  # noqa: F401
    vig,  # noqa: F401
    wavemlp,  # noqa: F401
)
from ._features import FeatureNet, create_feature_net

#: the families built with ``output_stride`` 16 or 8 (dilated later stages, for dense prediction)
OUTPUT_STRIDE_FAMILIES = frozenset(
    {"ghostnet", "ghostnet_paddle", "ghostnetv2", "ghostnetv3", "tinynet", "g_ghost_regnet", "ghost_resnet"}
)

__all__ = ["FeatureNet", "OUTPUT_STRIDE_FAMILIES", "create_feature_net"]
