"""``--backend auto`` against ``eager``, end to end: ``validate`` throughput and ``predict`` latency.

For each model, in one process, on the same data:

* the data loader alone (read, decode, resize, crop, normalise, collate; the workers and batch size
  of the runs below): the ceiling any backend can reach end to end;
* ``ghostzoo.validate`` with each backend: images per second over the whole split, and top-1, which
  must agree with eager's (the export tolerance moves at most a near-tie);
* ``Predictor.predict`` of one image file with each backend: the median of repeated calls
  (decoding and preprocessing included), as a user's one-off prediction costs.

The export behind ``auto`` is made (and parity-checked) before timing starts, in a private cache: a
first call in real use pays it once. A model without trained weights for the data runs with fresh
weights and a head for its classes: its top-1 is chance, its throughput is the point.

    python benchmarks/backends_e2e.py --data ../shared/data/imagenette-160

writes docs/results/backends_e2e.md and backends_e2e.csv.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import torch
from torch.utils.data import DataLoader

import ghostzoo
from ghostzoo.bench.measure import machine_description
from ghostzoo.bench.tables import markdown_table, write_csv
from ghostzoo.data import build_dataset, create_transform
from ghostzoo.data.datasets import collate_skipping
from ghostzoo.deploy.backend import resolve_backend, with_backend
from ghostzoo.engine.evaluate import validate
from ghostzoo.inference import Predictor

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "docs" / "results"
COLUMNS = [
    "model",
    "backend",
    "runtime",
    "images",
    "top1",
    "img_per_s",
    "speedup",
    "loader_img_per_s",
    "model_img_per_s",
    "predict_ms",
]


def parse_args(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="an ImageFolder dataset root (its val split is read)")
    p.add_argument("--models", nargs="+", default=["ghostnet_100.imagenette", "ghostnetv2_160"])
    p.add_argument("--backends", nargs="+", default=["eager", "auto"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--predict-runs", type=int, default=30)
    p.add_argument("--output", default=str(RESULTS / "backends_e2e"), help="page and CSV stem")
    return p.parse_args(argv)


def build(name: str, num_classes: int) -> torch.nn.Module:
    """The weights a ``name.tag`` names; a bare name gets fresh weights for ``num_classes``."""
    if "." in name:
        return ghostzoo.create_model(name, pretrained=True).eval()
    torch.manual_seed(0)
    return ghostzoo.create_model(name, num_classes=num_classes).eval()


def loader_rate(model: torch.nn.Module, data: str, batch_size: int, workers: int) -> float:
    """Images per second of the data loader alone, with the model's eval preprocessing."""
    dataset = build_dataset(data, "val", create_transform(model.pretrained_cfg))
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_skipping)
    start, n = time.perf_counter(), 0
    for batch in loader:
        n += len(batch[0])
    return n / (time.perf_counter() - start)


def model_rate(runner: torch.nn.Module, batch_size: int, repeats: int = 5) -> float:
    """Images per second of the runner alone on a ready batch (no data loading)."""
    x = torch.randn(batch_size, *runner.pretrained_cfg.input_size)
    with torch.no_grad():
        runner(x)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            runner(x)
    return batch_size * repeats / (time.perf_counter() - start)


def predict_ms(model: torch.nn.Module, image: Path, runs: int) -> float:
    predictor = Predictor(model)
    predictor.predict([image])  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        predictor.predict([image])
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def measure(name: str, args: argparse.Namespace) -> List[Dict[str, Any]]:
    classes = len(build_dataset(args.data, "val", None).classes)
    model = build(name, classes)
    loader = loader_rate(model, args.data, args.batch_size, args.workers)
    image = next(p for p in sorted(Path(args.data, "val").rglob("*")) if p.is_file())
    rows = []
    for backend in args.backends:
        runner = with_backend(model, backend)  # exported and checked here, outside the timing
        start = time.perf_counter()
        result = validate(runner, args.data, batch_size=args.batch_size, workers=args.workers)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "model": name,
                "backend": backend,
                "runtime": resolve_backend(backend, torch.device("cpu")),
                "images": result.images,
                "top1": round(result.top1, 2),
                "img_per_s": round(result.images / seconds, 1),
                "loader_img_per_s": round(loader, 1),
                "model_img_per_s": round(model_rate(runner, args.batch_size), 1),
                "predict_ms": round(predict_ms(runner, image, args.predict_runs), 1),
            }
        )
        print(rows[-1], file=sys.stderr)
    for row in rows:
        row["speedup"] = round(row["img_per_s"] / rows[0]["img_per_s"], 2)
    return rows


def write_page(rows: List[Dict[str, Any]], args: argparse.Namespace, argv: List[str]) -> None:
    stem = Path(args.output)
    write_csv(stem.with_suffix(".csv"), rows, COLUMNS)
    command = " ".join(["python benchmarks/backends_e2e.py", *argv])
    page = f"""# `--backend auto` vs `eager`, end to end

Measured on {machine_description()}, with `{command}`.

`validate` over the whole val split ({rows[0]["images"]} images), batch {args.batch_size}, {args.workers} data
workers; `speedup` is images/s against the first backend's; `loader_img_per_s` is the data loader alone with
the same workers and batch; `model_img_per_s` is the runtime alone on a ready batch of the same size (both
bounds of the end-to-end rate; on a 2-core machine the loader's workers and the runtime share the cores);
`predict_ms` is the median of {args.predict_runs} calls of
`Predictor.predict` on one image file, decoding included. The export behind `auto` is made and checked
before the timing. A model without weights for this data runs with fresh weights (top-1 at chance).

{markdown_table(rows, COLUMNS)}
"""
    stem.with_suffix(".md").write_text(page, encoding="utf-8")


def main(argv: List[str]) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["GHOSTZOO_CACHE"] = cache  # every export made and checked in this run
        rows = [row for name in args.models for row in measure(name, args)]
    write_page(rows, args, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
