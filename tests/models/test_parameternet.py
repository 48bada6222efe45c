"""ParameterNet-600M: official parity, the published numbers, and a one-line int8 refusal that says why
(the model surface: tests/test_model_contract.py)."""

from __future__ import annotations

import pytest
import torch

import ghostzoo
from ghostzoo.layers import DynamicConv
from ghostzoo.quantization import UnsupportedModelError, prepare

from golden import check_golden, load_golden


def test_matches_official_logits(tmp_path):
    check_golden("parameternet_600m", tmp_path)


def test_cfg_carries_the_official_numbers():
    cfg = ghostzoo.get_pretrained_cfg("parameternet_600m")
    assert cfg.published.params == load_golden("parameternet_600m")["params"]
    assert (cfg.published.macs, cfg.published.top1) == (600_000_000, 81.6)


def test_dynamic_convolutions_mix_their_experts_per_image():
    """Each image gets its own kernel: a batch of two equals the two images run one by one, and
    differs from running the second image with the first image's mixture."""
    torch.manual_seed(0)
    conv = DynamicConv(8, 16, 3, 1, 1).eval()
    x = torch.randn(2, 8, 12, 12)
    with torch.no_grad():
        together = conv(x)
        alone = torch.cat([conv(x[:1]), conv(x[1:])])
        mixed_for_first = conv.cond_conv(x[1:], torch.sigmoid(conv.routing(x[:1].mean((2, 3)))))
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(mixed_for_first, together[1:], atol=1e-3)


def test_int8_is_refused_in_one_line_saying_why():
    model = ghostzoo.create_model("parameternet_600m").eval()
    with pytest.raises(UnsupportedModelError, match=r"no int8 path \(its dynamic convolutions mix a kernel per image"):
        prepare(model, input_size=64)
