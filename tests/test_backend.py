"""--backend: the same predictions from every runtime, exported once into a cache, and eager (with
one logged line) when a runtime is missing or an export fails its check."""

from __future__ import annotations

import json
import logging

import pytest
import torch

import ghostzoo
import ghostzoo.deploy.backend as backend
from ghostzoo.cli import main
from ghostzoo.deploy.export import ExportError
from ghostzoo.errors import GhostzooError
from ghostzoo.inference import demo_images

TAG = "ghostnet_100.imagenette"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTZOO_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def photos():
    model = ghostzoo.create_model(TAG, pretrained=True).eval()
    transform = ghostzoo.data.create_transform(model.pretrained_cfg)
    images = sorted(p for p in demo_images().rglob("*") if p.suffix.lower() in (".jpeg", ".jpg"))
    return model, torch.stack([transform(ghostzoo.data.read_image(p)) for p in images])


@pytest.mark.parametrize("name", ["onnxruntime", "openvino"])
def test_a_runtime_gives_the_eager_logits_and_exports_once(name, photos, monkeypatch):
    model, x = photos
    fast = backend.with_backend(model, name)
    assert type(fast).__name__ == {"onnxruntime": "OnnxRuntimeModel", "openvino": "OpenVinoModel"}[name]
    assert fast.pretrained_cfg.class_names == model.pretrained_cfg.class_names
    with torch.no_grad():
        reference = model(x)
    got = fast(x)
    assert float((got - reference).abs().max() / reference.abs().max()) <= 1e-4
    assert torch.equal(got.argmax(1), reference.argmax(1))

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(backend, "export_model", no_export)
    backend.with_backend(model, name)  # the cached file, not a second export


def test_auto_takes_the_fastest_runtime_installed(monkeypatch):
    cpu = torch.device("cpu")
    assert backend.resolve_backend("auto", cpu) == "openvino"  # both are installed with the test extras
    monkeypatch.setattr(backend, "installed", lambda name: name == "onnxruntime")
    assert backend.resolve_backend("auto", cpu) == "onnxruntime"
    monkeypatch.setattr(backend, "installed", lambda name: False)
    assert backend.resolve_backend("auto", cpu) == "eager"
    with pytest.raises(GhostzooError, match="--backend openvino runs on the CPU"):
        backend.resolve_backend("openvino", torch.device("meta"))


def test_a_missing_runtime_or_a_failed_export_runs_eager_and_says_so(photos, monkeypatch, caplog):
    model, _ = photos
    caplog.set_level(logging.WARNING, logger="ghostzoo")
    monkeypatch.setattr(backend, "installed", lambda name: False)
    assert backend.with_backend(model, "onnxruntime") is model
    assert "onnxruntime is not installed" in caplog.text

    def failing(*args, **kwargs):
        raise ExportError("ONNX Runtime: relative error 0.3 > 0.0001")

    monkeypatch.setattr(backend, "installed", lambda name: True)
    monkeypatch.setattr(backend, "export_model", failing)
    assert backend.with_backend(model, "openvino") is model
    assert f"{TAG}: the openvino export failed (ONNX Runtime: relative error 0.3" in caplog.text


def test_predict_gives_the_same_labels_on_every_backend(tmp_path):
    tops = {}
    for name in ("eager", "onnxruntime", "openvino", "auto"):
        out = tmp_path / f"{name}.json"
        assert main(["predict", TAG, str(demo_images()), "--backend", name, "--output", str(out)]) == 0
        preds = json.loads(out.read_text())["predictions"]
        tops[name] = [(p["path"], p["topk"][0]["label"]) for p in preds]
    assert tops["onnxruntime"] == tops["openvino"] == tops["auto"] == tops["eager"]


def test_a_new_head_travels_into_the_export():
    """A model built for its own classes keeps them on a runtime: validate maps labels by the model's
    class count, so an export that claimed the cfg's 1000 classes would index past its 10 logits."""
    model = ghostzoo.create_model("ghostnet_050", num_classes=10).eval()
    assert model.pretrained_cfg.num_classes == 10
    fast = backend.with_backend(model, "onnxruntime")
    assert fast.num_classes == fast.pretrained_cfg.num_classes == 10


@pytest.mark.slow  # inductor's C++ compilation takes about a minute on a 2-core CPU
def test_compile_gives_the_eager_logits(photos):
    model, x = photos
    compiled = backend.with_backend(model, "compile")
    assert compiled.pretrained_cfg is model.pretrained_cfg and compiled.num_classes == model.num_classes
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)
