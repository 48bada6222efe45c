"""AugViT: official parity, the block-circulant index tables, DeiT-S parity of the baseline, other
resolutions and the published numbers (the model surface: tests/test_model_contract.py)."""

from __future__ import annotations

import pytest
import timm
import torch
from fvcore.nn import FlopCountAnalysis
from timm.models.vision_transformer import checkpoint_filter_fn as timm_vit_filter

import ghostzoo
from ghostzoo.layers import BlockCirculantLinear

from golden import check_golden, golden_weights_module, load_golden
from reference import randomize_layernorm, small_variants_first, timm_checkpoint

NAMES = [
    "augvit_small",
    "augvit_small_linear",
    "augvit_small_circulant2",
    "augvit_small_linear2",
    "augvit_base_circulant2",
]
# AugViT paper, Table 2 (Top-1 %, FLOPs G); augvit_small is its ViT(DeiT)-S row
PAPER = {"augvit_small": (79.8, 4.6), "augvit_small_circulant2": (80.9, 4.7), "augvit_base_circulant2": (82.4, 17.7)}


@pytest.fixture(scope="module")
def deit_s(tmp_path_factory):
    """timm's DeiT-S (``vit_small_patch16_224``) with non-trivial LayerNorms, its checkpoint, and
    ``augvit_small`` loaded from it."""
    reference, path = timm_checkpoint("vit_small_patch16_224", tmp_path_factory.mktemp("deit"), randomize_layernorm)
    return reference, path, ghostzoo.create_model("augvit_small", checkpoint_path=path).eval()


@pytest.mark.parametrize("name", small_variants_first(NAMES))
def test_matches_official_logits(name, tmp_path):
    check_golden(name, tmp_path)


@pytest.mark.parametrize("name", small_variants_first(NAMES))
def test_cfg_matches_official_and_published(name):
    cfg = ghostzoo.get_pretrained_cfg(name)
    assert cfg.published.params == load_golden(name)["params"]  # = the model's count: the contract test
    top1, gflops = PAPER.get(name, (None, None))
    assert cfg.published.top1 == top1
    assert cfg.published.macs == (gflops * 1e9 if gflops else None)
    # the official default_cfg (vit_base_patch16_224's)
    assert (cfg.input_size, cfg.crop_pct, cfg.interpolation) == ((3, 224, 224), 0.9, "bicubic")
    assert cfg.mean == cfg.std == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("name, dim", [("augvit_small_circulant2", 384), ("augvit_base_circulant2", 768)])
def test_circulant_index_tables_equal_the_official_ones(name, dim):
    """The golden test loads the index buffers from the file; here ours are built from scratch."""
    constants = load_golden(name)["constants"]
    layer = BlockCirculantLinear(dim, dim, num_cir=4)
    official = golden_weights_module().decode_constant(constants["blocks.0.augs_attn.0.index_matrix"])
    assert torch.equal(layer.index_matrix, official)
    weight = layer.weight_list[layer.index_matrix]
    block = dim // 4  # each block is circulant: every row is the previous one rotated by one
    torch.testing.assert_close(weight[1:block, :block], weight[: block - 1, :block].roll(1, dims=1))


def test_macs_match_official():
    model = ghostzoo.create_model("augvit_small_circulant2").eval()
    for m in model.modules():  # fvcore cannot see timm's fused attention; count the same arithmetic
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
    x = torch.zeros(1, 3, 224, 224)
    macs = FlopCountAnalysis(model, x).total()
    assert macs == load_golden("augvit_small_circulant2")["macs_batch1"]["value"]


def test_baseline_equals_timm_deit_small(deit_s):
    reference, _, model = deit_s
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-5)


def test_other_resolution_at_load_and_forward_time(deit_s):
    """A 224 checkpoint in a model built at 288 equals timm's ViT resized by timm, and the 224 model
    fed 288 images."""
    reference_224, path, model_224 = deit_s
    reference = timm.create_model("vit_small_patch16_224", img_size=288).eval()
    reference.load_state_dict(timm_vit_filter(dict(reference_224.state_dict()), reference))
    model = ghostzoo.create_model("augvit_small", img_size=288, checkpoint_path=path).eval()
    assert model.pos_embed.shape == (1, 18 * 18 + 1, 384)
    x = torch.randn(1, 3, 288, 288)
    with torch.no_grad():
        y = model(x)
        torch.testing.assert_close(y, reference(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model_224(x), y, rtol=1e-5, atol=1e-5)


def test_feature_info(deit_s):
    model = deit_s[2]
    assert [(f["num_chs"], f["reduction"]) for f in model.feature_info] == [(384, 16)] * 12
