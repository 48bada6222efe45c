"""Reference models for parity tests."""

from __future__ import annotations

import torch


def randomize_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """Give every BatchNorm real statistics and affine values.

    timm initialises BatchNorm to the identity, under which a parity test could not notice
    BatchNorm weights loaded into the wrong place.
    """
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return model


def randomize_layernorm(model: torch.nn.Module) -> torch.nn.Module:
    """Give every LayerNorm non-identity affine values, so swapped norms cannot go unnoticed."""
    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return model
