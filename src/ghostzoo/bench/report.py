"""The files of ``ghostzoo benchmark``: ``NAME.csv`` (every row), ``NAME.md`` (the tables a reader
wants) and ``NAME.png`` (latency per model and backend).

The CSV is the record; the Markdown and the plot are views of it, so they can be written again from
the CSV alone (``read_rows`` + ``write_report``), with nothing re-measured. Each row carries the
command line that measured it, so a report merged from several runs (``--update``) still says how
each of its numbers was made, without parsing the Markdown it wrote before.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import first_line, write_text_atomic
from ..errors import GhostzooError
from .measure import COLUMNS, BenchmarkRow
from .tables import markdown_table, save_figure, write_csv

_LEGEND = (
    "Cells: median latency in ms, and in brackets the speed-up over `eager` at the same batch "
    "(eager median / this median). `unsupported`, `error`, `skipped`: see *Not measured*. "
    "`prepare` is export / quantization / copying before the first call; the first call of "
    "`compile` is its compilation. `int8` and `int8_openvino` share one int8 file per model "
    "(quantized once; it has a free batch dimension): the first of their rows carries the "
    "quantization in its `prepare`.\n"
)
_LONG_COLUMNS = [
    "model",
    "backend",
    "batch",
    "input_size",
    "status",
    "median_ms",
    "p90_ms",
    "min_ms",
    "images_per_s",
    "iters",
    "prepare_s",
    "first_call_s",
]


def _status_kind(row: BenchmarkRow) -> str:
    return row.status.split(":", 1)[0]


def _backends(rows: Sequence[BenchmarkRow]) -> list[str]:
    return list(dict.fromkeys(r.backend for r in rows))


def commands(rows: Sequence[BenchmarkRow]) -> list[str]:
    """The command lines that measured ``rows``, each once, in order of first appearance."""
    return list(dict.fromkeys(r.command for r in rows if r.command))


def _per_batch_table(rows: Sequence[BenchmarkRow], batch: int, backends: Sequence[str]) -> str:
    cells: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.batch == batch:
            line = cells.setdefault(r.model, {"model": r.model, "px": r.input_size})
            line[r.backend] = r
    table = []
    for model, line in cells.items():
        runs = [line[b] for b in backends if b in line]
        if all(_status_kind(r) == "skipped" for r in runs):
            continue
        eager = line.get("eager")
        base = eager.median_ms if eager is not None and eager.ok else None
        out = {"model": model, "px": line["px"]}
        for r in runs:
            if not r.ok:
                out[r.backend] = _status_kind(r)
            elif base is None or r.backend == "eager":
                out[r.backend] = f"{r.median_ms:.2f}"
            else:
                out[r.backend] = f"{r.median_ms:.2f} ({base / r.median_ms:.2f}x)"
        table.append(out)
    return markdown_table(table, ["model", "px", *backends])


def _setup_table(rows: Sequence[BenchmarkRow], backends: Sequence[str]) -> str:
    table = []
    for backend in backends:
        done = [r for r in rows if r.backend == backend and r.ok]
        if not done:
            continue
        slowest = max(done, key=lambda r: r.prepare_s + r.first_call_s)
        table.append(
            {
                "backend": backend,
                "measurements": len(done),
                "median prepare (s)": float(np.median([r.prepare_s for r in done])),
                "median first call (s)": float(np.median([r.first_call_s for r in done])),
                "total prepare + first call (s)": float(sum(r.prepare_s + r.first_call_s for r in done)),
                "slowest": f"{slowest.model} b{slowest.batch}: {slowest.prepare_s + slowest.first_call_s:.1f} s",
            }
        )
    return markdown_table(
        table,
        [
            "backend",
            "measurements",
            "median prepare (s)",
            "median first call (s)",
            "total prepare + first call (s)",
            "slowest",
        ],
    )


def _not_measured_table(rows: Sequence[BenchmarkRow]) -> str:
    """One line per reason: the backends it hit and the (model, batch) measurements it hit on each."""
    per_backend: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        if not r.ok:
            per_backend.setdefault((r.status, r.backend), []).append(f"{r.model} b{r.batch}")
    merged: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (status, backend), hit in per_backend.items():
        merged.setdefault((status, tuple(hit)), []).append(backend)
    table = [
        {"status": status, "backends": ", ".join(backends), "measurements": ", ".join(hit)}
        for (status, hit), backends in merged.items()
    ]
    return markdown_table(table, ["status", "backends", "measurements"])


def markdown_report(
    rows: Sequence[BenchmarkRow], settings: dict[str, str], title: str = "Benchmark", notes: str = "", image: str = ""
) -> str:
    """The Markdown report: the commands that measured the rows, per batch size a models x backends
    table (median ms and speed-up over eager), setup times, what could not be measured and why, and
    every measurement in long form."""
    backends = _backends(rows)
    parts = [f"# {title}\n"]
    if lines := commands(rows):
        parts.append("Generated by:\n\n```bash\n" + "\n".join(lines) + "\n```\n")
    if notes.strip():
        parts.append(notes.strip() + "\n")
    parts.append("\n".join(f"- {k}: {v}" for k, v in settings.items()) + "\n")
    parts.append(_LEGEND)
    for batch in sorted({r.batch for r in rows}):
        parts.append(f"## Batch {batch}\n\n" + _per_batch_table(rows, batch, backends))
    if image:
        parts.append(f"![median latency per model and backend]({image})\n")
    parts.append("## Setup time\n\n" + _setup_table(rows, backends))
    if any(not r.ok for r in rows):
        parts.append("## Not measured\n\n" + _not_measured_table(rows))
    parts.append(
        "## All measurements\n\n(skipped ones are in the CSV only)\n\n"
        + markdown_table([r.to_dict() for r in rows if _status_kind(r) != "skipped"], _LONG_COLUMNS)
    )
    return "\n".join(parts)


def _panels(rows: Sequence[BenchmarkRow]) -> dict[int, tuple[list[str], list[BenchmarkRow]]]:
    """Per measured batch size: its models, fastest eager first (those without eager last), and its ok rows."""
    panels = {}
    for batch in sorted({r.batch for r in rows if r.ok}):
        ok = [r for r in rows if r.batch == batch and r.ok]
        key = {r.model: r.median_ms for r in ok if r.backend == "eager"}
        panels[batch] = (sorted({r.model for r in ok}, key=lambda m: (key.get(m, float("inf")), m)), ok)
    if not panels:
        raise GhostzooError("nothing was measured: no plot to draw")
    return panels


def _draw_panel(ax: Any, batch: int, models: list[str], ok: Sequence[BenchmarkRow], backends: Sequence[str]) -> None:
    """One batch size: a marker per (model, backend) at its median latency, log scale."""
    index = {m: i for i, m in enumerate(models)}
    markers = "osD^v<>Xp*"
    for k, backend in enumerate(backends):
        mine = [r for r in ok if r.backend == backend]
        if mine:
            ax.scatter(
                [r.median_ms for r in mine],
                [index[r.model] for r in mine],
                label=backend,
                marker=markers[k % len(markers)],
                s=22,
                alpha=0.85,
            )
    ax.set_xscale("log")
    ax.set_yticks(range(len(models)), models, fontsize=7)
    ax.set_ylim(-0.7, len(models) - 0.3)
    ax.invert_yaxis()
    ax.grid(True, which="both", axis="x", alpha=0.3)
    ax.set_xlabel(f"median latency, batch {batch} (ms, log scale)")
    ax.legend(fontsize=7, ncol=min(len(backends), 4), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)


def plot_latency(rows: Sequence[BenchmarkRow], path: str | os.PathLike) -> Path:
    """Median latency per model and backend (log scale), one panel per batch size, models sorted by eager."""
    from matplotlib.figure import Figure  # matplotlib is optional: write_report draws only when it is there

    backends = _backends(rows)
    panels = _panels(rows)
    heights = [max(2.0, 0.22 * len(models) + 1.0) for models, _ in panels.values()]
    fig = Figure(figsize=(9, sum(heights) + 0.5))
    axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, (batch, (models, ok)) in zip(axes, panels.items(), strict=True):
        _draw_panel(ax, batch, models, ok, backends)
    fig.tight_layout()
    return save_figure(fig, path)


_TYPES = {f.name: f.type for f in dataclasses.fields(BenchmarkRow)}  # "int", "float | None", "str", ...


def _parse(key: str, text: str) -> Any:
    """One CSV cell back to its BenchmarkRow field type (an empty optional cell is None)."""
    kind = _TYPES[key]
    if text == "" and "None" in kind:
        return None
    if kind == "int":
        return int(text)
    return float(text) if kind.startswith("float") else text


def read_rows(path: str | os.PathLike) -> list[BenchmarkRow]:
    """The rows of a ``NAME.csv`` written by :func:`write_report`; a CSV without exactly the columns of
    this version is refused in one line."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            records = list(reader)
        if sorted(reader.fieldnames or []) != sorted(COLUMNS):
            raise ValueError(f"columns {', '.join(reader.fieldnames or [])}")
        return [BenchmarkRow(**{key: _parse(key, text) for key, text in record.items()}) for record in records]
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise GhostzooError(f"{path} is not a benchmark CSV of this version ({first_line(e)})") from None


def merge_rows(old: Sequence[BenchmarkRow], new: Sequence[BenchmarkRow]) -> list[BenchmarkRow]:
    """``old`` with every (model, backend, batch) that ``new`` measured again replaced in place; the
    rest of ``new`` after it."""
    key = lambda r: (r.model, r.backend, r.batch)  # noqa: E731
    fresh = {key(r): r for r in new}
    merged = [fresh.pop(key(r), r) for r in old]
    return merged + [r for r in new if key(r) in fresh]


def write_report(
    rows: Sequence[BenchmarkRow], output_dir: str | os.PathLike, name: str, settings: dict[str, str], notes: str = ""
) -> dict[str, Path]:
    """Write ``NAME.csv``, ``NAME.md`` and ``NAME.png`` (when matplotlib is installed and a row is ok)
    under ``output_dir``, each atomically; returns the paths written."""
    out = Path(output_dir)
    plot = importlib.util.find_spec("matplotlib") is not None and any(r.ok for r in rows)
    written = {"csv": write_csv(out / f"{name}.csv", [r.to_dict() for r in rows], COLUMNS)}
    if plot:
        written["png"] = plot_latency(rows, out / f"{name}.png")
    written["md"] = write_text_atomic(
        out / f"{name}.md",
        markdown_report(rows, settings, f"Benchmark: {name}", notes, image=f"{name}.png" if plot else ""),
    )
    return written
