"""--backend: the same predictions from every runtime, exported once into a cache, and eager (with
one logged line) when a runtime is missing or an export fails its check."""

from __future__ import annotations

import json
import logging

import pytest
import torch

import ghostzoo
import ghostzoo.deploy.backend as backend
import ghostzoo.quantization.backend as int8_backend
from ghostzoo.cli import main
from ghostzoo.deploy.export import ExportError
from ghostzoo.errors import GhostzooError
from ghostzoo.inference import demo_images

from conftest import DATA_DIR, require

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


def _no_quantize(*args, **kwargs):
    raise AssertionError("quantized again")


def test_int8_precision_quantizes_once_into_the_cache(photos, monkeypatch):
    """The Python API on ONNX Runtime (the command line's OpenVINO default: the demo test below)."""
    model, x = photos
    fast = int8_backend.int8_runtime(model, demo_images(), "onnxruntime", calib_size=10)
    assert type(fast).__name__ == "OnnxRuntimeModel" and fast.extra["quantization"]["calibration_images"] == 10
    assert fast.pretrained_cfg.class_names == model.pretrained_cfg.class_names
    with torch.no_grad():
        agree = float((fast(x).argmax(1) == model(x).argmax(1)).float().mean())
    assert agree >= 0.9  # the bar of tests/test_quantization.py: int8 vs fp32 top-1 on real photos
    monkeypatch.setattr(int8_backend, "quantize", _no_quantize)
    assert int8_backend.int8_runtime(model, demo_images(), "onnxruntime", calib_size=10).path == fast.path
    with pytest.raises(AssertionError, match="quantized again"):  # other calibration settings: another file
        int8_backend.int8_runtime(model, demo_images(), "onnxruntime", calib_size=9)


def test_int8_precision_refuses_what_it_cannot_serve(photos, tmp_path):
    model, _ = photos
    with pytest.raises(GhostzooError, match="runs on openvino or onnxruntime, not on eager"):
        int8_backend.int8_runtime(model, demo_images(), "eager")
    with pytest.raises(GhostzooError, match="runs on the CPU, not on --device meta"):
        int8_backend.int8_runtime(model, demo_images(), device="meta")
    with pytest.raises(GhostzooError, match="has no int8 path"):
        int8_backend.int8_runtime(ghostzoo.create_model("parameternet_600m"), demo_images())
    with pytest.raises(GhostzooError, match=r"int8 needs calibration images: run ghostzoo.quantization.int8_runtime"):
        backend.with_backend(model, "auto", "int8")  # the fp32 backends' entry point says where int8 is
    with pytest.raises(GhostzooError, match="calibration folder not found"):
        int8_backend.int8_runtime(model, tmp_path / "none")
    assert not (tmp_path / "cache").exists()  # nothing cached for a refused request


def test_an_int8_file_that_fails_its_check_runs_fp32_and_says_so(photos, monkeypatch, caplog, tmp_path):
    model, _ = photos
    caplog.set_level(logging.WARNING, logger="ghostzoo")

    def failing(model, data, path, *args, **kwargs):
        path.parent.mkdir(parents=True)  # as the atomic write does before the check fails
        raise ExportError("OpenVINO output differs from the reference by 0.0771 relative (> 0.05)")

    monkeypatch.setattr(int8_backend, "quantize", failing)
    assert int8_backend.int8_runtime(model, demo_images(), "openvino") is model
    assert f"{TAG}: the int8 openvino file failed (OpenVINO output differs" in caplog.text
    assert list((tmp_path / "cache" / "exported").iterdir()) == []  # no empty cache entry left behind


def test_demo_with_int8_precision_runs_the_openvino_int8_file_from_the_cache(capsys, tmp_path, monkeypatch):
    argv = ["demo", "--precision", "int8", "--calib-size", "10"]  # auto: OpenVINO
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "/10 correct" in first
    assert sorted(p.name for p in (tmp_path / "cache" / "exported").glob("*-int8-*/*")) == ["model.bin", "model.xml"]
    monkeypatch.setattr(int8_backend, "quantize", _no_quantize)
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert "quantized ghostnet_100.imagenette to int8 once" in first and "quantized" not in again
    assert again.splitlines()[-1] == first.splitlines()[-1]  # "...: N/10 correct (top-1 ...)"


def test_validate_int8_does_not_calibrate_on_the_images_it_measures(capsys):
    """A --data without a train split would calibrate on the measured images themselves."""
    val = require(DATA_DIR / "imagenette-160" / "val")
    assert main(["validate", TAG, "--data", str(val), "--precision", "int8"]) == 1
    err = capsys.readouterr().err
    assert err == f"ghostzoo validate: error: --precision int8: {val} has no train split to calibrate on; " + (
        "pass --calib-data DIR\n"
    )
