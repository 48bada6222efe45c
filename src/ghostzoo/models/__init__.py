"""One module per family; importing them registers their models."""

from . import ghostnet  # noqa: F401
from ._features import FeatureListNet

__all__ = ["FeatureListNet"]
