"""Exported files carry their cfg and run through the same validate / predict paths as PyTorch models."""

from __future__ import annotations

import warnings

import onnx
import pytest
import torch

from ghostzoo import create_model
from ghostzoo.cli import main
from ghostzoo.deploy.runtime import load_exported, write_onnx_metadata
from ghostzoo.errors import CheckpointError


def _export(model: torch.nn.Module, path, with_metadata: bool = True) -> None:
    x = torch.randn(1, *model.pretrained_cfg.input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            dynamic_axes={"input": {0: "batch"}},
        )
    proto = onnx.load(str(path))
    if with_metadata:
        write_onnx_metadata(proto, model.pretrained_cfg, note="test")
    onnx.save(proto, str(path))


@pytest.fixture(scope="module")
def imagenette_onnx(tmp_path_factory):
    model = create_model("ghostnet_100.imagenette", pretrained=True).eval()
    path = tmp_path_factory.mktemp("onnx") / "ghostnet_100_imagenette.onnx"
    _export(model, path)
    return model, path


def test_exported_file_restores_cfg_and_logits(imagenette_onnx):
    model, path = imagenette_onnx
    runtime = load_exported(path, "ghostnet_100")
    assert runtime.pretrained_cfg == model.pretrained_cfg  # classes, input size, preprocessing, metrics
    assert runtime.num_classes == 10 and runtime.extra == {"note": "test"}
    x = torch.randn(3, *model.pretrained_cfg.input_size)
    with torch.no_grad():
        expected = model(x)
    got = runtime(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_predict_accepts_an_exported_file(imagenette_onnx, capsys):
    _, path = imagenette_onnx
    assert main(["demo", "--checkpoint", str(path)]) == 0
    torch_out = capsys.readouterr().out
    assert main(["demo"]) == 0
    assert capsys.readouterr().out == torch_out  # same top-3, probabilities and accuracy, to the printed digit


def test_exported_file_of_another_model_is_refused(imagenette_onnx):
    _, path = imagenette_onnx
    with pytest.raises(CheckpointError, match="holds ghostnet_100, not tinynet_a"):
        load_exported(path, "tinynet_a")


@pytest.mark.parametrize("content", [b"", b"not an onnx file"])
def test_corrupt_or_foreign_files_give_one_line(tmp_path, content, capsys):
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    assert main(["predict", "ghostnet_100", str(path), "--checkpoint", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "is not a runnable ONNX model" in err and len(err.splitlines()) == 1


def test_onnx_without_ghostzoo_metadata_is_refused(tmp_path):
    model = create_model("ghostnet_050", num_classes=3).eval()
    path = tmp_path / "plain.onnx"
    _export(model, path, with_metadata=False)
    with pytest.raises(CheckpointError, match="not exported by ghostzoo"):
        load_exported(path)
