"""GhostNet v1: official parity, timm parity, published sizes, and the common model surface."""

from __future__ import annotations

import pytest
import timm
import torch

import ghostzoo
from ghostzoo.profile import profile_model

from golden import check_golden, load_golden
from reference import randomize_batchnorm

WIDTHS = ["ghostnet_050", "ghostnet_100", "ghostnet_130"]
OFFICIAL_PARAMS = {"ghostnet_050": 2_587_292, "ghostnet_100": 5_182_508, "ghostnet_130": 7_358_820}


@pytest.mark.parametrize("name", WIDTHS)
def test_matches_official_logits(name, tmp_path):
    check_golden(name, tmp_path)


@pytest.mark.parametrize("name", WIDTHS)
def test_sizes_match_official_and_published(name):
    model = ghostzoo.create_model(name)
    golden = load_golden(name)
    prof = profile_model(model)
    assert prof.params == golden["params"] == OFFICIAL_PARAMS[name]
    assert ghostzoo.get_pretrained_cfg(name).published.params == OFFICIAL_PARAMS[name]
    assert prof.macs == golden["macs_batch1"]["value"]  # fvcore's count of the official model
    # the paper's FLOP column counts convolutions and the classifier only
    assert prof.conv_linear_macs == pytest.approx(ghostzoo.get_pretrained_cfg(name).published.macs, rel=0.02)


def test_timm_weights_give_identical_logits(tmp_path):
    torch.manual_seed(0)
    reference = timm.create_model("ghostnet_100", pretrained=False).eval()
    # timm initialises BN to identity; give the running stats real values so they matter
    randomize_batchnorm(reference)
    path = tmp_path / "timm_ghostnet_100.pth"
    torch.save(reference.state_dict(), path)
    model = ghostzoo.create_model("ghostnet_100", checkpoint_path=path).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


@pytest.mark.parametrize("size", [32, 33, 47, 64, 97, 160, 224, 320])
def test_any_input_size_from_32_at_batch_1(size):
    model = ghostzoo.create_model("ghostnet_050").eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, size, size))
    assert y.shape == (1, 1000) and torch.isfinite(y).all()


def test_non_square_input_and_batch_1_equals_batch_row():
    model = ghostzoo.create_model("ghostnet_100").eval()
    x = torch.randn(3, 3, 96, 160)
    with torch.no_grad():
        full = model(x)
        single = model(x[1:2])
    torch.testing.assert_close(single, full[1:2], rtol=1e-4, atol=1e-5)


def test_forward_features_head_and_pre_logits():
    model = ghostzoo.create_model("ghostnet_100").eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 960, 7, 7)
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (2, 1280)
        torch.testing.assert_close(model.forward_head(feats), model(x))
        torch.testing.assert_close(model.classifier(pre), model(x))


def test_reset_classifier():
    model = ghostzoo.create_model("ghostnet_100").eval()
    model.reset_classifier(37)
    assert model.num_classes == 37
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 37)
    model.reset_classifier(0)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1280)


def test_num_classes_and_drop_rate_arguments():
    model = ghostzoo.create_model("ghostnet_100", num_classes=10, drop_rate=0.5)
    assert model.classifier.out_features == 10 and model.drop_rate == 0.5


def test_feature_info_strides_and_features_only():
    model = ghostzoo.create_model("ghostnet_100")
    assert [f["reduction"] for f in model.feature_info] == [2, 4, 8, 16, 32]
    backbone = ghostzoo.create_model("ghostnet_100", features_only=True).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        maps = backbone(x)
    assert [m.shape[1] for m in maps] == [f["num_chs"] for f in model.feature_info] == [16, 24, 40, 112, 960]
    assert [224 // m.shape[-1] for m in maps] == [2, 4, 8, 16, 32]


def test_features_only_out_indices_and_pruning(tmp_path):
    model = ghostzoo.create_model("ghostnet_100").eval()
    path = tmp_path / "w.pth"
    torch.save(model.state_dict(), path)
    backbone = ghostzoo.create_model("ghostnet_100", checkpoint_path=path, features_only=True,
                                     out_indices=(2, 3, 4)).eval()
    assert [f["reduction"] for f in backbone.feature_info] == [8, 16, 32]
    x = torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        maps = backbone(x)
        torch.testing.assert_close(maps[-1], model.forward_features(x))
    assert [m.shape[-2:] for m in maps] == [(16, 20), (8, 10), (4, 5)]
    shallow = ghostzoo.create_model("ghostnet_100", features_only=True, out_indices=(0, 1))
    # everything after the stride-4 tap is gone: far fewer parameters than the classifier model
    assert ghostzoo.count_params(shallow) < 10_000
    with pytest.raises(ghostzoo.GhostzooError, match="out of range"):
        ghostzoo.create_model("ghostnet_100", features_only=True, out_indices=(5,))
