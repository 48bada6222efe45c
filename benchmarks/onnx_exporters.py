"""torch's two ONNX exporters side by side: export time and graph of every family, and of the int8 file.

For the smallest registered model of each family (random weights, BatchNorms with their default
statistics), in one process and one after the other: ``export_model(..., exporter=...)`` with the
TorchScript exporter, then with the dynamo exporter, each at the model's native input size and batch
1 (``ghostzoo export``'s defaults). Both go through the same parity check. Then the int8 file of ghostnet_100
(PTQ on random images: export time does not depend on the calibration) with each exporter. One
untimed export of tinynet_e per exporter first, so that neither pays for first-use imports.

    python benchmarks/onnx_exporters.py

writes docs/results/onnx_exporters.md and onnx_exporters.csv.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import onnx
import torch

import ghostzoo
from ghostzoo.bench.measure import machine_description
from ghostzoo.bench.tables import markdown_table, write_csv
from ghostzoo.deploy import dynamic_shape_ops, export_model
from ghostzoo.deploy.onnx_export import EXPORTERS
from ghostzoo.quantization import calibrate, prepare
from ghostzoo.quantization.export import int8_proto
from ghostzoo.registry import model_entries, smallest_per_family

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "docs" / "results"
COLUMNS = ["model", "family", "file", "exporter", "export_s", "nodes", "dynamic_shape_ops", "max_rel_error"]


def _row(model: str, family: str, file: str, exporter: str, seconds: float, proto: Any, error: Any) -> Dict[str, Any]:
    row = dict(model=model, family=family, file=file, exporter=exporter, export_s=round(seconds, 1))
    row.update(nodes=len(proto.graph.node), dynamic_shape_ops=len(dynamic_shape_ops(proto)), max_rel_error=error)
    print(row, file=sys.stderr)
    return row


def float_rows(name: str, tmp: Path) -> List[Dict[str, Any]]:
    torch.manual_seed(0)
    model = ghostzoo.create_model(name).eval()
    family = model_entries()[name].family
    rows = []
    for exporter in EXPORTERS:
        path = tmp / f"{name}-{exporter}.onnx"
        start = time.perf_counter()
        report = export_model(model, "onnx", path, exporter=exporter)
        seconds = time.perf_counter() - start
        rows.append(_row(name, family, "fp32", exporter, seconds, onnx.load(str(path)), f"{report.max_rel_error:.1e}"))
        path.unlink()
    return rows


def int8_rows(name: str) -> List[Dict[str, Any]]:
    torch.manual_seed(0)
    model = ghostzoo.create_model(name).eval()
    qmodel = prepare(model)
    calibrate(qmodel, [torch.randn(8, *model.pretrained_cfg.input_size)])
    rows = []
    for exporter in EXPORTERS:
        start = time.perf_counter()
        proto = int8_proto(qmodel, model.pretrained_cfg.input_size[-1], exporter)
        rows.append(_row(name, model_entries()[name].family, "int8", exporter, time.perf_counter() - start, proto, ""))
    return rows


def main(argv: List[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=sorted(smallest_per_family()))
    p.add_argument("--int8-model", default="ghostnet_100")
    p.add_argument("--output", default=str(RESULTS / "onnx_exporters"), help="page and CSV stem")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for exporter in EXPORTERS:  # first use: imports and one-time setup of each exporter
            export_model(ghostzoo.create_model("tinynet_e"), "onnx", Path(tmp) / "warm.onnx", exporter=exporter)
        rows = [r for name in args.models for r in float_rows(name, Path(tmp))] + int8_rows(args.int8_model)
    stem = Path(args.output)
    write_csv(stem.with_suffix(".csv"), rows, COLUMNS)
    totals = {e: sum(r["export_s"] for r in rows if r["exporter"] == e and r["file"] == "fp32") for e in EXPORTERS}
    command = " ".join(["python benchmarks/onnx_exporters.py", *argv])
    stem.with_suffix(".md").write_text(
        f"""# torch's ONNX exporters: TorchScript (deprecated) and dynamo (supported)

Measured on {machine_description()}, onnxscript {_version("onnxscript")}, with `{command}`.

`ghostzoo export --exporter torchscript|dynamo` (`export_model(..., exporter=...)`) of the smallest
model of each family at its native input size and batch 1, random weights, one process, the two
exporters one after the other; then the int8 file of {args.int8_model} (`ghostzoo quantize --exporter
...`). `export_s`: the whole export, parity check included (for int8: the QDQ graph with a free batch
dimension and its folding, no check); `nodes`: ONNX nodes in the file; `dynamic_shape_ops`: nodes
that compute on shapes at run time (`ghostzoo.deploy.dynamic_shape_ops`); `max_rel_error`: against
PyTorch.

Over the {len(args.models)} float exports: {totals["torchscript"]:.0f} s with TorchScript,
{totals["dynamo"]:.0f} s with dynamo ({totals["dynamo"] / totals["torchscript"]:.1f}x).

{markdown_table(rows, COLUMNS)}
""",
        encoding="utf-8",
    )


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    main(sys.argv[1:])
