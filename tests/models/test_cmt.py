"""CMT: official parity, the published numbers, other resolutions (attention-bias resampling) and
checkpoints from another size (the model surface: tests/test_model_contract.py)."""

from __future__ import annotations

import pytest
import torch

import ghostzoo
from ghostzoo.profile import profile_model

from golden import check_golden, load_golden
from reference import small_variants_first

NATIVE = {"cmt_ti": 160, "cmt_xs": 192, "cmt_s": 224, "cmt_b": 256}
# the paper's Table 3 (FLOPs, G) and the official cmt_pytorch/README.md (top-1)
PUBLISHED = {"cmt_ti": (0.6, 79.0), "cmt_xs": (1.5, 81.8), "cmt_s": (4.0, 83.5), "cmt_b": (9.3, 84.5)}


@pytest.mark.parametrize("name", small_variants_first(list(NATIVE)))
def test_matches_official_logits(name, tmp_path):
    assert load_golden(name)["input"]["shape"][2:] == [NATIVE[name]] * 2
    check_golden(name, tmp_path)


@pytest.mark.parametrize("name", list(NATIVE))
def test_cfg_carries_the_official_numbers_and_preprocessing(name):
    cfg = ghostzoo.get_pretrained_cfg(name)
    assert cfg.published.params == load_golden(name)["params"]
    gflops, top1 = PUBLISHED[name]
    assert (cfg.published.macs, cfg.published.top1) == (pytest.approx(gflops * 1e9), top1)
    assert cfg.input_size == (3, NATIVE[name], NATIVE[name]) and cfg.interpolation == "bicubic"
    assert cfg.url.startswith("https://github.com/ggjy/CMT.pytorch/releases/download/release-v1/")


def test_macs_equal_the_official_count():
    golden = load_golden("cmt_ti")
    assert profile_model(ghostzoo.create_model("cmt_ti"), (3, 160, 160)).macs == golden["macs_batch1"]["value"]


@pytest.mark.parametrize("size", [224, 96])
def test_a_checkpoint_from_another_size_equals_forward_time_resampling(size, tmp_path):
    """A model built at ``size`` from the 160 checkpoint equals the 160 model fed ``size`` images:
    the attention biases are resampled the same way at load and at forward time."""
    torch.manual_seed(0)
    model_160 = ghostzoo.create_model("cmt_ti").eval()
    path = tmp_path / "cmt_ti_160.pth"
    torch.save(model_160.state_dict(), path)
    model = ghostzoo.create_model("cmt_ti", img_size=size, checkpoint_path=path).eval()
    grid = size // 4
    assert model.relative_pos_a.shape == (1, grid * grid, (grid // 8) ** 2)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        y = model(x)
        torch.testing.assert_close(model_160(x), y, rtol=1e-5, atol=1e-5)
    assert y.shape == (2, 1000) and torch.isfinite(y).all()
