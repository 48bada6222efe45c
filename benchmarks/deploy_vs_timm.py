"""ghostzoo's deploy path against timm's own ONNX export of ``ghostnet_100``: batch 1, 224 px, this CPU.

Every contender runs in this one process, in interleaved rounds (round r times every contender once,
in a shuffled order, then round r + 1), so drift in the machine's load, and whatever one runtime
leaves behind for the next, hits all of them alike; each contender's turn starts with warm-up calls
that are not timed. Reported: median and p90 latency over all timed calls, and the
fraction of the FLOP roofline, ``2 * MACs * batch / latency / peak``, with ``MACs`` = 148.8 M (fvcore's
count for ghostnet_100 at 224 px) and ``peak`` measured in the same run with a large matmul for
each precision (fp32, bf16, int8).

Both models hold the same weights: timm's randomly initialised ``ghostnet_100`` (BatchNorms given real
statistics) is loaded into ghostzoo's through its timm-checkpoint support, and the two exports are
checked to give the same logits before anything is timed.

Contenders (the runtime settings applied to ghostzoo's files are session settings, so timm's file gets
them too, wherever they apply):

- ``timm eager``: ``timm.create_model("ghostnet_100").eval()`` under ``torch.no_grad()``, for reference;
- ``timm ONNX, ORT default``: ``torch.onnx.export`` of the timm eval model (opset 17, what a timm user
  writes) run by a default ``onnxruntime.InferenceSession`` - the bars' baseline;
- ``ghostzoo ONNX, ORT default``: ``ghostzoo export --format onnx`` (deploy form, static graph), default session;
- ``... ORT tuned``: the same two files with the session options below (``--ort-threads``, sequential
  execution, all graph optimisations, spinning on);
- ``... OpenVINO fp32`` / ``bf16``: the ONNX files compiled by OpenVINO for the CPU, LATENCY hint,
  subnormals flushed to zero (as ``ghostzoo.deploy.runtime.OpenVinoModel`` does), inference precision
  f32 or bf16 (AVX512-BF16);
- ``ghostzoo int8, ORT`` / ``OpenVINO``: the int8 QDQ ONNX of ``ghostzoo.quantization.quantize_to_onnx``
  (per-channel int8 weights, uint8 activations), calibrated on real ImageNet validation images with
  the model's eval preprocessing, and its OpenVINO IR (``ghostzoo export --int8``).

Bars: ghostzoo's fastest fp32 export is at least 1.2x faster than the baseline, and its fastest
bf16 / int8 path at least 2x faster.

    python benchmarks/deploy_vs_timm.py                  # writes docs/results/deploy_vs_timm.{md,csv,png}
    python benchmarks/deploy_vs_timm.py --rounds 3 --calls 10 --out /tmp/quick   # a smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import ghostzoo  # noqa: E402
from ghostzoo.bench.tables import markdown_table, save_figure, write_csv  # noqa: E402
from ghostzoo.deploy import export_model  # noqa: E402
from ghostzoo.deploy.runtime import OnnxRuntimeModel  # noqa: E402

MACS = 148.8e6  # ghostnet_100 at 224 px, batch 1 (fvcore's convention; `ghostzoo profile ghostnet_100`)
CALIB = ROOT.parent / "shared" / "data" / "imagenet-val-sample"
Run = Callable[[np.ndarray], object]


@dataclass
class Contender:
    name: str
    source: str  # "timm" or "ghostzoo"
    runtime: str
    precision: str  # fp32, bf16 or int8
    settings: str
    run: Run
    times: List[float] = field(default_factory=list)


def peak_flops(precision: str, threads: int, seconds: float = 1.0) -> float:
    """Measured peak multiply-add rate (as FLOP/s, 2 per MAC) of a large matmul in ``precision``."""
    torch.set_num_threads(threads)
    n = 2048
    if precision == "int8":
        a = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        b = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        op = lambda: torch._int_mm(a, b)  # noqa: E731 -- int8 x int8 -> int32 (VNNI)
    else:
        dtype = torch.float32 if precision == "fp32" else torch.bfloat16
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        op = lambda: torch.mm(a, b)  # noqa: E731
    for _ in range(3):
        op()
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        op()
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def ort_run(path: Path, tuned: bool, threads: int) -> Run:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if tuned:
        options.intra_op_num_threads = threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def openvino_run(path: Path, precision: str, threads: int) -> Run:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        str(path),
        "CPU",
        {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": precision,
            "CPU_DENORMALS_OPTIMIZATION": True,
        },
    )
    request = compiled.create_infer_request()
    return lambda x: request.infer([x], share_inputs=True)


def build(args: argparse.Namespace, work: Path) -> List[Contender]:
    import timm

    from reference import randomize_batchnorm  # tests/reference.py: BatchNorms with real statistics

    torch.manual_seed(0)
    timm_model = randomize_batchnorm(timm.create_model("ghostnet_100")).eval()
    torch.save(timm_model.state_dict(), work / "timm_ghostnet_100.pth")
    model = ghostzoo.create_model("ghostnet_100", checkpoint_path=work / "timm_ghostnet_100.pth").eval()
    x = torch.randn(1, 3, 224, 224)

    timm_onnx = work / "timm_ghostnet_100.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(timm_model, (x,), str(timm_onnx), dynamo=False, opset_version=17)
    gz_onnx, gz_xml = work / "ghostnet_100.onnx", work / "ghostnet_100.xml"
    export_model(model, "onnx", gz_onnx)
    export_model(model, "openvino", gz_xml)
    with torch.no_grad():
        reference = timm_model(x)
    same = OnnxRuntimeModel(gz_onnx)(x)
    error = float((same - reference).abs().max() / reference.abs().max())
    assert error < 1e-4, f"ghostzoo's export of timm's weights differs from timm: {error:.2e}"

    eager = lambda _x: timm_model(torch.from_numpy(_x))  # noqa: E731
    t = args.threads
    tuned = f"intra_op_num_threads={t}, sequential, ORT_ENABLE_ALL, spinning"
    ov_settings = f"LATENCY hint, {t} threads, denormals flushed, inference precision"
    contenders = [
        Contender("timm eager", "timm", "PyTorch eager", "fp32", f"torch.no_grad, {t} threads", eager),
        Contender(
            "timm ONNX, ORT default", "timm", "ONNX Runtime", "fp32", "default session", ort_run(timm_onnx, False, t)
        ),
        Contender("timm ONNX, ORT tuned", "timm", "ONNX Runtime", "fp32", tuned, ort_run(timm_onnx, True, t)),
        Contender(
            "timm ONNX, OpenVINO fp32",
            "timm",
            "OpenVINO",
            "fp32",
            f"{ov_settings} f32",
            openvino_run(timm_onnx, "f32", t),
        ),
        Contender(
            "timm ONNX, OpenVINO bf16",
            "timm",
            "OpenVINO",
            "bf16",
            f"{ov_settings} bf16",
            openvino_run(timm_onnx, "bf16", t),
        ),
        Contender(
            "ghostzoo ONNX, ORT default",
            "ghostzoo",
            "ONNX Runtime",
            "fp32",
            "default session",
            ort_run(gz_onnx, False, t),
        ),
        Contender("ghostzoo ONNX, ORT tuned", "ghostzoo", "ONNX Runtime", "fp32", tuned, ort_run(gz_onnx, True, t)),
        Contender(
            "ghostzoo IR, OpenVINO fp32",
            "ghostzoo",
            "OpenVINO",
            "fp32",
            f"{ov_settings} f32",
            openvino_run(gz_xml, "f32", t),
        ),
        Contender(
            "ghostzoo IR, OpenVINO bf16",
            "ghostzoo",
            "OpenVINO",
            "bf16",
            f"{ov_settings} bf16",
            openvino_run(gz_xml, "bf16", t),
        ),
    ]
    contenders += int8_contenders(model, work, args)
    return contenders


def int8_contenders(model: torch.nn.Module, work: Path, args: argparse.Namespace) -> List[Contender]:
    """ORT and OpenVINO on the int8 QDQ ONNX of ghostzoo.quantization, calibrated on real images."""
    from ghostzoo.data import create_transform, find_images, read_image
    from ghostzoo.quantization import quantize_to_onnx

    images, _ = find_images([CALIB])
    if not images:
        raise SystemExit(f"no calibration image in {CALIB}")
    transform = create_transform(model.pretrained_cfg)
    calib = torch.stack([transform(read_image(p)) for p in images[: args.calib_images]])
    int8_onnx, int8_xml = work / "ghostnet_100_int8.onnx", work / "ghostnet_100_int8.xml"
    quantize_to_onnx(model, calib, int8_onnx, observer=args.observer)
    export_model(model, "openvino", int8_xml, int8=int8_onnx)
    t = args.threads
    return [
        Contender(
            "ghostzoo int8, ORT tuned",
            "ghostzoo",
            "ONNX Runtime",
            "int8",
            f"QDQ int8 ({len(calib)} calibration images, {args.observer}); intra_op_num_threads={t}, sequential",
            ort_run(int8_onnx, True, t),
        ),
        Contender(
            "ghostzoo int8, OpenVINO",
            "ghostzoo",
            "OpenVINO",
            "int8",
            f"IR from the QDQ file; LATENCY hint, {t} threads, denormals flushed",
            openvino_run(int8_xml, "f32", t),
        ),
    ]


def measure(contenders: List[Contender], rounds: int, calls: int, warmup: int) -> None:
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    order = random.Random(0)
    with torch.no_grad():
        for r in range(rounds):
            # a fresh (seeded) order each round: the runtime that ran just before a contender (ORT's
            # threads spin on after a call, OpenVINO's stay awake) must not always be the same one
            for c in order.sample(contenders, len(contenders)):
                for _ in range(warmup):
                    c.run(x)
                for _ in range(calls):
                    t = time.perf_counter()
                    c.run(x)
                    c.times.append(time.perf_counter() - t)
            print(
                f"round {r + 1}/{rounds}: "
                + ", ".join(f"{c.name} {1e3 * statistics.median(c.times):.2f}" for c in contenders),
                flush=True,
            )


def report(contenders: List[Contender], peaks: Dict[str, float], args: argparse.Namespace, out: Path) -> None:
    baseline = statistics.median(next(c for c in contenders if c.name == "timm ONNX, ORT default").times)
    rows = []
    for c in contenders:
        median = statistics.median(c.times)
        rows.append(
            {
                "contender": c.name,
                "source": c.source,
                "runtime": c.runtime,
                "precision": c.precision,
                "settings": c.settings,
                "median_ms": 1e3 * median,
                "p90_ms": 1e3 * float(np.percentile(c.times, 90)),
                "images_per_s": 1.0 / median,
                "speedup_vs_timm_ort": baseline / median,
                "roofline_pct": 100 * 2 * MACS / median / peaks[c.precision],
            }
        )
    ours = [r for r in rows if r["source"] == "ghostzoo"]
    best_fp32 = min((r for r in ours if r["precision"] == "fp32"), key=lambda r: r["median_ms"])
    best_low = min((r for r in ours if r["precision"] != "fp32"), key=lambda r: r["median_ms"])
    bars = [
        ("fastest ghostzoo fp32 export >= 1.2x timm's ONNX on ORT", best_fp32, 1.2),
        ("fastest ghostzoo bf16 / int8 path >= 2x timm's ONNX on ORT", best_low, 2.0),
    ]

    columns = [
        "contender",
        "precision",
        "median_ms",
        "p90_ms",
        "images_per_s",
        "speedup_vs_timm_ort",
        "roofline_pct",
        "runtime",
        "settings",
    ]
    write_csv(out / "deploy_vs_timm.csv", rows, columns)
    lines = [
        "# ghostnet_100: ghostzoo's deploy path vs timm's ONNX export",
        "",
        f"Batch 1, 224x224, {platform.processor() or platform.machine()} ({os.cpu_count()} logical CPUs), "
        f"{args.threads} threads per contender, one process, {args.rounds} interleaved rounds "
        f"(a shuffled order each) of {args.warmup} warm-up + {args.calls} timed calls per contender. Generated by "
        "`python benchmarks/deploy_vs_timm.py` (see its docstring for what each contender gets).",
        "",
        *([args.note, ""] if args.note else []),
        f"Roofline: 2 x {MACS / 1e6:.1f} MMAC / latency / peak, with the peaks measured in this run by a "
        f"2048^3 matmul: fp32 {peaks['fp32'] / 1e9:.0f}, bf16 {peaks['bf16'] / 1e9:.0f}, "
        f"int8 {peaks['int8'] / 1e9:.0f} GOP/s.",
        "",
        markdown_table(rows, columns),
        "## Bars",
        "",
    ]
    for text, row, need in bars:
        ratio = row["speedup_vs_timm_ort"]
        lines.append(
            f"- {text}: **{'met' if ratio >= need else 'NOT met'}** - {row['contender']} "
            f"{row['median_ms']:.2f} ms vs {1e3 * baseline:.2f} ms, {ratio:.2f}x"
        )
    timm_rows = [r for r in rows if r["source"] == "timm" and r["contender"] != "timm eager"]
    timm_fp32 = min((r for r in timm_rows if r["precision"] == "fp32"), key=lambda r: r["median_ms"])
    timm_low = min((r for r in timm_rows if r["precision"] != "fp32"), key=lambda r: r["median_ms"])
    lines += [
        "",
        "For fairness, timm's own file under the best settings here: "
        f"fp32 {timm_fp32['median_ms']:.2f} ms ({timm_fp32['contender']}), ghostzoo's fastest fp32 export "
        f"is {timm_fp32['median_ms'] / best_fp32['median_ms']:.2f}x that; {timm_low['precision']} "
        f"{timm_low['median_ms']:.2f} ms ({timm_low['contender']}), ghostzoo's fastest bf16 / int8 path is "
        f"{timm_low['median_ms'] / best_low['median_ms']:.2f}x that. Most of the gain over the baseline is "
        "the runtime and its settings, which a timm user can pick too; ghostzoo ships them as its "
        "deploy path.",
        "",
    ]
    from ghostzoo._io import write_text_atomic

    write_text_atomic(out / "deploy_vs_timm.md", "\n".join(lines))
    plot(rows, baseline, out / "deploy_vs_timm.png")
    print("\n".join(lines))


def plot(rows: List[Dict], baseline: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"fp32": "tab:blue", "bf16": "tab:orange", "int8": "tab:green"}
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    names = [r["contender"] for r in rows]
    ax.barh(
        names,
        [r["median_ms"] for r in rows],
        color=[colours[r["precision"]] for r in rows],
        edgecolor=["black" if r["source"] == "ghostzoo" else "none" for r in rows],
    )
    for i, r in enumerate(rows):
        ax.text(
            r["median_ms"], i, f" {r['median_ms']:.2f} ms ({r['speedup_vs_timm_ort']:.2f}x)", va="center", fontsize=8
        )
    for need, style, what in ((1.2, "--", "fp32"), (2.0, ":", "bf16 / int8")):
        ax.axvline(
            1e3 * baseline / need,
            color="grey",
            linestyle=style,
            linewidth=1,
            label=f"{what} bar: {need}x faster than timm's ONNX on ORT",
        )
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("median latency, batch 1, 224 px (ms, log scale; lower is better; black edge: ghostzoo)")
    ax.set_title("ghostnet_100 on this CPU: timm's ONNX vs ghostzoo's exports (blue fp32, orange bf16, green int8)")
    save_figure(fig, path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=30, help="timed calls per contender per round")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls per contender per round")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--calib-images", type=int, default=64)
    parser.add_argument("--observer", default="percentile", help="int8 activation ranges (minmax, percentile, mse)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    parser.add_argument("--note", default="", help="a line for the report, e.g. about the machine's load")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        contenders = build(args, Path(tmp))
        peaks = {p: peak_flops(p, args.threads) for p in ("fp32", "bf16", "int8")}
        torch.set_num_threads(args.threads)
        measure(contenders, args.rounds, args.calls, args.warmup)
    report(contenders, peaks, args, args.out)


if __name__ == "__main__":
    main()
