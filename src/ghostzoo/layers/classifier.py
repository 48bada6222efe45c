"""The classifier every family ends with."""

from typing import Optional

import torch
import torch.nn as nn


def linear_head(in_features: int, num_classes: int, device: Optional[torch.device] = None) -> nn.Module:
    """A linear classifier, or ``nn.Identity`` for ``num_classes=0`` (the model then returns pooled
    features, as timm models do)."""
    return nn.Linear(in_features, num_classes, device=device) if num_classes > 0 else nn.Identity()
