"""int8 quantization: the file, its integer contents, the int8 kernels ORT runs, accuracy, QAT, errors."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper
from test_cli import assert_one_line_error

import ghostzoo
from ghostzoo._runtime import int8_dot_products_exact
from ghostzoo.cli import main
from ghostzoo.data import build_dataset, create_transform, find_images, read_image
from ghostzoo.deploy.runtime import OnnxRuntimeModel, load_exported
from ghostzoo.errors import GhostzooError
from ghostzoo.inference import demo_images
from ghostzoo.quantization import (
    UnsupportedModelError,
    calibrate,
    deploy_form,
    export_int8,
    finetune,
    prepare,
    quantize_to_onnx,
)
from ghostzoo.quantization.export import int8_proto, save_proto
from ghostzoo.quantization.fake_quant import QuantConv2d
from ghostzoo.quantization.observers import MinMaxObserver, MSEObserver, PercentileObserver, qparams

from conftest import DATA_DIR, require
from reference import randomize_batchnorm

IMAGENETTE = DATA_DIR / "imagenette-160"
AGREEMENT_THRESHOLD = 0.90  # int8 vs fp32 top-1, ghostnet_100.imagenette on real photos


def _images(folder: Path, split: str, n: int, transform, seed: int = 0) -> torch.Tensor:
    dataset = build_dataset(require(folder), split, transform)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n]
    return torch.stack([dataset[int(i)][0] for i in order])


def _optimized_ops(path: Path, tmp_path: Path, plain: bool = False) -> Counter:
    """Operator counts of the graph ONNX Runtime actually runs (after its QDQ fusions) in ghostzoo's
    session, or with ``plain`` in a default ``onnxruntime.InferenceSession``."""
    optimized = tmp_path / f"{path.stem}.{'plain' if plain else 'ghostzoo'}.optimized.onnx"
    if plain:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(optimized)
        options.log_severity_level = 3
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    else:
        OnnxRuntimeModel(path, optimized_model_filepath=str(optimized), log_severity_level=3)
    return Counter(n.op_type for n in onnx.load(str(optimized)).graph.node)


def _activation_grids(proto) -> Counter:
    """The (scale, zero point) of every activation QuantizeLinear, as a multiset."""
    consts = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    nodes = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    return Counter((float(consts[n.input[1]]), int(consts[n.input[2]])) for n in nodes)


def _int8_weights(proto) -> dict:
    return {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer if i.name.endswith(".weight_int8")}


@pytest.fixture(scope="module")
def imagenette_int8(tmp_path_factory):
    """ghostnet_100.imagenette (trained by ghostzoo), PTQ min-max on 32 Imagenette training photos."""
    model = ghostzoo.create_model("ghostnet_100.imagenette", pretrained=True).eval()
    calib = _images(IMAGENETTE, "train", 32, create_transform(model.pretrained_cfg))
    qmodel = prepare(model)
    calibrate(qmodel, calib.split(16))
    proto = int8_proto(qmodel, model.pretrained_cfg.input_size[-1], quantization={"observer": "minmax"})
    path = save_proto(proto, tmp_path_factory.mktemp("int8") / "ghostnet_100_int8.onnx")
    return model, qmodel, proto, path


# Where int8 dot products saturate (x86 without VNNI), ONNX Runtime's int8 kernels compute something
# other than the fake-quantized model: the comparisons with it can only hold on an exact CPU.
needs_exact_int8 = pytest.mark.skipif(
    not int8_dot_products_exact(),
    reason="this CPU has no VNNI: ONNX Runtime's int8 kernels saturate (see docs/int8.md)",
)


def test_file_round_trips(imagenette_int8):
    model, qmodel, proto, path = imagenette_int8
    runtime = load_exported(path, "ghostnet_100")
    assert runtime.pretrained_cfg == model.pretrained_cfg  # classes, input size, preprocessing
    assert runtime.extra == {"quantization": {"observer": "minmax"}}
    in_memory = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = _images(IMAGENETTE, "val", 8, create_transform(model.pretrained_cfg))
    (expected,) = in_memory.run(None, {"input": x.numpy()})
    assert np.array_equal(runtime(x.contiguous(memory_format=torch.channels_last)).numpy(), expected)


@needs_exact_int8
def test_file_computes_what_the_fake_quantized_model_computes(imagenette_int8):
    model, qmodel, _, path = imagenette_int8
    x = _images(IMAGENETTE, "val", 8, create_transform(model.pretrained_cfg))
    with torch.no_grad():
        assert torch.equal(qmodel(x).argmax(1), load_exported(path)(x).argmax(1))


def test_weights_are_int8_per_channel_and_activations_uint8(imagenette_int8):
    model, qmodel, _, path = imagenette_int8
    graph = onnx.load(str(path)).graph
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    float_weights = {
        n: m.weight.detach().numpy()
        for n, m in deploy_form(model).named_modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    }
    weights = activations = 0
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and consts.get(node.input[0], np.zeros(0, np.float32)).dtype == np.int8:
            q, scale, zero_point = (consts[i] for i in node.input)
            assert zero_point.dtype == np.int8 and not zero_point.any()  # symmetric
            assert q.min() >= -128 and q.max() <= 127
            assert scale.shape == (q.shape[0],)  # one scale per output channel
            assert (np.abs(q).reshape(len(q), -1).max(1) == 127).all()  # max|w| of each channel -> 127
            name = node.input[0].removesuffix(".weight_int8")
            error = np.abs(q * scale.reshape(-1, *[1] * (q.ndim - 1)) - float_weights[name])
            assert (error <= scale.reshape(-1, *[1] * (q.ndim - 1)) / 2 + 1e-7).all()  # round to nearest
            weights += 1
        elif node.op_type == "QuantizeLinear":
            scale, zero_point = consts[node.input[1]], consts[node.input[2]]
            assert zero_point.dtype == np.uint8 and scale.shape == () and scale > 0
            lo, hi = (0 - int(zero_point)) * scale, (255 - int(zero_point)) * scale
            assert lo <= 0 <= hi  # zero is exact on every activation grid
            activations += 1
    assert weights == len(float_weights) == 96
    assert activations == sum(n.op == "call_module" and n.target.startswith("act_fq_") for n in qmodel.graph.nodes)


def test_onnx_runtime_runs_int8_kernels(imagenette_int8, tmp_path):
    _, _, _, path = imagenette_int8
    ops = _optimized_ops(path, tmp_path)
    assert ops["QLinearConv"] == 95 and ops["Conv"] == 0  # every convolution: u8 x s8 -> u8
    assert ops["QLinearConcat"] == 32 and ops["QLinearAdd"] == 16 and ops["QLinearMul"] == 7
    assert ops["QLinearGlobalAveragePool"] == 8 and ops["QGemm"] == 1
    assert ops["QuantizeLinear"] + ops["DequantizeLinear"] <= 16  # only around the 7 float hard-sigmoids + I/O


def test_dynamo_exporter_writes_the_same_int8_file(imagenette_int8, tmp_path):
    """The same calibrated model through the supported exporter: the same int8 weights, activation
    grids and int8 kernels in ONNX Runtime, and the same outputs."""
    model, qmodel, proto, path = imagenette_int8
    dynamo = int8_proto(qmodel, model.pretrained_cfg.input_size[-1], "dynamo", quantization={"observer": "minmax"})
    dynamo_path = save_proto(dynamo, tmp_path / "dynamo_int8.onnx")
    weights, dynamo_weights = _int8_weights(proto), _int8_weights(dynamo)
    assert weights.keys() == dynamo_weights.keys() and len(weights) == 96
    assert all(np.array_equal(weights[k], dynamo_weights[k]) for k in weights)
    assert _activation_grids(dynamo) == _activation_grids(proto)
    ops, dynamo_ops = _optimized_ops(path, tmp_path), _optimized_ops(dynamo_path, tmp_path)
    assert ops.pop("Flatten") == dynamo_ops.pop("Reshape") == 1  # the head's flatten, spelled two ways
    assert dynamo_ops == ops
    x = _images(IMAGENETTE, "val", 8, create_transform(model.pretrained_cfg))
    np.testing.assert_array_equal(load_exported(dynamo_path)(x).numpy(), load_exported(path)(x).numpy())


@needs_exact_int8
def test_int8_agrees_with_fp32_on_real_photos(imagenette_int8):
    model, _, _, path = imagenette_int8
    transform = create_transform(model.pretrained_cfg)
    demo, _ = find_images([demo_images()])
    x = torch.cat(
        [torch.stack([transform(read_image(p)) for p in demo]), _images(IMAGENETTE, "val", 150, transform, seed=1)]
    )
    with torch.no_grad():
        fp32 = model(x).argmax(1)
    int8 = load_exported(path)(x).argmax(1)
    assert len(x) == 160
    assert float((fp32 == int8).float().mean()) >= AGREEMENT_THRESHOLD


@pytest.mark.parametrize(
    "name, size, kwargs",
    [
        ("ghostnet_x0_5", 64, {}),
        ("tf_ghostnet_100", 64, {}),
        ("ghostnetv2_100", 64, {}),
        ("ghostnetv3_050", 64, {}),
        ("ghost_resnet50", 32, {}),
        ("g_ghost_regnetx_002", 32, {}),
        ("tinynet_e", 32, {}),
        ("lego_vgg16", 32, {}),
        ("vcnn_vgg11_bn", 224, {"hidden_chs": 64, "num_classes": 10}),  # fc6's 7x7 window needs 224 px
    ],
)
def test_every_cnn_family_quantizes_and_runs(name, size, kwargs, tmp_path):
    """Random weights (with real BatchNorm statistics) and random calibration: enough to show that
    the int8 file runs on int8 kernels and computes what the fake-quantized model does."""
    torch.manual_seed(0)
    model = randomize_batchnorm(ghostzoo.create_model(name, **kwargs)).eval()
    calib, x = torch.randn(2, 4, 3, size, size).unbind(0)
    qmodel = prepare(model, input_size=size)
    calibrate(qmodel, [calib])
    path = export_int8(qmodel, tmp_path / "int8.onnx", size)
    with torch.no_grad():
        fp32, fake = model(x), qmodel(x)
    convs = sum(isinstance(m, QuantConv2d) for m in qmodel.modules())
    assert _optimized_ops(path, tmp_path)["QLinearConv"] == convs > 0
    if not int8_dot_products_exact():
        pytest.skip("this CPU has no VNNI: ONNX Runtime's int8 kernels saturate (see docs/int8.md)")
    int8 = load_exported(path)(x)
    relative = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
    assert relative(int8, fake) < 0.06 and relative(int8, fp32) < 0.1


def test_deploy_form_is_exact_for_lego_and_versatile_convolutions():
    for name, size in (("lego_vgg16", 32), ("vcnn_vgg11_bn", 64)):
        model = randomize_batchnorm(ghostzoo.create_model(name, num_classes=10)).eval()
        plain = deploy_form(model)
        assert not [m for m in plain.modules() if type(m).__name__ in ("LegoConv2d", "VConv2d")]
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            torch.testing.assert_close(plain.features(x), model.features(x), rtol=1e-4, atol=1e-5)


def test_keep_float_leaves_those_layers_float(tmp_path):
    """Kept layers stay float in the file and in the graph ghostzoo's ONNX Runtime session runs. A
    default ORT session would quantize the depthwise ones (read from and written to int8 tensors)
    itself, which ghostzoo's session does not allow (ORT_DISABLED_OPTIMIZERS)."""
    model = randomize_batchnorm(ghostzoo.create_model("ghostnet_050")).eval()
    keep = ["conv_stem", "*.se", "blocks.0.0.ghost*.cheap_operation"]
    x = torch.randn(4, 3, 64, 64)
    path = quantize_to_onnx(model, x, tmp_path / "int8.onnx", observer="percentile", keep_float=keep, input_size=64)
    facts = load_exported(path).extra["quantization"]
    assert facts["keep_float"] == keep and facts["observer"] == "percentile"
    float_layers = facts["float_layers"]
    assert "conv_stem" in float_layers and "blocks.3.0.se.conv_reduce" in float_layers
    assert len(float_layers) == 1 + 2 * 7 + 2  # the stem, both convolutions of the 7 SE modules, 2 depthwise
    ops = _optimized_ops(path, tmp_path)
    assert ops["QLinearConv"] == 95 - len(float_layers)
    assert ops["Conv"] + ops["FusedConv"] == len(float_layers)
    assert _optimized_ops(path, tmp_path, plain=True)["QLinearConv"] > 95 - len(float_layers)


def test_observers_on_a_tensor_with_an_outlier():
    x = torch.cat([torch.rand(100_000), torch.tensor([100.0])])  # [0, 1) plus one far value
    observers = {cls.__name__: cls() for cls in (MinMaxObserver, PercentileObserver, MSEObserver)}
    for obs in observers.values():
        for chunk in (x[:5], x[5:]):  # the range grows between batches
            obs.update(chunk)
    ranges = {name: obs.range() for name, obs in observers.items()}
    assert ranges["MinMaxObserver"] == (0.0, 100.0)
    lo, hi = ranges["PercentileObserver"]
    bin_width = 2 * observers["PercentileObserver"].radius / PercentileObserver.bins
    assert lo == 0.0 and hi == pytest.approx(float(np.percentile(x.numpy(), 99.99)), abs=bin_width)

    def squared_error(lo: float, hi: float) -> float:
        scale, zero_point = qparams(lo, hi)
        return float(((torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255) - x) ** 2).sum())

    errors = {name: squared_error(*r) for name, r in ranges.items()}
    assert errors["MSEObserver"] <= min(errors.values()) * 1.01  # measured on the data, not the histogram
    assert ranges["MSEObserver"][1] < 100.0  # it does clip, a little
    hist = PercentileObserver()
    hist.update(x)
    assert hist.hist.sum() == len(x)
    scale, zero_point = qparams(-1.0, 3.0)  # the grid's ends are the range's ends
    assert (0 - zero_point) * scale == pytest.approx(-1.0, abs=scale) and (255 - zero_point) * scale == pytest.approx(
        3.0, abs=scale
    )


def test_qat_trains_the_fake_quantized_weights_and_exports(tmp_path):
    source = require(IMAGENETTE)
    data = tmp_path / "tiny"
    for split, n in (("train", 8), ("val", 2)):
        for c in ("n01440764", "n02102040"):
            (data / split / c).mkdir(parents=True)
            for f in sorted((source / split / c).iterdir())[:n]:
                shutil.copy(f, data / split / c / f.name)
    model = randomize_batchnorm(ghostzoo.create_model("ghostnet_050", num_classes=2))
    model.pretrained_cfg = dataclasses.replace(model.pretrained_cfg, input_size=(3, 64, 64), num_classes=2)
    qmodel = prepare(model, input_size=64)
    calibrate(qmodel, [_images(data, "train", 16, create_transform(model.pretrained_cfg))])
    before = {k: v.clone() for k, v in qmodel.state_dict().items()}
    ptq = _int8_weights(int8_proto(qmodel, 64))
    summary = finetune(
        qmodel, data, 1, tmp_path / "qat", lr=0.05, batch_size=8, workers=0, steps_per_epoch=2, progress=False
    )
    assert summary["history"][0]["epoch"] == 1 and (tmp_path / "qat" / "last.pth").is_file()
    after = qmodel.state_dict()
    assert not torch.equal(after["conv_stem.weight"], before["conv_stem.weight"])
    assert not torch.equal(after["conv_stem.bias"], before["conv_stem.bias"])  # folded BN biases train too
    assert all(torch.equal(after[k], v) for k, v in before.items() if k.startswith("act_fq_"))  # grids kept
    path = export_int8(qmodel, tmp_path / "qat.onnx", qat_epochs=1)
    qat = _int8_weights(onnx.load(str(path)))
    assert qat.keys() == ptq.keys() and any(not np.array_equal(qat[k], ptq[k]) for k in qat)
    assert load_exported(path).extra["quantization"]["qat_epochs"] == 1


@pytest.mark.parametrize("suffix", [".onnx", ".xml"])  # the QDQ graph, or an OpenVINO IR of it
def test_quantize_command_end_to_end(suffix, tmp_path, capsys):
    out, report = tmp_path / f"int8{suffix}", tmp_path / "report.json"
    code = main(
        [
            "quantize",
            "ghostnet_100.imagenette",
            "--calib-data",
            str(require(IMAGENETTE)),
            "--calib-size",
            "16",
            "--observer",
            "mse",
            "--check-size",
            "24",
            "--workers",
            "0",
            "--output",
            str(out),
            "--report",
            str(report),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    result = json.loads(report.read_text())
    assert result["calibration_images"] == 16 and result["check"]["images"] == 24
    if int8_dot_products_exact():  # elsewhere ONNX Runtime's int8 kernels saturate (see docs/int8.md)
        assert result["check"]["agreement"] >= 100 * AGREEMENT_THRESHOLD
    assert f"top-1 agreement {result['check']['agreement']:.2f}%" in printed
    assert main(["demo", "--checkpoint", str(out)]) == 0  # predict accepts the int8 file
    assert "correct (top-1" in capsys.readouterr().out
    runtime = load_exported(out)
    assert (
        runtime.extra["quantization"]
        and type(runtime).__name__ == {".onnx": "OnnxRuntimeModel", ".xml": "OpenVinoModel"}[suffix]
    )
    assert sorted(p.name for p in tmp_path.glob("int8*")) == sorted(
        {f"int8{suffix}", "int8.bin"} if suffix == ".xml" else {"int8.onnx"}
    )


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (
            ["tnt_s_patch16_224", "--calib-data", "{calib}"],
            ["tnt_s_patch16_224 (tnt) has no int8 path", "ghostnet, ghostnet_paddle, ghostnetv2"],
        ),
        (["ghostnet_100.imagenette", "--calib-data", "{empty}"], ["no images found in calibration folder"]),
        (
            ["ghostnet_100.imagenette", "--calib-data", "{calib}", "--keep-float", "head*"],
            ["--keep-float 'head*' matches no layer", "conv_stem"],
        ),
        (["ghostnet_100.imagenette", "--calib-data", "{calib}", "--qat-epochs", "1"], ["needs --train-data"]),
        (["ghostnet_100", "--calib-data", "{calib}", "--checkpoint", "{missing}"], ["checkpoint not found"]),
        (
            ["ghostnet_100.imagenette", "--calib-data", "{calib}", "--output", "{bad_suffix}"],
            ["written as ONNX (.onnx) or OpenVINO IR (.xml)"],
        ),
        (
            ["ghostnet_100.imagenette", "--calib-data", "{calib}", "--format", "openvino"],
            ["--format openvino writes a .xml file, not 'int8.onnx'"],
        ),
    ],
)
def test_bad_input_fails_in_one_line(argv, fragments, tmp_path, capsys):
    calib = tmp_path / "calib"
    shutil.copytree(demo_images(), calib)
    (tmp_path / "empty").mkdir()
    paths = dict(
        calib=calib, empty=tmp_path / "empty", missing=tmp_path / "missing.pth", bad_suffix=tmp_path / "model.int8"
    )
    argv = [a.format(**{k: str(v) for k, v in paths.items()}) for a in argv]
    if "--output" not in argv:
        argv += ["--output", str(tmp_path / "int8.onnx")]
    assert main(["quantize", *argv, "--check-split", "none", "--workers", "0"]) == 1
    assert_one_line_error(capsys.readouterr().err, "ghostzoo quantize: error:", *fragments)
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*tmp"))  # nothing half-written


def test_unsupported_model_in_python():
    with pytest.raises(UnsupportedModelError, match="vig_ti_224_gelu \\(vig\\) has no int8 path"):
        quantize_to_onnx(ghostzoo.create_model("vig_ti_224_gelu"), torch.randn(1, 3, 224, 224), "x.onnx")
    with pytest.raises(GhostzooError, match="--format onnx writes a .onnx file"):
        quantize_to_onnx(ghostzoo.create_model("ghostnet_050"), torch.randn(1, 3, 64, 64), "x.xml")


def test_a_missing_calibration_split_is_refused(tmp_path, capsys):
    """Falling back to the whole folder would calibrate on the val images the int8 model is judged on."""
    data = require(DATA_DIR / "imagenette-160")
    out = tmp_path / "q.onnx"
    argv = ["quantize", "ghostnet_100.imagenette", "--output", str(out), "--calib-data", str(data)]
    assert main([*argv, "--calib-split", "nope"]) == 1
    assert_one_line_error(capsys.readouterr().err, f"{data} has no 'nope' split folder")
    assert not out.exists()
