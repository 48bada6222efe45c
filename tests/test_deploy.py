"""ghostzoo.deploy.reparameterize: exact on every family of the zoo, safe on any module graph."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import ghostzoo
from ghostzoo.deploy import fold_batchnorms, reparameterize
from ghostzoo.layers.lego_conv import LegoConv2d
from ghostzoo.layers.vconv import VConv2d
from ghostzoo.profile import profile_model
from ghostzoo.registry import model_entries

from golden import load_golden, relative_error
from reference import CNN_FAMILIES, randomize_batchnorm, small_variants_first, smallest_per_family


def _with_real_bn_statistics(model: nn.Module) -> nn.Module:
    """Fresh models have identity BatchNorm; folding only proves something with real statistics."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)
    return model.eval()


@pytest.mark.parametrize("name", sorted(smallest_per_family()))
def test_every_family_deploys_to_the_same_outputs(name):
    """float64, so that a near-tie (ViG's k-NN) cannot flip on rounding differences."""
    model = _with_real_bn_statistics(ghostzoo.create_model(name))
    x = torch.randn(1, *ghostzoo.get_pretrained_cfg(name).input_size, generator=torch.Generator().manual_seed(1))
    params = ghostzoo.count_params(model)
    model, x = model.double(), x.double()
    with torch.no_grad():
        before = model(x)
    assert ghostzoo.deploy.reparameterize(model) is model and not model.training
    with torch.no_grad():
        after = model(x)
    assert after.shape == before.shape
    assert relative_error(after, before) <= 1e-9
    if model_entries()[name].family not in ("legonet", "versatile_filters"):  # these two share stored filters
        assert ghostzoo.count_params(model) <= params  # between convolutions; their deploy forms do not


CONVOLUTIONS = (nn.modules.conv._ConvNd, VConv2d, LegoConv2d)


def _cnns() -> list[str]:
    """Every registered model of a CNN family: a CNN registered later is covered without a change here."""
    return sorted(name for name, entry in model_entries().items() if entry.family in CNN_FAMILIES)


def _batchnorms_run(model: nn.Module, x: torch.Tensor) -> list[tuple[str, str | None]]:
    """The BatchNorms that run on ``x``, each with the convolution whose output it takes (None if none)."""
    made_by: dict[int, str] = {}
    ran: list[tuple[str, str | None]] = []
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, CONVOLUTIONS):
            hooks.append(m.register_forward_hook(lambda _m, _i, out, n=name: made_by.__setitem__(id(out), n)))
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            hooks.append(m.register_forward_pre_hook(lambda _m, inp, n=name: ran.append((n, made_by.get(id(inp[0]))))))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return ran


def test_the_cnn_list_is_the_zoo():
    assert len(_cnns()) == 42 and {
        "tinynet_e",
        "ghostnet_x1_3_ssld",
        "lego_vgg16",
        "vcnn_vgg19_bn",
        "g_ghost_regnetx_320",
    } <= set(_cnns())


@pytest.mark.parametrize("name", small_variants_first(_cnns()))
def test_every_cnn_folds_into_plain_convolutions(name):
    """Random weights, BatchNorms with real statistics: the deploy form gives the same logits and runs
    no BatchNorm at all (so none that follows a convolution; none of these CNNs has one elsewhere,
    e.g. after an add, and Ghost-ResNet's unused official bn1/bn2 never run)."""
    torch.manual_seed(0)
    model = randomize_batchnorm(ghostzoo.create_model(name)).eval()
    side = min(64, ghostzoo.get_pretrained_cfg(name).input_size[-1])
    x = torch.randn(2, 3, side, side)
    assert any(conv for _, conv in _batchnorms_run(model, x)) or name.startswith("vcnn") and "_bn" not in name
    with torch.no_grad():
        before = model(x)
        after = reparameterize(model)(x)
    assert relative_error(after, before) <= 1e-4
    assert _batchnorms_run(model, x) == []
    assert hasattr(model, "forward_features") and model.feature_info  # still the same model class


def test_ghostnetv3_goes_beyond_its_own_reparameterize(tmp_path):
    """deploy.reparameterize = the official deploy form (model.reparameterize()) + BN folding."""
    from golden import golden_weights_module, save_golden_checkpoint

    g = load_golden("ghostnetv3_100")
    model = ghostzoo.create_model(
        "ghostnetv3_100", checkpoint_path=save_golden_checkpoint("ghostnetv3_100", tmp_path / "w.pth")
    )
    x = golden_weights_module().input_from_golden(g)
    reparameterize(model)
    assert not [k for k in model.state_dict() if "_rpr_" in k]
    with torch.no_grad():
        assert relative_error(model(x), torch.tensor(g["output"]["logits"])) <= 1e-4
    prof = profile_model(model)
    assert prof.params < g["reparameterized"]["params"] < g["params"]
    assert prof.macs < g["reparameterized"]["macs_batch1"] < g["macs_batch1"]["value"]


def test_no_op_where_there_is_nothing_to_fold():
    model = ghostzoo.create_model("ghostnet_050").eval()
    reparameterize(model)  # now nothing is left to fold
    state = {k: v.clone() for k, v in model.state_dict().items()}
    kinds = [type(m) for m in model.modules()]
    reparameterize(model)
    assert [type(m) for m in model.modules()] == kinds
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())

    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    assert fold_batchnorms(plain) == 0  # a BatchNorm after an activation is not a conv's


def test_features_only_wrapper(tmp_path):
    model = _with_real_bn_statistics(ghostzoo.create_model("ghostnetv3_050"))
    torch.save(model.state_dict(), tmp_path / "w.pth")
    backbone = ghostzoo.create_model("ghostnetv3_050", checkpoint_path=tmp_path / "w.pth", features_only=True).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = backbone(x)
        after = reparameterize(backbone)(x)
    for a, b in zip(after, before):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


class _ConvOutputUsedTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y


class _SharedConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv2d(4, 4, 1)
        self.a = nn.Sequential(conv, nn.BatchNorm2d(4))
        self.b = nn.Sequential(conv, nn.BatchNorm2d(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(x)


class _Untraceable(nn.Module):
    """Data-dependent control flow: fx cannot trace it, adjacency in nn.Sequential still works."""

    def __init__(self) -> None:
        super().__init__()
        self.seq = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.conv = nn.Conv2d(4, 4, 1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.seq(x)
        if x.mean() > 0:
            x = x * 2
        return self.bn(self.conv(x))


@pytest.mark.parametrize("module, folds", [(_ConvOutputUsedTwice, 0), (_SharedConv, 0), (_Untraceable, 1)])
def test_only_provably_equivalent_pairs_are_folded(module, folds):
    model = _with_real_bn_statistics(module())
    x = torch.randn(2, 3 if module is not _SharedConv else 4, 8, 8)
    with torch.no_grad():
        before = model(x)
        assert fold_batchnorms(model) == folds
        torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-6)
