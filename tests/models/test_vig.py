"""ViG and Pyramid ViG: official parity (float64), sizes, other resolutions, the k-NN graph (the model
surface: tests/test_model_contract.py)."""

from __future__ import annotations

import weakref

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import ghostzoo
from ghostzoo.layers import DynamicGraphConv2d, knn_graph, max_over_neighbours, neighbour_choices
from ghostzoo.models.vig import relative_pos_table, resize_relative_pos
from ghostzoo.profile import profile_model

from golden import check_golden, load_golden
from reference import small_variants_first

VIG = ["vig_ti_224_gelu", "vig_s_224_gelu", "vig_b_224_gelu"]
PVIG = ["pvig_ti_224_gelu", "pvig_s_224_gelu", "pvig_m_224_gelu", "pvig_b_224_gelu"]
# the official vig_pytorch/readme.md table
README_TOP1 = {
    "vig_ti_224_gelu": 73.9,
    "vig_s_224_gelu": 80.4,
    "vig_b_224_gelu": 82.3,
    "pvig_ti_224_gelu": 78.5,
    "pvig_s_224_gelu": 82.1,
    "pvig_m_224_gelu": 83.1,
    "pvig_b_224_gelu": 83.7,
}


@pytest.mark.parametrize("name", small_variants_first(VIG + PVIG))
def test_matches_official_logits_in_float64(name, tmp_path):
    # check_golden runs model and input under .double() for these 'fragile' files, at 1e-6
    assert load_golden(name)["numerics"]["fragile"]
    check_golden(name, tmp_path)


@pytest.mark.parametrize("name", small_variants_first(VIG + PVIG))
def test_trainable_params_and_published_numbers(name):
    # the model's params and MACs equal the official ones: test_model_contract.py, test_profile.py
    model = ghostzoo.create_model(name)
    golden, cfg = load_golden(name), ghostzoo.get_pretrained_cfg(name)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == golden["params_trainable"]  # relative_pos is frozen, as officially
    assert profile_model(model).macs == pytest.approx(cfg.published.macs, rel=0.02)
    assert cfg.published.top1 == README_TOP1[name]


def test_eval_cfgs():
    for name in VIG + PVIG:
        cfg = ghostzoo.get_pretrained_cfg(name)
        assert cfg.mean == cfg.std == (0.5, 0.5, 0.5)
        assert cfg.interpolation == "bicubic" and cfg.input_size == (3, 224, 224)
        assert cfg.crop_pct == (0.95 if name == "pvig_b_224_gelu" else 0.9)
        assert cfg.url.startswith("https://github.com/huawei-noah/Efficient-AI-Backbones/releases/download/")
    assert ghostzoo.get_pretrained_cfg("pvig_s_224_gelu").url.endswith("/pyramid-vig/pvig_s_82.1.pth.tar")
    assert ghostzoo.get_pretrained_cfg("vig_ti_224_gelu").url.endswith("/vig/vig_ti_74.5.pth")


def test_relative_pos_of_a_fresh_model_equals_the_official_construction():
    # values printed by the official pyramid_vig.pvig_ti_224_gelu() (Grapher.relative_pos)
    model = ghostzoo.create_model("pvig_ti_224_gelu")
    first = model.backbone[0][0].relative_pos  # 56x56 queries, keys pooled by 4
    last = model.backbone[14][0].relative_pos  # 7x7 nodes, no pooling
    assert first.shape == (1, 3136, 196) and last.shape == (1, 49, 49)
    assert not first.requires_grad
    torch.testing.assert_close(
        first[0, [0, 1000, 3135], [0, 57, 195]],
        torch.tensor([-0.8338831663, -0.8174843192, -0.8338831663]),
        rtol=0,
        atol=1e-7,
    )
    torch.testing.assert_close(
        last[0, [0, 3, 48], [0, 10, 24]], torch.tensor([-1.0, -0.9857492447, -0.8206377625]), rtol=0, atol=1e-7
    )
    assert first.double().sum().item() == pytest.approx(-379748.0522695184, rel=1e-9)
    assert last.double().sum().item() == pytest.approx(-2118.3598561286926, rel=1e-9)


def test_resize_relative_pos_is_identity_at_the_native_grid_and_separates_queries_from_keys():
    table = relative_pos_table(48, 14, 2)  # 14x14 queries, 7x7 keys
    assert torch.equal(resize_relative_pos(table, (14, 14), (7, 7)), table)
    assert resize_relative_pos(table, (14, 28), (7, 14)).shape == (1, 14 * 28, 7 * 14)
    # resized in 2-D, not along the flattened index: a term that depends on the key row only
    # still depends on the key row only after resizing queries and keys
    by_key_row = table.reshape(196, 7, 7)[:, :, :1].expand(196, 7, 7).reshape(1, 196, 49)
    resized = resize_relative_pos(by_key_row, (20, 20), (10, 10)).reshape(400, 10, 10)
    torch.testing.assert_close(resized, resized[:, :, :1].expand_as(resized))
    flat = F.interpolate(by_key_row[None], size=(400, 100), mode="bicubic", align_corners=False)
    flat = flat.reshape(400, 10, 10)  # what the official resize would give: no longer row-only
    assert (flat - flat[:, :, :1]).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["vig_ti_224_gelu", "pvig_ti_224_gelu"])
@pytest.mark.parametrize("size", [64, 160, 224, 320, 448])
def test_other_resolutions(name, size):
    # the official code fails with topk at 64 and needs hand-resized embeddings at 448
    model = ghostzoo.create_model(name).eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, size, size))
    assert y.shape == (1, 1000) and torch.isfinite(y).all()


def test_non_square_input_and_batch_1_equals_batch_row():
    model = ghostzoo.create_model("pvig_ti_224_gelu").eval().double()
    x = torch.randn(3, 3, 96, 128, dtype=torch.float64)
    with torch.no_grad():
        full = model(x)
        single = model(x[1:2])
    torch.testing.assert_close(single, full[1:2], rtol=1e-9, atol=1e-9)


def _brute_force_neighbours(x, y, k, dilation, relative_pos=None):
    dist = torch.cdist(x.transpose(1, 2), y.transpose(1, 2)) ** 2
    if relative_pos is not None:
        dist = dist + relative_pos
    return dist.argsort(dim=-1)[..., : k * dilation : dilation]


@pytest.mark.parametrize("k,dilation,num_keys", [(9, 1, 49), (9, 3, 196), (9, 4, 16), (9, 2, 4)])
def test_knn_graph_equals_brute_force_and_caps_to_the_graph(k, dilation, num_keys):
    torch.manual_seed(0)
    x = F.normalize(torch.randn(2, 24, 64, dtype=torch.float64), dim=1)
    y = F.normalize(torch.randn(2, 24, num_keys, dtype=torch.float64), dim=1)
    rel = -torch.rand(1, 64, num_keys, dtype=torch.float64)
    for relative_pos in (None, rel):
        got = knn_graph(x, y, k, dilation, relative_pos)
        k_eff = min(k, num_keys)
        d_eff = max(1, min(dilation, num_keys // k_eff))
        assert got.shape == (2, 64, k_eff)
        assert torch.equal(got, _brute_force_neighbours(x, y, k_eff, d_eff, relative_pos))


def test_neighbour_choices_record_and_replay():
    """Replaying a recording reproduces the model exactly; other lists change the logits, and the
    slack says how far they are from the nearest; a replay of the wrong length or shape is refused."""
    torch.manual_seed(0)
    model = ghostzoo.create_model("pvig_ti_224_gelu", num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        with neighbour_choices() as recorded:
            logits = model(x)
        assert len(recorded.choices) == 12 and recorded.choices[0].shape == (2, 16 * 16, 9)
        with neighbour_choices(replay=recorded.choices) as replay:
            assert torch.equal(model(x), logits)
        assert replay.slack == 0.0
        shifted = [c.roll(1, dims=1) for c in recorded.choices]  # each node takes the previous one's list
        with neighbour_choices(replay=shifted) as replay:
            assert not torch.allclose(model(x), logits)
        assert replay.slack > 1e-3
        too_few = recorded.choices[:-1]
        with pytest.raises(ValueError, match="more than the 11 graphs"), neighbour_choices(replay=too_few):
            model(x)
        with pytest.raises(ValueError, match="shape"), neighbour_choices(replay=[c[:1] for c in recorded.choices]):
            model(x)
        assert torch.equal(model(x), logits)  # outside the blocks the model chooses by itself again


def test_max_over_neighbours_equals_gather_then_max():
    torch.manual_seed(0)
    y = torch.randn(2, 5, 30)
    idx = torch.randint(0, 30, (2, 40, 7))
    reference = torch.stack([y[b][:, idx[b]] for b in range(2)]).amax(-1)  # [B, C, N, k] -> max
    torch.testing.assert_close(max_over_neighbours(y, idx), reference, rtol=0, atol=0)


class _LargeTensorWatch(TorchDispatchMode):
    """Counts how many distinct tensors of at least ``numel`` elements are alive at once."""

    def __init__(self, numel: int) -> None:
        super().__init__()
        self.numel, self.alive, self.max_alive = numel, [], 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        live = [t for t in (r() for r in self.alive) if t is not None]
        ptrs = {t.untyped_storage().data_ptr() for t in live}  # in-place results are not new tensors
        for t in outs:
            if isinstance(t, torch.Tensor) and t.numel() >= self.numel and t.untyped_storage().data_ptr() not in ptrs:
                live.append(t)
                ptrs.add(t.untyped_storage().data_ptr())
        self.alive = [weakref.ref(t) for t in live]
        self.max_alive = max(self.max_alive, len(live))
        return out


def test_graph_conv_builds_one_distance_matrix_and_no_gathered_neighbour_tensor():
    torch.manual_seed(0)
    batch, chs, side, k = 2, 32, 24, 9
    conv = DynamicGraphConv2d(chs, 2 * chs, k=k, dilation=2, reduction=2).eval()
    x = torch.randn(batch, chs, side, side)
    rel = torch.randn(1, side * side, (side // 2) ** 2)
    num_nodes, num_keys = side * side, (side // 2) ** 2
    # the one [B, N, M] score matrix (165888 elements; features [B, 2C, N] have 73728)
    watch = _LargeTensorWatch(batch * num_nodes * num_keys)
    with watch, torch.no_grad():
        conv(x, rel)
    assert watch.max_alive == 1
    # nothing of the size of all gathered neighbours, [B, C, N, k] = 331776 elements
    watch = _LargeTensorWatch(batch * chs * num_nodes * k)
    with watch, torch.no_grad():
        conv(x)
    assert watch.max_alive == 0


def test_runs_and_trains_in_float64_and_float32():
    model = ghostzoo.create_model("pvig_ti_224_gelu", num_classes=5)
    for dtype in (torch.float32, torch.float64):
        model = model.to(dtype).train()
        loss = model(torch.randn(2, 3, 64, 64, dtype=dtype)).square().mean()
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
        model.zero_grad(set_to_none=True)


def test_checkpoint_with_another_head_keeps_backbone(tmp_path):
    source = ghostzoo.create_model("pvig_ti_224_gelu").eval()
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    with pytest.warns(UserWarning, match="re-initialising the head"):
        model = ghostzoo.create_model("pvig_ti_224_gelu", checkpoint_path=path, num_classes=37).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(
            model.forward_head(model.forward_features(x), pre_logits=True),
            source.forward_head(source.forward_features(x), pre_logits=True),
        )


def test_feature_info_and_isotropic_features_only():
    model = ghostzoo.create_model("pvig_ti_224_gelu")
    assert [(f["num_chs"], f["reduction"]) for f in model.feature_info] == [(48, 4), (96, 8), (240, 16), (384, 32)]
    iso = ghostzoo.create_model("vig_ti_224_gelu", features_only=True, out_indices=(3, 7)).eval()
    assert [(f["num_chs"], f["reduction"]) for f in iso.feature_info] == [(192, 16)] * 2
    # blocks after the last tap and the head are gone
    assert ghostzoo.count_params(iso) < ghostzoo.count_params(ghostzoo.create_model("vig_ti_224_gelu")) * 0.75
