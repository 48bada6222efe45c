"""The model contract: every registered model has the same surface (timm's), checked on real inputs.

Each model is built once with ``num_classes=7`` and ``drop_rate=0.25`` (seeded; BatchNorm given the
statistics of a real batch and, like LayerNorm, non-identity affine values, so that a skipped or
misplaced norm changes the numbers and no layer's output fades to nothing) and run on a small
non-square batch. The tests then hold it to:

- ``forward``: logits ``[B, num_classes]``, finite, depending on the input;
- ``forward_features`` then ``forward_head`` is ``forward``; the features have ``num_features``
  channels at the deepest ``feature_info`` stride (a map, or tokens with the class token first);
- ``forward_head(pre_logits=True)`` then the cfg's ``classifier`` module is ``forward``; the
  pre-logits of a token model are its class token (or, without one, the average token);
- ``reset_classifier(n)`` gives ``n`` outputs from the same backbone, ``reset_classifier(0)`` the
  pre-logits;
- with the published head the parameter count is the published one, and the official
  implementation's (the golden file's; ``test_profile.py`` compares params and MACs of a freshly
  built model with those too);
- ``feature_info``: the modules it names give maps (or tokens) of its channels and strides, the
  deepest one where ``forward_features`` ends (up to a final norm);
- ``features_only`` with ``out_indices``: the activations of the requested levels as maps, the
  classifier gone; ``forward_intermediates`` gives them with the output of ``forward_features``;
- the rest of timm's contract: ``get_classifier``, ``no_weight_decay`` (what the official code
  keeps out of weight decay, and timm's optimizer factory does), ``set_grad_checkpointing`` (the
  same gradients from fewer saved activations), and a ``pretrained_cfg`` that timm's data config reads.

Family-specific behaviour (official / timm parity, other resolutions, reparameterization, the
k-NN graph, ...) is tested in ``tests/models``.
"""

from __future__ import annotations

import copy
import itertools
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, Tuple

import pytest
import timm.data
import torch
import torch.nn as nn
from timm.models.efficientnet import EfficientNet
from timm.optim import create_optimizer_v2

import ghostzoo
from ghostzoo.errors import GhostzooError
from ghostzoo.models import create_feature_net
from ghostzoo.registry import PretrainedCfg, model_entries

from conftest import GOLDEN_DIR
from golden import load_golden
from reference import calibrate_batchnorm, randomize_layernorm, small_variants_first, smallest_per_family

NAMES = ghostzoo.list_models()
NUM_CLASSES = 7  # not any model's default, so the argument has to reach the head
DROP_RATE = 0.25
BATCH = 2


def input_size(model: nn.Module) -> Tuple[int, int]:
    """As small as the model allows: one or two pixels wide at the deepest stride (at least 32 px),
    non-square, so that a swapped height and width shows."""
    side = max(32, max(f["reduction"] for f in model.feature_info))
    return side, 2 * side


def grid(x: torch.Tensor, reduction: int) -> Tuple[int, int]:
    """The map size at stride ``reduction`` for the input ``x`` (rounded up, as padded convolutions do)."""
    return tuple(math.ceil(s / reduction) for s in x.shape[-2:])


def as_map(output, size: Tuple[int, int]) -> torch.Tensor:
    """A tapped module's output as a ``[B, C, H, W]`` map: the last tensor of a tuple (TNT blocks
    pass words and sentences), and tokens ``[B, prefix + H * W, C]`` without the prefix tokens."""
    if isinstance(output, (tuple, list)):
        output = output[-1]
    if output.dim() == 3:
        tokens = output[:, output.shape[1] - size[0] * size[1] :]
        return tokens.transpose(1, 2).reshape(output.shape[0], -1, *size)
    return output


@dataclass
class Subject:
    name: str
    cfg: PretrainedCfg
    model: nn.Module
    x: torch.Tensor
    logits: torch.Tensor
    feats: torch.Tensor
    pre: torch.Tensor
    taps: Dict[str, object]  # feature_info module -> its output during forward_features


@pytest.fixture(scope="module", params=small_variants_first(NAMES))
def subject(request) -> Subject:
    """One model at a time (pytest groups the tests by model), with its outputs on one input."""
    name = request.param
    cfg = ghostzoo.get_pretrained_cfg(name)
    torch.manual_seed(0)
    model = ghostzoo.create_model(name, num_classes=NUM_CLASSES, drop_rate=DROP_RATE)
    size = input_size(model)
    calibrate_batchnorm(randomize_layernorm(model), torch.randn(BATCH, 3, *size))
    x = torch.randn(BATCH, 3, *size)
    taps: Dict[str, object] = {}

    def keep(module_name):
        def hook(module, args, output):  # cloned: a later in-place op must not change it
            taps[module_name] = tuple(t.clone() for t in output) if isinstance(output, tuple) else output.clone()

        return hook

    handles = [model.get_submodule(f["module"]).register_forward_hook(keep(f["module"])) for f in model.feature_info]
    with torch.no_grad():
        feats = model.forward_features(x)
        for handle in handles:
            handle.remove()
        pre = model.forward_head(feats, pre_logits=True)
        logits = model(x)
    return Subject(name, cfg, model, x, logits, feats, pre, taps)


def shallow_copy(model: nn.Module) -> nn.Module:
    """A copy of the module tree sharing the parameters and buffers: pruning modules of the copy
    leaves the original whole, and costs little even for 150M parameters."""
    memo = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    return copy.deepcopy(model, memo)


def classify(classifier: nn.Module, pre: torch.Tensor) -> torch.Tensor:
    """The classifier on pre-logits ``[B, D]``: a linear layer, or ViG's 1x1 convolution."""
    if isinstance(classifier, nn.Conv2d):
        return classifier(pre[:, :, None, None]).flatten(1)
    return classifier(pre)


def test_forward_gives_finite_logits_that_depend_on_the_input(subject):
    assert subject.model.num_classes == NUM_CLASSES
    assert subject.logits.shape == (BATCH, NUM_CLASSES)
    assert torch.isfinite(subject.logits).all()
    # well above the tolerance of the comparisons below, so that those can fail
    spread = (subject.logits[0] - subject.logits[1]).abs().max()
    assert spread > max(1e-3, 1e-4 * subject.logits.abs().max())


def test_drop_rate_reaches_the_head(subject):
    model = subject.model
    rates = [m.p for m in model.modules() if isinstance(m, nn.Dropout) and m.p > 0]
    if hasattr(model, "drop_rate"):  # applied in forward_head
        assert model.drop_rate == DROP_RATE
    else:  # dropout layers inside the head (ViG, the VGGs)
        assert rates
    assert all(p == DROP_RATE for p in rates)


def test_forward_features_then_forward_head_is_forward(subject):
    model, feats = subject.model, subject.feats
    h, w = grid(subject.x, model.feature_info[-1]["reduction"])
    if feats.dim() == 4:
        assert feats.shape == (BATCH, model.num_features, h, w)
    else:  # tokens, the class token (if any) first
        prefix = 1 if hasattr(model, "cls_token") else 0
        assert feats.shape == (BATCH, prefix + h * w, model.num_features)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_head(feats), subject.logits)


def test_pre_logits_then_classifier_is_forward(subject):
    model, feats, pre = subject.model, subject.feats, subject.pre
    assert pre.shape == (BATCH, getattr(model, "head_hidden_size", model.num_features))
    if feats.dim() == 3:  # tokens: the class token where there is one, else their average
        torch.testing.assert_close(pre, feats[:, 0] if hasattr(model, "cls_token") else feats.mean(1))
    classifier = model.get_submodule(subject.cfg.classifier)
    with torch.no_grad():
        torch.testing.assert_close(classify(classifier, pre), subject.logits)


@contextmanager
def reset_classifier(subject: Subject, num_classes: int) -> Iterator[nn.Module]:
    """The subject's model with ``reset_classifier(num_classes)``; its own classifier is put back
    afterwards (copying the model instead would cost more than all the checks)."""
    model, name = subject.model, subject.cfg.classifier
    classifier, width = model.get_submodule(name), model.num_classes
    try:
        model.reset_classifier(num_classes)
        yield model
    finally:
        model.set_submodule(name, classifier)
        model.num_classes = width


def test_reset_classifier_changes_the_width_and_keeps_the_backbone(subject):
    feats, width = subject.feats, subject.cfg.num_classes
    with torch.no_grad():
        with reset_classifier(subject, width) as model:
            assert model.num_classes == width
            y = model.forward_head(feats)
            assert y.shape == (BATCH, width) and torch.isfinite(y).all()
            torch.testing.assert_close(model.forward_head(feats, pre_logits=True), subject.pre)
        with reset_classifier(subject, 0) as model:
            assert model.num_classes == 0
            torch.testing.assert_close(model(subject.x), subject.pre)  # no classifier: forward gives the pre-logits


def test_params_with_the_published_head_are_the_published_and_official_count(subject):
    published = subject.cfg.published.params
    if published is None:
        pytest.skip(f"no published parameter count for {subject.name}")
    with reset_classifier(subject, subject.cfg.num_classes) as model:
        params = ghostzoo.count_params(model)
    assert params == published
    if (GOLDEN_DIR / f"{subject.name}.json").exists():  # the official implementation's count
        assert params == load_golden(subject.name)["params"]


def test_feature_info_describes_the_activations_of_its_modules(subject):
    model, x = subject.model, subject.x
    for f in model.feature_info:
        h, w = grid(x, f["reduction"])
        out = subject.taps[f["module"]]
        out = out[-1] if isinstance(out, tuple) else out
        if out.dim() == 3:  # tokens, after the class token if there is one
            prefix = 1 if hasattr(model, "cls_token") else 0
            assert out.shape == (BATCH, prefix + h * w, f["num_chs"]), f
        else:
            assert out.shape == (BATCH, f["num_chs"], h, w), f

    # the deepest level is where forward_features ends: at most a final norm (or, in timm's
    # EfficientNet, the 1x1 head convolution) follows it
    last = model.feature_info[-1]
    deepest = as_map(subject.taps[last["module"]], grid(x, last["reduction"]))
    with torch.no_grad():
        if isinstance(model, EfficientNet):
            torch.testing.assert_close(model.bn2(model.conv_head(deepest)), subject.feats)
        elif subject.feats.dim() == 3:
            tokens = deepest.flatten(2).transpose(1, 2)
            torch.testing.assert_close(model.norm(tokens), subject.feats[:, -tokens.shape[1] :])
        elif hasattr(model, "norm"):
            torch.testing.assert_close(model.norm(deepest), subject.feats)
        else:
            torch.testing.assert_close(deepest, subject.feats)


def test_features_only_returns_the_activations_of_the_requested_levels(subject):
    model, info = subject.model, subject.model.feature_info
    levels = tuple(range(len(info) - 1, -1, -2))[::-1]  # every other level, up to the deepest
    backbone = create_feature_net(shallow_copy(model), out_indices=levels)  # as create_model(features_only=True)
    assert backbone.feature_info.channels() == [info[i]["num_chs"] for i in levels]  # timm's FeatureInfo
    assert backbone.feature_info.reduction() == [info[i]["reduction"] for i in levels]
    with torch.no_grad():
        maps = backbone(subject.x)
    assert len(maps) == len(levels)
    for i, fmap in zip(levels, maps):
        f = info[i]
        assert fmap.shape == (BATCH, f["num_chs"], *grid(subject.x, f["reduction"])), f
        torch.testing.assert_close(
            fmap, as_map(subject.taps[f["module"]], fmap.shape[-2:]), msg=lambda m, f=f: f"{f}: {m}"
        )
    classifier = model.get_submodule(subject.cfg.classifier)
    assert ghostzoo.count_params(backbone) <= ghostzoo.count_params(model) - ghostzoo.count_params(classifier)


def test_forward_intermediates_gives_the_feature_maps_and_forward_features(subject):
    model, info, x = subject.model, subject.model.feature_info, subject.x
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
    torch.testing.assert_close(final, subject.feats)
    assert len(maps) == len(info)
    for f, fmap in zip(info, maps):
        torch.testing.assert_close(fmap, as_map(subject.taps[f["module"]], grid(x, f["reduction"])))
    assert len(last_two) == 2
    for a, b in zip(last_two, maps[-2:]):
        torch.testing.assert_close(a, b)


def test_get_classifier_is_the_head(subject):
    assert subject.model.get_classifier() is subject.model.get_submodule(subject.cfg.classifier)
    with reset_classifier(subject, 0) as model:
        assert isinstance(model.get_classifier(), nn.Identity)


# What each official implementation's no_weight_decay() returns (tnt_pytorch/tnt.py,
# tnt_pytorch/pyramid_tnt.py, augvit_pytorch/models/augvit.py); the other families define none.
OFFICIAL_NO_WEIGHT_DECAY = {
    "tnt": {"outer_pos", "inner_pos", "cls_token"},
    "pyramid_tnt": {"outer_pos", "inner_pos"},
    "augvit": {"pos_embed", "cls_token"},
}


def test_no_weight_decay_is_the_official_list_and_timms_optimizer_follows_it(subject):
    model = subject.model
    names = model.no_weight_decay()
    assert names == OFFICIAL_NO_WEIGHT_DECAY.get(model_entries()[subject.name].family, set())
    params = dict(model.named_parameters())
    groups = create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05).param_groups
    undecayed = {id(p) for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    assert {id(params[n]) for n in names} <= undecayed
    assert any(g["weight_decay"] == 0.05 for g in groups)


def test_timm_reads_the_models_own_preprocessing(subject):
    cfg = subject.model.pretrained_cfg
    assert timm.data.resolve_model_data_config(subject.model) == {
        "input_size": cfg.input_size,
        "interpolation": cfg.interpolation,
        "mean": cfg.mean,
        "std": cfg.std,
        "crop_pct": cfg.crop_pct,
        "crop_mode": "center",
    }


@pytest.mark.parametrize("name", sorted(smallest_per_family()))
def test_grad_checkpointing_gives_the_same_gradients_from_fewer_saved_activations(name):
    torch.manual_seed(0)
    model = ghostzoo.create_model(name, num_classes=NUM_CLASSES).train()
    x = torch.randn(BATCH, 3, *input_size(model))

    def backward(enable: bool):
        model.set_grad_checkpointing(enable)
        model.zero_grad()
        saved = []  # activation bytes kept for the backward pass, outside the checkpointed blocks
        weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

        def pack(t):
            if t.untyped_storage().data_ptr() not in weights:
                saved.append(t.numel() * t.element_size())
            return t

        torch.manual_seed(1)  # the same dropout masks
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = model(x).square().mean()
        loss.backward()
        return sum(saved), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain_bytes, plain = backward(False)
    checkpointed_bytes, checkpointed = backward(True)
    assert checkpointed_bytes < 0.5 * plain_bytes
    assert checkpointed.keys() == plain.keys()
    for n, grad in plain.items():
        torch.testing.assert_close(checkpointed[n], grad, msg=lambda m, n=n: f"{n}: {m}")


def test_timm_arguments_ghostzoo_does_not_take_are_refused():
    model = ghostzoo.create_model("ghostnet_050")
    x = torch.randn(1, 3, 64, 64)
    for call, message in (
        (lambda: model.forward_intermediates(x, indices=9), "indices=9: this model has 5 feature levels"),
        (lambda: model.forward_intermediates(x, indices=[3, 1]), "indices must be increasing"),
        (lambda: model.forward_intermediates(x, output_fmt="NHWC"), "output_fmt 'NHWC'"),
        (lambda: model.reset_classifier(10, global_pool="max"), "global_pool='max'"),
        (lambda: model.prune_intermediate_layers(2, prune_head=False), "prune_head=True"),
    ):
        with pytest.raises(GhostzooError, match=message):
            call()
