"""Every registered model's size equals the official implementation's: params and MACs (fvcore's count)."""

from __future__ import annotations

import pytest
import torch

import ghostzoo
from ghostzoo.profile import profile_model

from conftest import GOLDEN_DIR
from golden import FOREIGN_GOLDENS, load_golden
from reference import is_large_variant, small_variants_first

MODELS = [n for n in ghostzoo.list_models() if (GOLDEN_DIR / f"{n}.json").exists()]


def test_every_model_has_a_golden_file():
    foreign = [n for n, path in FOREIGN_GOLDENS.items() if (GOLDEN_DIR / path).exists()]
    missing = [n for n in ghostzoo.list_models() if n not in MODELS + foreign]
    assert not missing, f"registered without a golden reference: {missing}"


@pytest.mark.parametrize("name", small_variants_first(MODELS))
def test_params_and_macs_equal_the_official_model(name):
    golden = load_golden(name)
    model = ghostzoo.create_model(name, num_classes=golden["num_classes"])
    prof = profile_model(model, tuple(golden["input"]["shape"][1:]))
    assert prof.params == golden["params"]
    assert prof.macs == golden["macs_batch1"]["value"]
    assert sum(s.macs for s in prof.stages) == prof.macs
    assert sum(s.params for s in prof.stages) == prof.params


@pytest.mark.parametrize("name", [n for n in MODELS if is_large_variant(n)])
def test_large_variants_have_the_official_parameter_count(name):
    """The default run's check of a large variant's config (its MACs, numerics and surface: ``-m slow``).
    Built on the meta device where the model allows it: no memory, no initialisation, same shapes."""
    golden = load_golden(name)
    try:
        with torch.device("meta"):
            model = ghostzoo.create_model(name, num_classes=golden["num_classes"])
    except (RuntimeError, NotImplementedError):  # e.g. ViG reads drop-path rates with .item() when built
        model = ghostzoo.create_model(name, num_classes=golden["num_classes"])
    assert sum(p.numel() for p in model.parameters()) == golden["params"]
