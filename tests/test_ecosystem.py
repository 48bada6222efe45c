"""ghostzoo through the ecosystem's doors: timm's registry and tools, and torch.hub."""

from __future__ import annotations

import importlib.util

import timm
import timm.data
import torch

import ghostzoo

from conftest import ROOT

TAG = "ghostnet_100.imagenette"


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_every_model_is_in_timms_registry_without_shadowing_timms_own():
    assert set(timm.list_models("ghostzoo_*")) == {f"ghostzoo_{n}" for n in ghostzoo.list_models()}
    # timm's own GhostNet stays timm's: the prefixed name is ghostzoo's
    assert timm.models.model_entrypoint("ghostnet_100").__module__.startswith("timm.")
    assert timm.models.model_entrypoint("ghostzoo_ghostnet_100").__module__ == "ghostzoo.timm_registry"
    assert f"ghostzoo_{TAG}" in timm.list_models(pretrained=True)
    assert "ghostzoo_vig_ti_224_gelu" not in timm.list_models(pretrained=True)  # no released weights


def test_timm_create_model_gives_ghostzoos_model_weights_and_preprocessing():
    model = timm.create_model(f"ghostzoo_{TAG}", pretrained=True)
    reference = ghostzoo.create_model(TAG, pretrained=True)
    assert type(model) is type(reference) and _same_weights(model, reference)
    assert model.pretrained_cfg.class_names == reference.pretrained_cfg.class_names
    config = timm.data.resolve_model_data_config(model)
    assert config["input_size"] == reference.pretrained_cfg.input_size
    assert config["crop_pct"] == reference.pretrained_cfg.crop_pct
    vig = timm.create_model("ghostzoo_pvig_ti_224_gelu", num_classes=5)
    assert vig.num_classes == 5 and type(vig).__name__ == "VisionGNN"
    backbone = timm.create_model("ghostzoo_ghostnet_100", features_only=True, out_indices=(2, 3, 4))
    assert backbone.feature_info.reduction() == [8, 16, 32]


def _hubconf():
    """hubconf.py as torch.hub imports it (torch.hub.list and help read GitHub repositories only)."""
    spec = importlib.util.spec_from_file_location("hubconf", ROOT / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_torch_hub_lists_documents_and_loads_every_model():
    hubconf = _hubconf()
    # torch.hub.list's rule: the module's public callables are its entry points
    entries = [n for n in dir(hubconf) if callable(getattr(hubconf, n)) and not n.startswith("_")]
    assert entries == ghostzoo.list_models()
    doc = hubconf.vig_ti_224_gelu.__doc__
    assert doc.startswith("vig_ti_224_gelu: ") and "tag=" in doc
    repo = str(ROOT)
    model = torch.hub.load(repo, "ghostnet_100", source="local", pretrained=True, tag="imagenette")
    assert _same_weights(model, ghostzoo.create_model(TAG, pretrained=True))
    headless = torch.hub.load(repo, "tinynet_e", source="local", num_classes=0)
    assert headless.num_classes == 0
