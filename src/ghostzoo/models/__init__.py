"""One module per family; importing them registers their models."""

from . import ghostnet  # noqa: F401
from . import legonet  # noqa: F401
from . import versatile  # noqa: F401
from . import vig  # noqa: F401
from . import wavemlp  # noqa: F401
from ._features import FeatureListNet

__all__ = ["FeatureListNet"]
