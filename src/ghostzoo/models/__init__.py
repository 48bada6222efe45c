"""One module per family; importing them registers their models."""

from . import (
    augvit,  # noqa: F401
    g_ghost_regnet,  # noqa: F401
    ghost_resnet,  # noqa: F401
    ghostnet,  # noqa: F401
    ghostnetv2,  # noqa: F401
    ghostnetv3,  # noqa: F401
    legonet,  # noqa: F401
    pyramid_tnt,  # noqa: F401
    tinynet,  # noqa: F401
    tnt,  # noqa: F401
    versatile,  # noqa: F401
    vig,  # noqa: F401
    wavemlp,  # noqa: F401
)
from ._features import FeatureListNet, FeatureMapsNet, create_feature_net

__all__ = ["FeatureListNet", "FeatureMapsNet", "create_feature_net"]
