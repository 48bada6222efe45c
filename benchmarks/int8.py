"""int8 GhostNet: fp32 vs post-training (PTQ) vs quantization-aware (QAT) accuracy, and ORT latency.

For ``ghostnet_100.imagenette`` (trained from scratch by ``ghostzoo train`` on Imagenette), in one run:

* top-1 / top-5 on the Imagenette val split (3,925 images) of the fp32 model (ONNX Runtime, the
  deploy form exported by plain ``torch.onnx``), of PTQ int8 files (one per observer) and of the
  QAT int8 file (QAT starts from the ``--qat-observer`` PTQ model), all run by ONNX Runtime;
* batch-1 and batch-32 latency of the fp32 and the int8 file in ONNX Runtime, same session
  options and thread count, interleaved in one process (warm-up, then the median of many runs);
* where the time goes: ORT's per-operator profile of both files at batch 1;

then the same accuracy flow on the Oxford-IIIT Pet sample: ``ghostnet_100.imagenette`` fine-tuned
to the 37 breeds with ``ghostzoo train`` (as ``benchmarks/pets_finetune.py`` does), then fp32 / PTQ
/ QAT top-1 on its test split. Everything expensive is cached in ``--work-dir``, so a re-run only
redoes what is missing (delete the folder to start over).

    python benchmarks/int8.py --work-dir runs/int8

writes docs/results/int8.md, int8.csv and int8.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pets_finetune import finetune_command, run_ghostzoo  # noqa: E402

from ghostzoo.bench.tables import markdown_table, save_figure, write_csv  # noqa: E402

BARS = {"ptq_drop": 1.0, "qat_drop": 0.3, "bs1_speedup": 1.8}
CONV_OPS = ("Conv", "FusedConv", "QLinearConv")
DEPTHWISE_NODE = re.compile(r"cheap_operation|conv_dw|shortcut\.0")
SYMMETRIC_DEPTHWISE_CHANNELS = 16  # ONNX Runtime's x86 int8 depthwise kernel: channel counts it takes
COLUMNS = [
    "dataset",
    "model",
    "observer",
    "qat_epochs",
    "images",
    "top1",
    "top5",
    "drop",
    "bs1_ms",
    "bs32_ms",
    "bs1_speedup",
    "bs32_speedup",
    "file_mb",
]


def cached_json(path: Path, compute: Callable[[], Any]) -> Any:
    """``compute()``, stored as JSON at ``path`` and read back on later runs."""
    from ghostzoo._io import write_json_atomic

    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    write_json_atomic(path, value)
    return value


def calibration_images(model: torch.nn.Module, data: str, split: str, size: int) -> torch.Tensor:
    from ghostzoo.data import create_transform
    from ghostzoo.quantization import random_subset
    from ghostzoo.quantization.workflow import calibration_set

    subset = random_subset(calibration_set(data, split, create_transform(model.pretrained_cfg)), size, seed=0)
    return torch.stack([subset[i][0] for i in range(len(subset))])


def export_fp32(model: torch.nn.Module, path: Path) -> Path:
    """The fp32 baseline: the same deploy form (BN folded), exported by plain ``torch.onnx``."""
    from ghostzoo.deploy.runtime import write_onnx_metadata
    from ghostzoo.quantization import deploy_form
    from ghostzoo.quantization.export import save_proto, to_onnx_proto

    if not path.is_file():
        proto = to_onnx_proto(deploy_form(model), model.pretrained_cfg.input_size[-1])
        write_onnx_metadata(proto, model.pretrained_cfg)
        save_proto(proto, path)
    return path


def quantized_files(
    model: torch.nn.Module,
    work: Path,
    calib: torch.Tensor,
    observers: List[str],
    qat_observer: str,
    qat_epochs: int,
    train_data: str,
    qat_args: Dict[str, Any],
) -> Dict[str, Path]:
    """PTQ files, one per observer, and the QAT file (from the ``qat_observer`` PTQ model); cached."""
    from ghostzoo.quantization import calibrate, export_int8, finetune, prepare
    from ghostzoo.quantization.api import scheme

    files = {}
    for observer in dict.fromkeys([*observers, qat_observer]):
        path = work / f"ptq_{observer}_calib{len(calib)}.onnx"
        qat_path = work / f"qat{qat_epochs}_{observer}_calib{len(calib)}.onnx"
        wanted = path.is_file() and (observer != qat_observer or not qat_epochs or qat_path.is_file())
        if not wanted:
            qmodel = prepare(model, observer)
            seen = calibrate(qmodel, calib.split(32))
            facts = scheme(qmodel.quant_spec, seen)
            export_int8(qmodel, path, **facts)
            if observer == qat_observer and qat_epochs:
                print(f"QAT: {qat_epochs} epoch(s) on {train_data} from the {observer} PTQ model", flush=True)
                run_dir = qat_path.with_suffix("")
                shutil.rmtree(run_dir, ignore_errors=True)  # a run interrupted before its file was written
                summary = finetune(qmodel, train_data, qat_epochs, run_dir, **qat_args)
                export_int8(qmodel, qat_path, **{**facts, "qat_epochs": qat_epochs, "qat_lr": summary["config"]["lr"]})
        if observer in observers:
            files["ptq"] = files.get("ptq", []) + [path]
        if observer == qat_observer and qat_epochs:
            files["qat"] = [qat_path]
    return files


def accuracy(path: Path, data: str, split: str, workers: int) -> Dict[str, Any]:
    from ghostzoo.deploy.runtime import load_exported
    from ghostzoo.engine import validate

    result = validate(load_exported(path), data, split=split, batch_size=64, workers=workers, progress=True)
    return {"top1": result.top1, "top5": result.top5, "images": result.images}


def _session(path: Path, threads: int, profile: bool = False):
    import onnxruntime as ort

    from ghostzoo.deploy.runtime import ORT_DISABLED_OPTIMIZERS

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    if profile:
        options.enable_profiling = True
    return ort.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=list(ORT_DISABLED_OPTIMIZERS)
    )


def latency(paths: Dict[str, Path], size: int, threads: int, runs: Dict[int, int]) -> Dict[str, Dict[int, Dict]]:
    """Milliseconds per batch, the sessions interleaved run by run so that load changes hit all alike."""
    sessions = {name: _session(p, threads) for name, p in paths.items()}
    out: Dict[str, Dict[int, Dict]] = defaultdict(dict)
    for batch, n in runs.items():
        x = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
        for s in sessions.values():
            for _ in range(max(5, n // 20)):
                s.run(None, {"input": x})
        times = {name: [] for name in sessions}
        for _ in range(n):
            for name, s in sessions.items():
                t = time.perf_counter()
                s.run(None, {"input": x})
                times[name].append(1e3 * (time.perf_counter() - t))
        for name, t in times.items():
            out[name][batch] = {
                "median": float(np.median(t)),
                "p10": float(np.percentile(t, 10)),
                "p90": float(np.percentile(t, 90)),
                "runs": n,
            }
    return out


def op_profile(path: Path, size: int, threads: int, runs: int = 200) -> Dict[str, float]:
    """ORT's profile at batch 1: milliseconds per run spent in each operator type."""
    session = _session(path, threads, profile=True)
    x = np.random.default_rng(0).standard_normal((1, 3, size, size), dtype=np.float32)
    for _ in range(runs):
        session.run(None, {"input": x})
    trace = Path(session.end_profiling())
    totals: Dict[str, float] = defaultdict(float)
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"]["op_name"]
            if op in CONV_OPS:  # GhostNet's depthwise convolutions keep their module names in the node names
                op += " (depthwise)" if DEPTHWISE_NODE.search(event["name"]) else " (dense)"
            totals[op] += event["dur"] / 1e3 / runs
    trace.unlink()
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def optimized_ops(path: Path, work: Path) -> Dict[str, int]:
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(work / f"{path.stem}.ort-optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return dict(Counter(n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node))


def flow(
    label: str,
    model: torch.nn.Module,
    data: str,
    calib_split: str,
    eval_split: str,
    work: Path,
    args: argparse.Namespace,
    qat_epochs: int,
    qat_args: Dict[str, Any],
) -> List[Dict[str, Any]]:
    """fp32 / PTQ / QAT accuracy rows of one dataset."""
    work.mkdir(parents=True, exist_ok=True)
    calib = calibration_images(model, data, calib_split, args.calib_size)
    files = {"fp32": [export_fp32(model, work / "fp32.onnx")]}
    files.update(quantized_files(model, work, calib, args.observers, args.qat_observer, qat_epochs, data, qat_args))
    rows = []
    for kind, paths in files.items():
        for path in paths:
            acc = cached_json(
                path.with_suffix(f".{eval_split}.json"),
                lambda path=path: accuracy(path, data, eval_split, args.workers),
            )
            meta = {} if kind == "fp32" else _quantization_facts(path)
            rows.append(
                {
                    "dataset": label,
                    "model": kind,
                    "observer": meta.get("observer", ""),
                    "qat_epochs": meta.get("qat_epochs", ""),
                    "file_mb": path.stat().st_size / 1e6,
                    "path": path,
                    **acc,
                }
            )
    fp32_top1 = rows[0]["top1"]
    for row in rows[1:]:
        row["drop"] = fp32_top1 - row["top1"]
    return rows


def _quantization_facts(path: Path) -> Dict[str, Any]:
    from ghostzoo.deploy.runtime import load_exported

    return load_exported(path).extra["quantization"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "imagenette-160"))
    parser.add_argument(
        "--pets",
        default=str(HERE.parent.parent / "shared" / "data" / "oxford-pets-sample"),
        help="Oxford-IIIT Pet folder ('' skips the Pet flow)",
    )
    parser.add_argument("--work-dir", default="runs/int8", help="cache of models, files and evaluations")
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "results"))
    parser.add_argument("--calib-size", type=int, default=256)
    parser.add_argument("--observers", nargs="+", default=["minmax", "percentile", "mse"])
    parser.add_argument("--qat-observer", default="minmax", help="the PTQ model QAT starts from")
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--qat-lr", type=float, help="default: 1/100 of the GhostNet recipe's at the batch size")
    parser.add_argument("--qat-steps", type=int, help="cap on QAT steps per epoch (quick runs)")
    parser.add_argument("--batch-size", type=int, default=64, help="QAT batch size")
    parser.add_argument("--pets-epochs", type=int, default=15, help="fine-tuning epochs of the Pet model")
    parser.add_argument("--pets-qat-epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads for latency")
    parser.add_argument("--bs1-runs", type=int, default=500)
    parser.add_argument("--bs32-runs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import ghostzoo

    work = Path(args.work_dir)
    qat_args = dict(
        batch_size=args.batch_size, lr=args.qat_lr, workers=args.workers, seed=0, steps_per_epoch=args.qat_steps
    )
    model = ghostzoo.create_model("ghostnet_100.imagenette", pretrained=True).eval()
    size = args.size = model.pretrained_cfg.input_size[-1]
    rows = flow("imagenette", model, args.data, "train", "val", work / "imagenette", args, args.qat_epochs, qat_args)

    int8_file = next(r["path"] for r in rows if r["model"] == "ptq" and r["observer"] == args.qat_observer)
    timed = {"fp32": rows[0]["path"], "int8": int8_file}
    lat = latency(timed, size, args.threads, {1: args.bs1_runs, 32: args.bs32_runs})
    profiles = {name: op_profile(path, size, args.threads) for name, path in timed.items()}
    graphs = {name: optimized_ops(path, work / "imagenette") for name, path in timed.items()}
    for row in rows:
        kind = "fp32" if row["model"] == "fp32" else "int8"  # every int8 file has the same graph
        for batch in (1, 32):
            row[f"bs{batch}_ms"] = lat[kind][batch]["median"]
            row[f"bs{batch}_speedup"] = lat["fp32"][batch]["median"] / lat[kind][batch]["median"]

    pets_rows: List[Dict[str, Any]] = []
    if args.pets:
        run_dir = work / "pets" / "finetune"
        if not (run_dir / "best.pth").is_file():
            run_ghostzoo(finetune_command(args.pets, run_dir, args.pets_epochs, size, 0.02))
        pets_model = ghostzoo.create_model("ghostnet_100", checkpoint_path=run_dir / "best.pth").eval()
        pets_qat = dict(qat_args, batch_size=32, val_split="test")
        pets_rows = flow(
            "oxford-pets-sample",
            pets_model,
            args.pets,
            "train",
            "test",
            work / "pets",
            args,
            args.pets_qat_epochs,
            pets_qat,
        )
    depthwise = [m.groups for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels > 1]
    write_report(rows, pets_rows, lat, profiles, graphs, depthwise, args)


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def write_report(
    rows: List[Dict],
    pets_rows: List[Dict],
    lat: Dict,
    profiles: Dict,
    graphs: Dict,
    depthwise: List[int],
    args: argparse.Namespace,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ghostzoo._io import write_text_atomic

    out = Path(args.out)
    all_rows = rows + pets_rows
    ptq = [r for r in rows if r["model"] == "ptq"]
    qat = [r for r in rows if r["model"] == "qat"]
    default_ptq = next(r for r in ptq if r["observer"] == args.qat_observer)
    speedup = lat["fp32"][1]["median"] / lat["int8"][1]["median"]
    int8_convs, convs = (
        graphs["int8"].get("QLinearConv", 0),
        sum(graphs["fp32"].get(k, 0) for k in ("Conv", "FusedConv")),
    )
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs"
    bars = [
        f"- PTQ loses at most {BARS['ptq_drop']} point: {args.qat_observer} observer "
        f"{default_ptq['drop']:+.2f} -> {_verdict(default_ptq['drop'] <= BARS['ptq_drop'])}"
        + "".join(f"; {r['observer']} {r['drop']:+.2f}" for r in ptq if r is not default_ptq),
        f"- QAT loses at most {BARS['qat_drop']} point: "
        + (
            f"{qat[0]['drop']:+.2f} after {qat[0]['qat_epochs']} epoch(s) -> "
            f"{_verdict(qat[0]['drop'] <= BARS['qat_drop'])}"
            if qat
            else "not run (--qat-epochs 0)"
        ),
        f"- int8 batch-1 latency at least {BARS['bs1_speedup']}x faster than fp32 on ONNX Runtime: "
        f"{speedup:.2f}x -> {_verdict(speedup >= BARS['bs1_speedup'])}",
    ]
    profile_rows = [
        {"op": op, "fp32_ms": profiles["fp32"].get(op), "int8_ms": profiles["int8"].get(op)}
        for op in dict.fromkeys([*profiles["fp32"], *profiles["int8"]])
    ]
    cmd = (
        "python benchmarks/int8.py " + f"--work-dir {args.work_dir} --calib-size {args.calib_size} "
        f"--observers {' '.join(args.observers)} --qat-observer {args.qat_observer} --qat-epochs {args.qat_epochs} "
        f"--pets-qat-epochs {args.pets_qat_epochs} --threads {args.threads}"
        + (f" --qat-steps {args.qat_steps}" if args.qat_steps else "")
    )
    text = "\n".join(
        [
            "# int8 GhostNet: PTQ and QAT accuracy, ONNX Runtime latency",
            "",
            f"Generated by `{cmd}` on {machine} (torch {torch.__version__}, onnxruntime {_ort_version()}). "
            "Model: `ghostnet_100.imagenette`, GhostNet 1.0x trained from scratch by `ghostzoo train` on "
            f"Imagenette ({_imagenette_recipe()}). int8 scheme: weights int8 symmetric per output channel, "
            f"activations uint8 asymmetric per tensor, {args.calib_size} calibration images from the training "
            "split, ONNX QDQ file run by ONNX Runtime's int8 kernels (`QLinearConv` u8 x s8 etc.). Accuracy of "
            "every row is measured on the ONNX Runtime file (fp32: the same BN-folded model exported by plain "
            f"`torch.onnx`). QAT: from the {args.qat_observer} PTQ model, the GhostNet recipe at 1/100 of its "
            "learning rate, no warm-up, BatchNorm folded, activation grids frozen.",
            "",
            "## Bars",
            "",
            *bars,
            "",
            f"## Imagenette val ({rows[0]['images']} images)",
            "",
            markdown_table(rows, COLUMNS),
            f"Latency: milliseconds per batch at {args.size} px, median of "
            f"{args.bs1_runs} (batch 1) / {args.bs32_runs} (batch 32) runs after warm-up, ONNX Runtime "
            f"CPUExecutionProvider with {args.threads} intra-op thread(s), default graph optimizations, "
            "fp32 and int8 sessions interleaved run by run in one process. Every int8 file has the same graph, "
            f"so the int8 latency is measured once. In the int8 graph ORT runs {int8_convs} of {convs} "
            "convolutions as `QLinearConv`.",
            "",
            "| batch | fp32 median (p10-p90) ms | int8 median (p10-p90) ms | speed-up |",
            "|---|---|---|---|",
            *[
                f"| {b} | {lat['fp32'][b]['median']:.2f} ({lat['fp32'][b]['p10']:.2f}-{lat['fp32'][b]['p90']:.2f}) | "
                f"{lat['int8'][b]['median']:.2f} ({lat['int8'][b]['p10']:.2f}-{lat['int8'][b]['p90']:.2f}) | "
                f"{lat['fp32'][b]['median'] / lat['int8'][b]['median']:.2f}x |"
                for b in (1, 32)
            ],
            "",
            "Where the batch-1 time goes (ORT profiler, ms per run by operator type):",
            "",
            markdown_table(profile_rows, ["op", "fp32_ms", "int8_ms"]),
            _depthwise_note(depthwise),
            "",
            *(
                [
                    "## Oxford-IIIT Pet sample (test split: only 74 images, one image = 1.35 points)",
                    "",
                    "`ghostnet_100.imagenette` fine-tuned to the 37 breeds by `ghostzoo train` "
                    f"({args.pets_epochs} epochs, "
                    "as `benchmarks/pets_finetune.py`), then the same int8 flow; calibration on the train split, "
                    f"QAT {args.pets_qat_epochs} epoch(s) on it.",
                    "",
                    markdown_table(pets_rows, [c for c in COLUMNS if "ms" not in c and "speedup" not in c]),
                ]
                if pets_rows
                else []
            ),
            "Reference (MindSpore GhostNet int8, ImageNet weights): ImageNet 73.9 -> 72.2 (PTQ) -> 73.6 (QAT); "
            "Oxford-IIIT Pet 82.4 -> 81.66 -> 82.45.",
            "",
        ]
    )
    write_text_atomic(out / "int8.md", text)
    write_csv(out / "int8.csv", all_rows, COLUMNS)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for label, group, offset in (("Imagenette val", rows, -0.2), ("Pet test", pets_rows, 0.2)):
        if group:
            names = [f"{r['model']}\n{r['observer']}".strip() for r in group]
            ax1.bar(np.arange(len(group)) + offset, [r["top1"] for r in group], width=0.4, label=label)
            ax1.set_xticks(np.arange(len(group)), names, fontsize=8)
    ax1.set_ylabel("top-1 (%)")
    ax1.set_title("accuracy (ONNX Runtime)")
    ax1.legend()
    for i, batch in enumerate((1, 32)):
        ax2.bar(
            [i - 0.2, i + 0.2],
            [
                lat["fp32"][batch]["median"] / lat["fp32"][batch]["median"],
                lat["fp32"][batch]["median"] / lat["int8"][batch]["median"],
            ],
            width=0.4,
            color=["tab:gray", "tab:green"],
        )
    ax2.axhline(BARS["bs1_speedup"], ls="--", color="tab:red", label=f"bar {BARS['bs1_speedup']}x (batch 1)")
    ax2.set_xticks([0, 1], ["batch 1", "batch 32"])
    ax2.set_ylabel("speed-up over fp32 (grey = fp32, green = int8)")
    ax2.set_title(f"ONNX Runtime, {args.threads} thread(s)")
    ax2.legend()
    save_figure(fig, out / "int8.png")
    print(text)


def _depthwise_note(channels: List[int]) -> str:
    odd = sorted({c for c in channels if c % SYMMETRIC_DEPTHWISE_CHANNELS})
    count = sum(c % SYMMETRIC_DEPTHWISE_CHANNELS != 0 for c in channels)
    return (
        f"GhostNet 1.0x has {len(channels)} depthwise convolutions; {count} of them have a channel count that "
        f"is not a multiple of {SYMMETRIC_DEPTHWISE_CHANNELS} ({', '.join(map(str, odd))}). ONNX Runtime's x86 "
        f"symmetric int8 depthwise kernel takes multiples of {SYMMETRIC_DEPTHWISE_CHANNELS} only; the others "
        "run its generic int8 depthwise loop. The `(depthwise)` and `(dense)` rows above split the "
        "convolution time of both graphs."
    )


def _imagenette_recipe() -> str:
    """How the packaged weights were made, from their cfg (so this page never describes older weights)."""
    import ghostzoo

    cfg = ghostzoo.get_pretrained_cfg("ghostnet_100.imagenette")
    return f"{cfg.published.top1:.1f}% val top-1 at {cfg.input_size[-1]} px; command in docs/training.md"


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    main()
