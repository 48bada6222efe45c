"""One module per family; importing them registers their models."""

from . import augvit  # noqa: F401
from . import g_ghost_regnet  # noqa: F401
from . import ghost_resnet  # noqa: F401
from . import ghostnet  # noqa: F401
from . import ghostnetv2  # noqa: F401
from . import ghostnetv3  # noqa: F401
from . import pyramid_tnt  # noqa: F401
from . import tinynet  # noqa: F401
from . import tnt  # noqa: F401
from . import legonet  # noqa: F401
from . import versatile  # noqa: F401
from . import vig  # noqa: F401
from . import wavemlp  # noqa: F401
from ._features import FeatureListNet, FeatureMapsNet, create_feature_net

__all__ = ["FeatureListNet", "FeatureMapsNet", "create_feature_net"]
