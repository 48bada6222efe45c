"""Weight initialisation shared by the ResNet-like families."""

import torch.nn as nn


def init_resnet_style(model: nn.Module) -> None:
    """He-normal (fan-out) convolutions and identity BatchNorm, as torchvision's ResNet and the
    official Ghost-ResNet / G-Ghost code initialise them (training from scratch depends on it)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
