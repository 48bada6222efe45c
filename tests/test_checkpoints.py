"""Checkpoint sources (path, URL, hub), formats (official, timm, ghostzoo), and every way they go wrong."""

from __future__ import annotations

import functools
import http.server
import pickle
import shutil
import socket
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import ghostzoo
from ghostzoo.checkpoints import cache_dir, save_checkpoint

from golden import load_golden, save_golden_checkpoint


@pytest.fixture(scope="module")
def official_sd(tmp_path_factory) -> dict:
    """ghostnet_050's golden weights: real official key names, non-trivial values."""
    path = save_golden_checkpoint("ghostnet_050", tmp_path_factory.mktemp("golden") / "g.pth")
    return torch.load(path, weights_only=True)


def _logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def reference(official_sd, x) -> torch.Tensor:
    model = ghostzoo.create_model("ghostnet_050")
    model.load_state_dict(official_sd)
    return _logits(model, x)


def _load(path, **kwargs) -> torch.nn.Module:
    return ghostzoo.create_model("ghostnet_050", checkpoint_path=path, **kwargs)


# --- formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize("filename", ["bare.pth", "bare.pth.tar", "no_suffix"])
def test_bare_state_dict_any_suffix(filename, official_sd, tmp_path, x, reference):
    torch.save(official_sd, tmp_path / filename)
    torch.testing.assert_close(_logits(_load(tmp_path / filename), x), reference, rtol=0, atol=0)


def test_state_dict_wrapper_with_thop_counters_and_module_prefix(official_sd, tmp_path, x, reference):
    noisy = {f"module.{k}": v for k, v in official_sd.items()}
    noisy.update(
        {
            "module.conv_stem.total_ops": torch.zeros(1, dtype=torch.float64),
            "module.conv_stem.total_params": torch.zeros(1, dtype=torch.float64),
            "module.total_ops": torch.zeros(1, dtype=torch.float64),
        }
    )
    torch.save({"state_dict": noisy, "epoch": 300, "best_acc1": torch.tensor(73.98)}, tmp_path / "wrapped.pth.tar")
    torch.testing.assert_close(_logits(_load(tmp_path / "wrapped.pth.tar"), x), reference, rtol=0, atol=0)


def test_state_dict_ema_wrapper_and_switch(official_sd, tmp_path, x, reference):
    ema = {k: (v * 0.5 if v.is_floating_point() and k.endswith("weight") else v) for k, v in official_sd.items()}
    ema_model = ghostzoo.create_model("ghostnet_050")
    ema_model.load_state_dict(ema)
    ema_reference = _logits(ema_model, x)
    assert not torch.allclose(ema_reference, reference)

    torch.save({"state_dict_ema": ema}, tmp_path / "ema_only.pth")
    torch.testing.assert_close(_logits(_load(tmp_path / "ema_only.pth"), x), ema_reference, rtol=0, atol=0)

    torch.save({"state_dict": official_sd, "state_dict_ema": ema}, tmp_path / "both.pth")
    torch.testing.assert_close(_logits(_load(tmp_path / "both.pth"), x), reference, rtol=0, atol=0)
    torch.testing.assert_close(_logits(_load(tmp_path / "both.pth", use_ema=True), x), ema_reference, rtol=0, atol=0)
    with pytest.raises(ghostzoo.CheckpointError, match="no EMA weights"):
        _load(_save(tmp_path / "raw.pth", {"state_dict": official_sd}), use_ema=True)


def _save(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


def test_timm_training_checkpoint_with_namespace_args(official_sd, tmp_path, x, reference):
    import argparse

    obj = {"epoch": 3, "arch": "ghostnet_050", "state_dict": official_sd, "args": argparse.Namespace(lr=0.1)}
    torch.testing.assert_close(_logits(_load(_save(tmp_path / "timm.pth.tar", obj)), x), reference, rtol=0, atol=0)


def test_safetensors(official_sd, tmp_path, x, reference):
    save_file({k: v.contiguous() for k, v in official_sd.items()}, str(tmp_path / "w.safetensors"))
    torch.testing.assert_close(_logits(_load(tmp_path / "w.safetensors"), x), reference, rtol=0, atol=0)


@pytest.mark.parametrize("filename", ["own.pth", "own.safetensors"])
def test_ghostzoo_format_round_trip(filename, official_sd, tmp_path, x, reference):
    model = ghostzoo.create_model("ghostnet_050")
    model.load_state_dict(official_sd)
    path = save_checkpoint(tmp_path / filename, model, "ghostnet_050")
    assert [p.name for p in tmp_path.iterdir()] == [filename]  # no temp file left behind
    torch.testing.assert_close(_logits(_load(path), x), reference, rtol=0, atol=0)


def test_ghostzoo_checkpoint_of_another_architecture_is_named(tmp_path):
    path = save_checkpoint(tmp_path / "w.pth", ghostzoo.create_model("ghostnet_100"), "ghostnet_100")
    with pytest.raises(ghostzoo.CheckpointError, match="ghostzoo checkpoint of ghostnet_100, not ghostnet_050"):
        _load(path)


# --- fitting -------------------------------------------------------------------------------------


def test_other_num_classes_keeps_backbone_and_reinitialises_head(official_sd, tmp_path, x):
    path = _save(tmp_path / "w.pth", official_sd)
    with pytest.warns(UserWarning, match="re-initialising the head"):
        model = _load(path, num_classes=37)
    assert model.classifier.out_features == 37
    for k, v in model.state_dict().items():
        if not k.startswith("classifier."):
            assert torch.equal(v, official_sd[k]), k
    assert not torch.equal(model.classifier.weight[:37], official_sd["classifier.weight"][:37])


def test_wrong_checkpoint_names_missing_unexpected_and_shapes(official_sd, tmp_path):
    broken = dict(official_sd)
    broken.pop("blocks.0.0.ghost1.primary_conv.0.weight")
    broken["blocks.0.0.extra.weight"] = torch.zeros(1)
    broken["conv_head.weight"] = torch.zeros(1280, 7, 1, 1)
    with pytest.raises(ghostzoo.CheckpointError) as err:
        _load(_save(tmp_path / "broken.pth", broken))
    msg = str(err.value)
    assert "\n" not in msg
    assert "missing 1: blocks.0.0.ghost1.primary_conv.0.weight" in msg
    assert "unexpected 1: blocks.0.0.extra.weight" in msg
    assert "conv_head.weight (1280, 7, 1, 1) vs model (1280, 480, 1, 1)" in msg


def test_checkpoint_of_another_width_is_refused(tmp_path):
    path = _save(tmp_path / "w100.pth", ghostzoo.create_model("ghostnet_100").state_dict())
    with pytest.raises(ghostzoo.CheckpointError, match="does not fit ghostnet_050: .*wrong shape"):
        _load(path)


def test_in_chans_adapts_first_conv(official_sd, tmp_path):
    model = _load(_save(tmp_path / "w.pth", official_sd), in_chans=1)
    expected = official_sd["conv_stem.weight"].sum(dim=1, keepdim=True)
    torch.testing.assert_close(model.conv_stem.weight, expected)


# --- bad files -----------------------------------------------------------------------------------


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ghostzoo.CheckpointError, match="checkpoint not found"):
        _load(tmp_path / "nope.pth")
    with pytest.raises(ghostzoo.CheckpointError, match="not a file"):
        _load(tmp_path)


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, b"PK\x03\x04truncated zip"])
def test_corrupt_file(content, tmp_path):
    path = tmp_path / "corrupt.pth"
    path.write_bytes(content)
    with pytest.raises(ghostzoo.CheckpointError, match="cannot read checkpoint .*not a valid PyTorch or safetensors"):
        _load(path)


def test_truncated_checkpoint(official_sd, tmp_path):
    path = _save(tmp_path / "w.pth", official_sd)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ghostzoo.CheckpointError, match="cannot read checkpoint"):
        _load(path)


class _Exploit:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


def test_loading_is_safe_against_pickled_code(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": _Exploit()}, f, protocol=2)
    with pytest.raises(ghostzoo.CheckpointError) as refused:
        _load(path)
    assert "arbitrary code ran" not in capsys.readouterr().out
    assert str(refused.value) == (
        f"cannot read checkpoint {path}: it holds pickled code, which ghostzoo never runs "
        "(Unsupported global: GLOBAL print was not an allowed global by default)"
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(official_sd, tmp_path, value):
    """A diverged run's weights would predict 'nan%' with exit 0; they are refused when loaded."""
    sd = {k: v.clone() for k, v in official_sd.items()}
    key = "blocks.3.0.ghost1.primary_conv.0.weight"
    sd[key].view(-1)[5] = value
    path = _save(tmp_path / "broken.pth", sd)
    with pytest.raises(ghostzoo.CheckpointError, match=rf"holds NaN or infinite weights in 1 tensor\(s\), {key} first"):
        _load(path)


def test_not_a_state_dict(tmp_path):
    with pytest.raises(ghostzoo.CheckpointError, match="no state_dict found"):
        _load(_save(tmp_path / "w.pth", {"epoch": 3, "note": "nothing here"}))
    with pytest.raises(ghostzoo.CheckpointError, match="holds a list"):
        _load(_save(tmp_path / "l.pth", [torch.zeros(1)]))


# --- URLs and the hub ----------------------------------------------------------------------------


def test_file_url_is_downloaded_once_into_the_hub_cache(official_sd, tmp_path, x, reference):
    source = _save(tmp_path / "state_dict_test.pth", official_sd)
    model = _load(source.as_uri())
    cached = cache_dir() / "state_dict_test.pth"
    assert cached.is_file() and cached.read_bytes() == source.read_bytes()
    assert [p.name for p in cached.parent.iterdir()] == ["state_dict_test.pth"]  # no partial files
    torch.testing.assert_close(_logits(model, x), reference, rtol=0, atol=0)
    source.unlink()  # the second load must come from the cache
    torch.testing.assert_close(_logits(_load(source.as_uri()), x), reference, rtol=0, atol=0)


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on loopback serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_download_and_missing_url(official_sd, http_root, x, reference):
    root, base = http_root
    _save(root / "ghost.pth", official_sd)
    torch.testing.assert_close(_logits(_load(f"{base}/ghost.pth"), x), reference, rtol=0, atol=0)
    with pytest.raises(ghostzoo.CheckpointError, match="could not download .*--checkpoint PATH"):
        _load(f"{base}/absent.pth")
    assert not (cache_dir() / "absent.pth").exists()


def test_offline_pretrained_download_fails_in_one_line(monkeypatch):
    with socket.socket() as s:  # a port nobody listens on: what an offline machine sees
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import dataclasses

    from ghostzoo import registry

    entry = registry.get_model_entry("ghostnet_100")
    cfg = dataclasses.replace(entry.cfgs["in1k"], url=f"http://127.0.0.1:{port}/state_dict_73.98.pth")
    monkeypatch.setitem(entry.cfgs, "in1k", cfg)
    with pytest.raises(ghostzoo.CheckpointError) as err:
        ghostzoo.create_model("ghostnet_100", pretrained=True)
    assert "\n" not in str(err.value) and "offline" in str(err.value) and "--checkpoint" in str(err.value)
    assert not cache_dir().exists() or not any(cache_dir().iterdir())  # nothing half-written


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """A Hugging Face cache laid out as the hub client writes it, used offline."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)

    def add(repo: str, filename: str, source: Path) -> None:
        revision = "0123456789abcdef0123456789abcdef01234567"
        base = tmp_path / "hf" / f"models--{repo.replace('/', '--')}"
        (base / "snapshots" / revision).mkdir(parents=True)
        (base / "refs").mkdir()
        (base / "refs" / "main").write_text(revision)
        shutil.copy(source, base / "snapshots" / revision / filename)

    return add


def test_hf_hub_id_resolves_through_the_hub_cache(official_sd, hf_cache, tmp_path, x, reference):
    save_file({k: v.contiguous() for k, v in official_sd.items()}, str(tmp_path / "model.safetensors"))
    hf_cache("someone/ghostnet_050.test", "model.safetensors", tmp_path / "model.safetensors")
    model = _load("hf-hub:someone/ghostnet_050.test")
    torch.testing.assert_close(_logits(model, x), reference, rtol=0, atol=0)


def test_pretrained_uses_hf_hub_id_when_cfg_has_no_url(official_sd, hf_cache, tmp_path, monkeypatch):
    import dataclasses

    from ghostzoo import registry

    weights = ghostzoo.create_model("ghostnet_100").state_dict()
    torch.save(weights, tmp_path / "pytorch_model.bin")
    hf_cache("timm/ghostnet_100.in1k", "pytorch_model.bin", tmp_path / "pytorch_model.bin")
    entry = registry.get_model_entry("ghostnet_100")
    monkeypatch.setitem(entry.cfgs, "in1k", dataclasses.replace(entry.cfgs["in1k"], url=""))
    model = ghostzoo.create_model("ghostnet_100", pretrained=True)
    assert torch.equal(model.conv_stem.weight, weights["conv_stem.weight"])


def test_hf_hub_offline_miss_is_one_line(hf_cache):
    with pytest.raises(ghostzoo.CheckpointError) as err:
        _load("hf-hub:nobody/nothing")
    assert "\n" not in str(err.value) and "--checkpoint" in str(err.value)


def test_unreachable_hub_fails_at_once_in_one_line(hf_cache, monkeypatch):
    """Without HF_HUB_OFFLINE, an unreachable hub is reported at once, not after a minute of retries."""
    import socket

    import huggingface_hub
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)

    def no_network(address, timeout=None):
        raise OSError("[Errno -2] Name or service not known")

    real_download = huggingface_hub.hf_hub_download

    def cache_only(*args, local_files_only=False, **kwargs):
        assert local_files_only, "the hub was called although it cannot be reached"
        return real_download(*args, local_files_only=True, **kwargs)

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", cache_only)
    with pytest.raises(ghostzoo.CheckpointError) as err:
        _load("hf-hub:nobody/nothing")
    assert str(err.value) == (
        "hf-hub:nobody/nothing is not in the local cache and the hub cannot be reached (huggingface.co: [Errno -2] "
        "Name or service not known); fetch the file on a machine that is online and pass it with --checkpoint PATH"
    )


def test_pretrained_without_released_weights():
    with pytest.raises(ghostzoo.CheckpointError, match="no pretrained weights for ghostnet_050"):
        ghostzoo.create_model("ghostnet_050", pretrained=True)


def test_official_ghostnet_100_cfg_names_url_and_timm_hub_id():
    cfg = ghostzoo.get_pretrained_cfg("ghostnet_100")
    assert cfg.url.endswith("ghostnet_pytorch/models/state_dict_73.98.pth")
    assert cfg.hf_hub_id == "timm/ghostnet_100.in1k"
    assert load_golden("ghostnet_100")["params"] == cfg.published.params
