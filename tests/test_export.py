"""ghostzoo.deploy.export_model and `ghostzoo export`: deployable files that reproduce PyTorch."""

from __future__ import annotations

import importlib.util
import json

import onnx
import pytest
import torch
from test_cli import assert_one_line_error

import ghostzoo
from ghostzoo.cli import main
from ghostzoo.deploy import ExportError, dynamic_shape_ops, export_model, load_exported
from ghostzoo.deploy.export import NEIGHBOUR_SLACK
from ghostzoo.layers import DynamicGraphConv2d
from ghostzoo.registry import model_entries

from golden import relative_error
from reference import CNN_FAMILIES, randomize_batchnorm, smallest_per_family


@pytest.fixture(scope="module")
def imagenette_model():
    return ghostzoo.create_model("ghostnet_100.imagenette", pretrained=True).eval()


@pytest.mark.parametrize(
    "fmt, suffix", [("onnx", ".onnx"), ("openvino", ".xml"), ("torchscript", ".pt"), ("pt2", ".pt2")]
)
def test_every_format_runs_as_the_model_it_came_from(imagenette_model, tmp_path, fmt, suffix):
    report = export_model(imagenette_model, fmt, tmp_path / f"m{suffix}", dynamic_batch=True)
    assert report.max_rel_error <= 1e-4 and report.dynamic_batch
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"m{s}" for s in ({".xml", ".bin"} if fmt == "openvino" else {suffix})
    )
    runtime = load_exported(tmp_path / f"m{suffix}", "ghostnet_100")
    assert runtime.pretrained_cfg == imagenette_model.pretrained_cfg  # classes, input size, preprocessing
    x = torch.randn(3, *imagenette_model.pretrained_cfg.input_size)  # a batch size the export did not trace
    with torch.no_grad():
        assert relative_error(runtime(x), imagenette_model(x)) <= 1e-4


def test_onnx_graph_is_static_checked_and_of_the_deploy_form(imagenette_model, tmp_path):
    state = {k: v.clone() for k, v in imagenette_model.state_dict().items()}
    report = export_model(imagenette_model, "onnx", tmp_path / "m.onnx", dynamic_batch=True)
    assert imagenette_model.state_dict().keys() == state.keys()  # the deploy form was made from a copy
    assert all(torch.equal(imagenette_model.state_dict()[k], v) for k, v in state.items())
    proto = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 17
    ops = {n.op_type for n in proto.graph.node}
    assert "BatchNormalization" not in ops and {"Shape", "Gather", "Range"}.isdisjoint(ops)
    assert dynamic_shape_ops(proto) == report.dynamic_ops == []
    assert report.ops == {op: sum(n.op_type == op for n in proto.graph.node) for op in ops}


def test_failed_parity_writes_nothing(imagenette_model, tmp_path):
    with pytest.raises(ExportError, match="differs from the reference"):
        export_model(imagenette_model, "openvino", tmp_path / "m.xml", tolerance=0.0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt, suffix", [("onnx", ".onnx"), ("openvino", ".xml")])
def test_a_graph_that_picks_other_neighbours_fails(tmp_path, monkeypatch, fmt, suffix):
    """The neighbour-replaying check cannot be passed by a wrong graph: one traced to take the
    farthest candidates instead of the nearest is refused, and nothing is written."""
    import ghostzoo.deploy.export as export

    write_onnx, topk = export._write_onnx, torch.Tensor.topk

    def write_farthest(*args, **kwargs):
        monkeypatch.setattr(torch.Tensor, "topk", lambda t, k, dim=-1, **kw: topk(t, k, dim=dim, largest=False))
        try:
            return write_onnx(*args, **kwargs)
        finally:
            monkeypatch.setattr(torch.Tensor, "topk", topk)

    monkeypatch.setattr(export, "_write_onnx", write_farthest)
    torch.manual_seed(0)
    model = ghostzoo.create_model("pvig_ti_224_gelu", num_classes=10)
    with pytest.raises(ExportError, match="chooses neighbours that are not the nearest"):
        export_model(model, fmt, tmp_path / f"m{suffix}", input_size=64)
    assert list(tmp_path.iterdir()) == []


def test_cli_export_then_validate_the_file(tmp_path, capsys):
    out = tmp_path / "g.xml"
    assert (
        main(
            [
                "export",
                "ghostnet_100.imagenette",
                "--format",
                "openvino",
                "--output",
                str(out),
                "--report",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "static (no shape ops)" in printed and "openvino" in printed
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["paths"] == [str(out), str(out.with_suffix(".bin"))] and report["max_rel_error"] <= 1e-4
    assert main(["demo", "--checkpoint", str(out)]) == 0
    exported = capsys.readouterr().out
    assert main(["demo"]) == 0
    assert capsys.readouterr().out == exported


@pytest.mark.parametrize(
    "argv, message",
    [
        (["ghostnet_100.imagenette", "--format", "onnx", "--output", "x.xml"], "--format onnx writes a .onnx file"),
        (["ghostnet_050", "--format", "onnx", "--output", "x.onnx"], "has no released weights"),
        (["no_such_net", "--format", "onnx", "--output", "x.onnx"], "unknown model"),
        (
            ["ghostnet_100", "--format", "pt2", "--output", "x.pt2", "--random-weights", "--int8", "q.onnx"],
            "a pt2 file cannot hold an int8 ONNX model",
        ),
        (["ghostnet_100", "--format", "onnx", "--output", "x.onnx", "--int8", "missing.onnx"], "not found"),
        (
            ["ghostnet_100", "--format", "onnx", "--output", "x.onnx", "--random-weights", "--exporter", "dynamo"]
            + ["--opset", "17"],
            "opset 17 is too old: the dynamo exporter writes 18 or newer",
        ),
    ],
)
def test_bad_export_requests_give_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(["export", *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


# their ONNX export needs the native resolution: TNT, PyramidTNT, AugViT and CMT resample position
# embeddings or biases with antialiased bicubic interpolation (no ONNX op), the versatile VGGs pool
# adaptively to 7x7 (ONNX only takes whole pooling factors)
NATIVE_SIZE_FAMILIES = {"tnt", "pyramid_tnt", "augvit", "cmt", "versatile_filters"}
# ViG and Pyramid ViG choose neighbours; at their native size float32 near-ties swap some, which the
# check must handle (it compares on the file's own choices), so they are exported at that size too
NEIGHBOUR_FAMILIES = {"vig", "pyramid_vig"}


def _every_model():
    """All registered models; beyond the smallest of each family they are marked slow (`pytest -m slow`)."""
    fast = smallest_per_family()
    return [n if n in fast else pytest.param(n, marks=pytest.mark.slow) for n in sorted(model_entries())]


@pytest.mark.parametrize("name", _every_model())
def test_every_model_exports_to_onnx_with_parity(name, tmp_path):
    """Random weights, BatchNorms with real statistics; parity (1e-4 relative) is checked inside
    export_model, which raises otherwise. CNNs export with a free batch dimension and no shape op."""
    entry = model_entries()[name]
    cnn = entry.family in CNN_FAMILIES
    native = entry.default_cfg.input_size[-1]
    side = native if entry.family in NATIVE_SIZE_FAMILIES | NEIGHBOUR_FAMILIES else min(64, native)
    torch.manual_seed(0)
    # the 4096-wide fc6/fc7 of the versatile VGGs (200 MB of weights) would make it the slowest test
    narrow = {"hidden_chs": 64} if entry.family == "versatile_filters" else {}
    model = randomize_batchnorm(ghostzoo.create_model(name, **narrow))
    report = export_model(model, "onnx", tmp_path / "m.onnx", input_size=side, dynamic_batch=cnn)
    proto = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(proto)
    assert report.max_rel_error <= 1e-4 and report.input_shape == (1, 3, side, side)
    neighbours = entry.family in NEIGHBOUR_FAMILIES
    assert (report.neighbour_slack is not None) == neighbours
    if neighbours:
        graphs = sum(isinstance(m, DynamicGraphConv2d) for m in model.modules())
        assert report.neighbour_slack <= NEIGHBOUR_SLACK and report.ops["TopK"] == graphs
    if cnn:
        assert "BatchNormalization" not in report.ops and dynamic_shape_ops(proto) == []


def test_int8_file_goes_to_openvino_and_onnx(imagenette_model, tmp_path, capsys):
    from ghostzoo.data import create_transform, find_images, read_image
    from ghostzoo.inference import demo_images
    from ghostzoo.quantization import quantize_to_onnx

    images, _ = find_images([demo_images()])
    transform = create_transform(imagenette_model.pretrained_cfg)
    int8 = quantize_to_onnx(
        imagenette_model, torch.stack([transform(read_image(p)) for p in images]), tmp_path / "q.onnx"
    )
    assert (
        main(
            [
                "export",
                "ghostnet_100",
                "--int8",
                str(int8),
                "--format",
                "openvino",
                "--output",
                str(tmp_path / "q.xml"),
                "--report",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["int8"] and report["errors"]["openvino"] <= report["tolerance"]
    assert "QuantizeLinear" in report["ops"] and "int8" in capsys.readouterr().out
    x = torch.stack([transform(read_image(p)) for p in images[:4]])
    ort, ov = load_exported(int8), load_exported(tmp_path / "q.xml")
    assert ov.extra == ort.extra and "quantization" in ov.extra  # the scheme travels into the IR
    assert (ov(x).argmax(1) == ort(x).argmax(1)).all()
    assert (
        main(
            ["export", "ghostnet_100", "--int8", str(int8), "--format", "onnx", "--output", str(tmp_path / "copy.onnx")]
        )
        == 0
    )
    assert (tmp_path / "copy.onnx").read_bytes() == int8.read_bytes()


def test_a_float_file_is_not_taken_for_int8(tmp_path, capsys):
    """--int8 carries the file as int8: a float ONNX file would be labelled int8 without being so."""
    float_file = tmp_path / "float.onnx"
    assert main(["export", "ghostnet_050", "--format", "onnx", "--random-weights", "--output", str(float_file)]) == 0
    capsys.readouterr()
    target = tmp_path / "q.xml"
    code = main(["export", "ghostnet_050", "--int8", str(float_file), "--format", "openvino", "--output", str(target)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err == (
        f"ghostzoo export: error: --int8 expects an int8 .onnx file from `ghostzoo quantize`; {float_file} is a "
        "float model"
    )
    assert not target.exists() and not target.with_suffix(".bin").exists()


def test_shape_ops_count_only_when_they_read_the_input():
    """A chain of constants (as the exporter leaves TF SAME padding's pads) is folded by any runtime;
    a shape read off the input is computed at run time."""
    from onnx import TensorProto, helper

    const = helper.make_tensor("n", TensorProto.INT64, [1], [2])
    nodes = [
        helper.make_node("Constant", [], ["c"], value=const),
        helper.make_node("ConstantOfShape", ["c"], ["zeros"]),
        helper.make_node("Pad", ["x", "zeros"], ["padded"], name="pad"),
        helper.make_node("Shape", ["padded"], ["shape"], name="shape"),
        helper.make_node("Reshape", ["padded", "shape"], ["y"], name="reshape"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    proto = helper.make_model(helper.make_graph(nodes, "g", [x], [y]))
    assert dynamic_shape_ops(proto) == ["Shape shape", "Reshape reshape"]


@pytest.mark.parametrize("name", ["ghostnet_050", "augvit_small"])
def test_dynamo_exporter_writes_static_graphs_with_parity(name, tmp_path):
    """The supported exporter: parity as for every export, no shape computation even for a transformer
    (whose TorchScript export keeps some), and the CNN's pools written back as GlobalAveragePool."""
    torch.manual_seed(0)
    model = randomize_batchnorm(ghostzoo.create_model(name))
    cnn = model_entries()[name].family in CNN_FAMILIES
    side = 64 if cnn else 224
    path = tmp_path / "m.onnx"
    report = export_model(model, "onnx", path, input_size=side, dynamic_batch=cnn, exporter="dynamo")
    proto = onnx.load(str(path))
    assert report.max_rel_error <= 1e-4 and report.opset == 18 and dynamic_shape_ops(proto) == []
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == ("batch" if cnn else "")
    if cnn:  # 7 squeeze-excite blocks and the head
        assert report.ops["GlobalAveragePool"] == 8 and "ReduceMean" not in report.ops
        assert "BatchNormalization" not in report.ops


def test_unknown_exporter_is_refused(tmp_path):
    with pytest.raises(ExportError, match="unknown ONNX exporter 'onnxscript'"):
        export_model(ghostzoo.create_model("tinynet_e"), "onnx", tmp_path / "m.onnx", exporter="onnxscript")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command, missing",
    [
        (["export", "ghostnet_100", "--random-weights", "--format", "onnx", "--output", "m.onnx"], "onnxruntime"),
        (["export", "ghostnet_100", "--random-weights", "--format", "onnx", "--output", "m.onnx"], "onnxscript"),
        (["quantize", "ghostnet_100.imagenette", "--calib-data", ".", "--output", "q.xml"], "openvino"),
    ],
)
def test_a_missing_package_is_named_before_any_work(command, missing, tmp_path, monkeypatch, capsys):
    """A base install (no `ghostzoo[deploy]`): one line naming the package, not an ImportError traceback."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else find_spec(name, *a))
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--exporter", "dynamo"]) == 1
    assert_one_line_error(capsys.readouterr().err, f"needs {missing}", "pip install 'ghostzoo[deploy]'")
    assert list(tmp_path.iterdir()) == []
