"""Turning a trained model into its inference form: re-parameterization and BatchNorm folding."""

from .reparameterize import fold_batchnorms, reparameterize

__all__ = ["fold_batchnorms", "reparameterize"]
