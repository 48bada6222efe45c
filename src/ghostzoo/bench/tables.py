"""Result files shared by ``ghostzoo benchmark`` and the scripts in ``benchmarks/``.

A Markdown table, a CSV and a matplotlib figure, each written atomically (temp file + rename), so a
run that is interrupted never leaves half a report behind. They live in the benchmark package, the
package that writes reports, so the scripts that fill ``docs/results`` format their tables the same
way as ``ghostzoo benchmark`` does.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_paths, write_text_atomic


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table of ``columns``; floats with two decimals, a missing cell empty."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "" if value is None else str(value).replace("|", "\\|")  # a bar would split the cell


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    """Write ``rows`` as a CSV of ``columns`` (other keys are left out), atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buf.getvalue())


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save a matplotlib figure as ``path`` through a temp file beside it."""
    with atomic_paths(path) as (tmp,):
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=Path(path).suffix.lstrip(".") or None)
    return Path(path)
