"""ghostzoo.deploy.export_model and `ghostzoo export`: deployable files that reproduce PyTorch."""

from __future__ import annotations

import json

import onnx
import pytest
import torch

import ghostzoo
from ghostzoo.cli import main
from ghostzoo.deploy import ExportError, dynamic_shape_ops, export_model, load_exported

from golden import relative_error


@pytest.fixture(scope="module")
def imagenette_model():
    return ghostzoo.create_model("ghostnet_100.imagenette", pretrained=True).eval()


@pytest.mark.parametrize("fmt, suffix", [("onnx", ".onnx"), ("openvino", ".xml"), ("torchscript", ".pt"),
                                         ("pt2", ".pt2")])
def test_every_format_runs_as_the_model_it_came_from(imagenette_model, tmp_path, fmt, suffix):
    report = export_model(imagenette_model, fmt, tmp_path / f"m{suffix}", dynamic_batch=True)
    assert report.max_rel_error <= 1e-4 and report.dynamic_batch
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"m{s}" for s in
                                                                 ({".xml", ".bin"} if fmt == "openvino" else {suffix}))
    runtime = load_exported(tmp_path / f"m{suffix}", "ghostnet_100")
    assert runtime.pretrained_cfg == imagenette_model.pretrained_cfg  # classes, 128 px, preprocessing
    x = torch.randn(3, 3, 128, 128)  # a batch size the export did not trace
    with torch.no_grad():
        assert relative_error(runtime(x), imagenette_model(x)) <= 1e-4


def test_onnx_graph_is_static_checked_and_of_the_deploy_form(imagenette_model, tmp_path):
    report = export_model(imagenette_model, "onnx", tmp_path / "m.onnx", dynamic_batch=True)
    proto = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 17
    ops = {n.op_type for n in proto.graph.node}
    assert "BatchNormalization" not in ops and {"Shape", "Gather", "Range"}.isdisjoint(ops)
    assert dynamic_shape_ops(proto) == report.dynamic_ops == []
    assert report.ops == {op: sum(n.op_type == op for n in proto.graph.node) for op in ops}


def test_export_leaves_the_model_unchanged(imagenette_model, tmp_path):
    state = {k: v.clone() for k, v in imagenette_model.state_dict().items()}
    export_model(imagenette_model, "onnx", tmp_path / "m.onnx")
    assert imagenette_model.state_dict().keys() == state.keys()
    assert all(torch.equal(imagenette_model.state_dict()[k], v) for k, v in state.items())


def test_failed_parity_writes_nothing(imagenette_model, tmp_path):
    with pytest.raises(ExportError, match="differs from the reference"):
        export_model(imagenette_model, "openvino", tmp_path / "m.xml", tolerance=0.0)
    assert list(tmp_path.iterdir()) == []


def test_cli_export_then_validate_the_file(tmp_path, capsys):
    out = tmp_path / "g.xml"
    assert main(["export", "ghostnet_100.imagenette", "--format", "openvino", "--output", str(out),
                 "--report", str(tmp_path / "r.json")]) == 0
    printed = capsys.readouterr().out
    assert "static (no shape ops)" in printed and "openvino" in printed
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["paths"] == [str(out), str(out.with_suffix(".bin"))] and report["max_rel_error"] <= 1e-4
    assert main(["demo", "--checkpoint", str(out)]) == 0
    exported = capsys.readouterr().out
    assert main(["demo"]) == 0
    assert capsys.readouterr().out == exported


@pytest.mark.parametrize("argv, message", [
    (["ghostnet_100.imagenette", "--format", "onnx", "--output", "x.xml"], "--format onnx writes a .onnx file"),
    (["ghostnet_050", "--format", "onnx", "--output", "x.onnx"], "has no released weights"),
    (["no_such_net", "--format", "onnx", "--output", "x.onnx"], "unknown model"),
    (["ghostnet_100", "--format", "pt2", "--output", "x.pt2", "--random-weights", "--int8", "q.onnx"],
     "a pt2 file cannot hold an int8 ONNX model"),
    (["ghostnet_100", "--format", "onnx", "--output", "x.onnx", "--int8", "missing.onnx"], "not found"),
])
def test_bad_export_requests_give_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(["export", *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
