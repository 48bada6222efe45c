"""GhostNetV3: official parity in the training form, reparameterize() to the deploy form on every
width, the EMA default of the release file, timm's keys, batch size 1 (the model surface:
tests/test_model_contract.py)."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import ghostzoo
from ghostzoo.cli import main
from ghostzoo.profile import profile_model

from golden import golden_weights_module, load_golden, relative_error, save_golden_checkpoint
from reference import small_variants_first, timm_checkpoint

WIDTHS = ["ghostnetv3_050", "ghostnetv3_100", "ghostnetv3_130", "ghostnetv3_160"]
OFFICIAL_PARAMS = {
    "ghostnetv3_050": 3_395_384,
    "ghostnetv3_100": 8_129_028,
    "ghostnetv3_130": 12_217_720,
    "ghostnetv3_160": 17_275_700,
}


@pytest.fixture(scope="module")
def golden_models(tmp_path_factory):
    """Each width loaded once with its golden weights (official format), with input and logits."""
    cache = {}

    def get(name: str):
        if name not in cache:
            g = load_golden(name)
            path = save_golden_checkpoint(name, tmp_path_factory.mktemp(name) / "w.pth")
            model = ghostzoo.create_model(name, checkpoint_path=path).eval()
            cache[name] = model, golden_weights_module().input_from_golden(g), torch.tensor(g["output"]["logits"])
        return cache[name]

    return get


@pytest.mark.parametrize("name", small_variants_first(WIDTHS))
def test_training_form_matches_official_logits(name, golden_models):
    model, x, ref = golden_models(name)
    with torch.no_grad():
        assert relative_error(model(x), ref) <= 1e-4
    assert model.drop_rate == 0.0  # the official forward applies no head dropout
    assert ghostzoo.get_pretrained_cfg(name).published.params == OFFICIAL_PARAMS[name]  # = the model's: contract test


@pytest.mark.parametrize("name", small_variants_first(WIDTHS))
def test_reparameterize_gives_the_official_deploy_form(name, golden_models):
    """Same logits (1e-4), and the official deploy form's keys, shapes, params and MACs."""
    g = load_golden(name)
    model, x, ref = golden_models(name)
    model = copy.deepcopy(model)
    model.reparameterize()
    with torch.no_grad():
        y = model(x)
    assert relative_error(y, ref) <= 1e-4
    deploy = g["reparameterized"]
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == {
        k: v["shape"] for k, v in deploy["manifest"].items()
    }
    prof = profile_model(model)
    assert prof.params == deploy["params"] < g["params"]
    assert prof.macs == deploy["macs_batch1"] < g["macs_batch1"]["value"]
    published = ghostzoo.get_pretrained_cfg(name).published
    if published.macs:  # the paper's FLOPs are those of the deploy form
        assert prof.conv_linear_macs == pytest.approx(published.macs, rel=0.01)

    model.reparameterize()  # idempotent
    with torch.no_grad():
        torch.testing.assert_close(model(x), y, rtol=0, atol=0)


def test_deploy_form_of_1x_is_the_papers_size():
    """The paper reports 6.1M parameters and 0.17G FLOPs for GhostNetV3 1.0x."""
    model = ghostzoo.create_model("ghostnetv3_100")
    model.reparameterize()
    prof = profile_model(model)
    assert round(prof.params / 1e6, 1) == 6.1 and round(prof.conv_linear_macs / 1e9, 2) == 0.17


def test_release_file_defaults_to_ema_weights(tmp_path):
    """ghostnetv3-1.0.pth.tar holds 'state_dict' and 'state_dict_ema'; the EMA one is the model."""
    ema = golden_weights_module().state_dict_from_golden(load_golden("ghostnetv3_050"))
    raw = {k: v * 0.9 if v.is_floating_point() else v for k, v in ema.items()}
    path = tmp_path / "ghostnetv3.pth.tar"
    torch.save({"epoch": 599, "state_dict": raw, "state_dict_ema": ema}, path)
    x = torch.randn(1, 3, 64, 64)

    def logits(**kwargs) -> torch.Tensor:
        with torch.no_grad():
            return ghostzoo.create_model("ghostnetv3_050", **kwargs).eval()(x)

    def reference(sd) -> torch.Tensor:
        model = ghostzoo.create_model("ghostnetv3_050")
        model.load_state_dict(sd)
        with torch.no_grad():
            return model.eval()(x)

    assert all(ghostzoo.get_pretrained_cfg(n).use_ema is True for n in WIDTHS)
    ema_ref, raw_ref = reference(ema), reference(raw)
    assert not torch.allclose(ema_ref, raw_ref)
    torch.testing.assert_close(logits(checkpoint_path=path), ema_ref, rtol=0, atol=0)
    torch.testing.assert_close(logits(checkpoint_path=path, use_ema=False), raw_ref, rtol=0, atol=0)


def test_timm_keys_load_and_give_identical_logits(tmp_path):
    """timm names a branch's BatchNorm bn1 where the official code says bn; its file is a bare
    state_dict, which loads although the cfg prefers EMA weights."""
    reference, path = timm_checkpoint("ghostnetv3_050", tmp_path)
    assert any(".primary_rpr_conv.0.bn1." in k for k in reference.state_dict())
    model = ghostzoo.create_model("ghostnetv3_050", checkpoint_path=path).eval()
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-5)


def test_batch_size_1_keeps_its_shape_in_both_forms(golden_models):
    """The official forward ends with squeeze(), which turns [1, 1000] into [1000]."""
    model, x, ref = golden_models("ghostnetv3_050")
    deployed = copy.deepcopy(model)
    deployed.reparameterize()
    with torch.no_grad():
        for m in (model, deployed):
            y = m(x[1:2])
            assert y.shape == (1, 1000)
            assert relative_error(y, ref[1:2]) <= 1e-4


def test_cfgs_and_cli(capsys, tmp_path):
    cfg = ghostzoo.get_pretrained_cfg("ghostnetv3_100")
    assert cfg.url.endswith("/releases/download/GhostNetV3/ghostnetv3-1.0.pth.tar")
    assert cfg.published.top1 == 77.1 and cfg.interpolation == "bicubic"
    assert ghostzoo.list_models("ghostnetv3*", pretrained=True) == ["ghostnetv3_100"]
    assert main(["list", "ghost*"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in WIDTHS)
    assert main(["profile", "ghostnetv3_050", "--output", str(tmp_path / "p.json")]) == 0
    assert "3,395,384 params" in capsys.readouterr().out
    prof = json.loads((tmp_path / "p.json").read_text())
    assert prof["macs"] == load_golden("ghostnetv3_050")["macs_batch1"]["value"]  # training form, fvcore
    assert sum(s["macs"] for s in prof["stages"]) == prof["macs"]
