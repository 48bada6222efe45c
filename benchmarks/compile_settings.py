"""Which inductor settings make ``--backend compile`` worth its name on a CPU, against the runtimes.

For each model and batch size, in one process: PyTorch eager (the deploy form, channels-last), then
``torch.compile`` of the same module under each entry of ``COMPILE_VARIANTS`` (dynamo reset between
them; compile time reported apart from the steady-state latency), then the ONNX Runtime and
OpenVINO files of ``ghostzoo export``. Random weights (latency does not depend on them), one input
size, every backend on the same thread count.

    python benchmarks/compile_settings.py

writes docs/results/compile_settings.md and compile_settings.csv.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import torch

import ghostzoo
from ghostzoo.bench.measure import TimingBudget, machine_description, time_runs
from ghostzoo.bench.tables import markdown_table, write_csv
from ghostzoo.deploy import export_model, load_exported, reparameterize

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "docs" / "results"
COLUMNS = ["model", "batch", "backend", "median_ms", "vs_eager", "compile_s"]

# torch.compile keyword arguments per variant: "freezing" folds the weights into constants (oneDNN
# pre-packs them), "cpp_wrapper" replaces the Python wrapper of the generated kernels by C++ (less
# per-call overhead), "max-autotune" times alternative kernels (GEMM templates) at compile time
COMPILE_VARIANTS: Dict[str, Dict[str, Any]] = {
    "compile": {},
    "compile freezing": {"options": {"freezing": True}},
    "compile freezing cpp_wrapper": {"options": {"freezing": True, "cpp_wrapper": True}},
    "compile freezing max-autotune": {"options": {"freezing": True, "max_autotune": True}},
}


def parse_args(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["ghostnet_100", "ghostnetv2_100"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 32])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--output", default=str(RESULTS / "compile_settings"), help="page and CSV stem")
    return p.parse_args(argv)


def _median_ms(run: Callable[[], Any]) -> float:
    return statistics.median(time_runs(run, TimingBudget(warmup=3, min_iters=10, min_time_s=3, max_time_s=8))) * 1e3


def measure(name: str, batch: int, threads: int) -> List[Dict[str, Any]]:
    torch.manual_seed(0)
    model = ghostzoo.create_model(name).eval()
    deploy = reparameterize(copy.deepcopy(model)).to(memory_format=torch.channels_last)
    x = torch.randn(batch, *model.pretrained_cfg.input_size).to(memory_format=torch.channels_last)
    rows = []

    def row(backend: str, run: Callable[[], Any], compile_s: float | None = None) -> None:
        with torch.no_grad():
            rows.append({"model": name, "batch": batch, "backend": backend, "median_ms": round(_median_ms(run), 2)})
        rows[-1]["compile_s"] = None if compile_s is None else round(compile_s, 1)
        print(rows[-1], file=sys.stderr)

    row("eager", lambda: deploy(x))
    for variant, kwargs in COMPILE_VARIANTS.items():
        torch._dynamo.reset()
        compiled = torch.compile(copy.deepcopy(deploy), dynamic=False, **kwargs)
        start = time.perf_counter()
        with torch.no_grad():
            compiled(x)  # compiles
        row(variant, lambda m=compiled: m(x), time.perf_counter() - start)
    nchw = x.contiguous()  # made once: a PyTorch op per call would keep its threads spinning beside the runtime's
    with tempfile.TemporaryDirectory() as tmp:
        for backend, fmt, suffix in (("onnxruntime", "onnx", ".onnx"), ("openvino", "openvino", ".xml")):
            path = Path(tmp) / f"model{suffix}"
            export_model(model, fmt, path, batch_size=batch)
            runtime = load_exported(path, threads=threads)
            row(backend, lambda m=runtime: m(nchw))
    for r in rows:
        r["vs_eager"] = round(rows[0]["median_ms"] / r["median_ms"], 2)
    return rows


def main(argv: List[str]) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [r for name in args.models for batch in args.batch_sizes for r in measure(name, batch, args.threads)]
    stem = Path(args.output)
    write_csv(stem.with_suffix(".csv"), rows, COLUMNS)
    command = " ".join(["python benchmarks/compile_settings.py", *argv])
    stem.with_suffix(".md").write_text(
        f"""# `torch.compile` settings on a CPU, against ONNX Runtime and OpenVINO

Measured on {machine_description()}, {args.threads} threads for every backend, with `{command}`.

Each model's deploy form (BatchNorm folded), random weights, channels-last input at its native size.
`median_ms`: the median latency of a call (3 warm-up runs, then at least 10 runs and 3 s); `vs_eager`:
eager's median over this row's (above 1 is faster); `compile_s`: the first call, which compiles.
Variants: {"; ".join(f"`{k}` = `torch.compile(model, dynamic=False, {v})`" for k, v in COMPILE_VARIANTS.items())}.

{markdown_table(rows, COLUMNS)}
""",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
