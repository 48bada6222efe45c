"""Reference models for parity tests, and weights that make a fresh model's numbers mean something."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, List, Tuple

import pytest
import timm
import torch

from ghostzoo.registry import model_entries, smallest_per_family


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


def calibrate_batchnorm(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """Set every BatchNorm's running statistics to those of ``x`` (one forward in training mode) and
    give it non-identity affine values; the model is left in eval mode.

    Freshly initialised networks can shrink the signal layer after layer (LegoNet's lego filters do,
    to 1e-28 at the last stage), so that their outputs no longer depend on the input and any
    comparison of them passes; normalising with the real statistics keeps every layer's output of
    order one.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: after one batch, that batch's statistics
    model.train()
    with torch.no_grad():
        model(x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
        if m.affine:
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return model.eval()


def timm_checkpoint(
    timm_name: str,
    folder: Path,
    randomize: Callable[[torch.nn.Module], torch.nn.Module] = randomize_batchnorm,
) -> Tuple[torch.nn.Module, Path]:
    """timm's ``timm_name`` (seeded, its norms given real values by ``randomize``) in eval mode, and its
    state_dict saved in ``folder``: a checkpoint with timm's keys, as timm's weights come."""
    torch.manual_seed(0)
    reference = randomize(timm.create_model(timm_name).eval())
    path = Path(folder) / f"timm_{timm_name}.pth"
    torch.save(reference.state_dict(), path)
    return reference, path


# The convolutional families: every one folds into plain convolutions and exports to a static graph.
CNN_FAMILIES = {
    "ghostnet",
    "ghostnet_paddle",
    "ghostnet_tf",
    "ghostnetv2",
    "ghostnetv3",
    "ghost_resnet",
    "g_ghost_regnet",
    "tinynet",
    "legonet",
    "versatile_filters",
}


# A variant above this many parameters differs from its family's smallest only by its config (depths,
# widths), which the default run still checks against the official model by its parameter count
# (test_profile.py); running its numerics too is left to `pytest -m slow`.
LARGE_PARAMS = 30_000_000


# Variants that are not their family's smallest but take a code path of their own.
OWN_CODE_PATH = {"vcnn_vgg11_bn"}  # the versatile VGGs with BatchNorm


def is_large_variant(name: str) -> bool:
    """Over :data:`LARGE_PARAMS`, and neither the smallest of its family nor in :data:`OWN_CODE_PATH`."""
    params = model_entries()[name].default_cfg.published.params or 0
    return params > LARGE_PARAMS and name not in smallest_per_family() | OWN_CODE_PATH


def small_variants_first(names: Iterable[str]) -> List:
    """``names`` as pytest params, the large variants (:func:`is_large_variant`) behind the slow marker."""
    return [pytest.param(n, marks=pytest.mark.slow) if is_large_variant(n) else n for n in names]
