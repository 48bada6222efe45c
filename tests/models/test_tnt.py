"""TNT: official parity, timm's renamed checkpoints, other resolutions, sizes (the model surface:
tests/test_model_contract.py)."""

from __future__ import annotations

import pytest
import timm
import torch
from fvcore.nn import FlopCountAnalysis
from timm.models.tnt import checkpoint_filter_fn as timm_tnt_filter

import ghostzoo
from ghostzoo.profile import profile_model

from golden import check_golden, load_golden
from reference import randomize_layernorm, small_variants_first, timm_checkpoint

NAMES = ["tnt_s_patch16_224", "tnt_b_patch16_224"]
# all parameters, the frozen, unused ``outer_tokens`` of the official model included (issue 4)
OFFICIAL_PARAMS = {"tnt_s_patch16_224": 23_843_848, "tnt_b_patch16_224": 65_554_120}


@pytest.fixture(scope="module")
def timm_tnt_s(tmp_path_factory):
    """A timm ``tnt_s_patch16_224`` with non-trivial LayerNorms, its checkpoint (timm's keys), and
    ours loaded from that checkpoint."""
    reference, path = timm_checkpoint("tnt_s_patch16_224", tmp_path_factory.mktemp("timm"), randomize_layernorm)
    return reference, path, ghostzoo.create_model("tnt_s_patch16_224", checkpoint_path=path).eval()


@pytest.mark.parametrize("name", small_variants_first(NAMES))
def test_matches_official_logits(name, tmp_path):
    check_golden(name, tmp_path)


@pytest.mark.parametrize("name", small_variants_first(NAMES))
def test_published_and_trainable_params_match_official(name):
    with torch.device("meta"):
        model = ghostzoo.create_model(name)
    golden = load_golden(name)
    assert ghostzoo.get_pretrained_cfg(name).published.params == OFFICIAL_PARAMS[name]  # = the model's: contract test
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == golden["params_trainable"] == OFFICIAL_PARAMS[name] - model.outer_tokens.numel()


def test_macs_match_official_and_published():
    model = ghostzoo.create_model("tnt_s_patch16_224").eval()
    x = torch.zeros(1, 3, 224, 224)
    macs = FlopCountAnalysis(model, x).total()
    assert macs == load_golden("tnt_s_patch16_224")["macs_batch1"]["value"]
    published = ghostzoo.get_pretrained_cfg("tnt_s_patch16_224").published.macs  # 5.2 G, rounded
    assert profile_model(model).conv_linear_macs == pytest.approx(published, abs=0.05e9)


@pytest.mark.parametrize("name", small_variants_first(NAMES))
def test_eval_cfg_and_release(name):
    cfg = ghostzoo.get_pretrained_cfg(name)
    ref = timm.models.get_pretrained_cfg(f"{name}.in1k")
    assert cfg.input_size == ref.input_size == (3, 224, 224)
    assert (cfg.crop_pct, cfg.interpolation) == (ref.crop_pct, ref.interpolation) == (0.9, "bicubic")
    assert cfg.mean == cfg.std == tuple(ref.mean) == tuple(ref.std) == (0.5, 0.5, 0.5)
    small = name.startswith("tnt_s")
    release = "https://github.com/huawei-noah/Efficient-AI-Backbones/releases/download/tnt"
    assert cfg.url == f"{release}/tnt_{'s_81.5' if small else 'b_82.9'}.pth.tar"
    assert cfg.hf_hub_id == f"timm/{name}.in1k"
    # the official readme's Top-1 / Top-5
    assert (cfg.published.top1, cfg.published.top5) == ((81.5, 95.7) if small else (82.9, 96.3))


def test_timm_checkpoint_gives_identical_logits(timm_tnt_s):
    reference, _, model = timm_tnt_s
    assert not model.outer_tokens.any()  # restored as the official zeros
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


@pytest.mark.parametrize("size", [160, 288])
def test_other_resolutions_at_load_and_forward_time(size, timm_tnt_s):
    """A 224 checkpoint in a model built at ``size`` equals timm's resized model (the reference for
    the resampling), and equals the 224 model fed ``size`` images (forward-time resampling)."""
    reference_224, path, model_224 = timm_tnt_s
    reference = timm.create_model("tnt_s_patch16_224", img_size=size).eval()
    reference.load_state_dict(timm_tnt_filter(dict(reference_224.state_dict()), reference))
    model = ghostzoo.create_model("tnt_s_patch16_224", img_size=size, checkpoint_path=path).eval()
    assert model.outer_pos.shape == (1, (size // 16) ** 2 + 1, 384)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        y = model(x)
        torch.testing.assert_close(y, reference(x), rtol=0, atol=0)
        torch.testing.assert_close(model_224(x), y, rtol=1e-5, atol=1e-5)


def test_non_square_input_and_batch_1_equals_batch_row(timm_tnt_s):
    model = timm_tnt_s[2]
    x = torch.randn(2, 3, 128, 192)
    with torch.no_grad():
        full = model(x)
        single = model(x[1:2])
    assert full.shape == (2, 1000)
    torch.testing.assert_close(single, full[1:2], rtol=1e-4, atol=1e-5)


def test_feature_info_and_shallow_features_only(timm_tnt_s):
    model = timm_tnt_s[2]
    assert [(f["num_chs"], f["reduction"]) for f in model.feature_info] == [(384, 16)] * 12
    shallow = ghostzoo.create_model("tnt_s_patch16_224", features_only=True, out_indices=(0,))
    assert len(shallow.model.blocks) == 1 and isinstance(shallow.model.head, torch.nn.Identity)
