"""``ghostzoo benchmark``: timing rule, rows, report files and the command line (no assertion on speed)."""

from __future__ import annotations

import csv
import importlib.util
import json

import pytest
import torch
from PIL import Image

from ghostzoo import create_model
from ghostzoo.cli import main
from ghostzoo.deploy.benchmark import COLUMNS, TimingBudget, benchmark, environment, time_runs, write_report
from ghostzoo.errors import GhostzooError

QUICK = TimingBudget(warmup=1, min_iters=3, min_time_s=0.0, max_time_s=60.0, max_iters=3)
QUICK_ARGS = ["--warmup", "1", "--min-iters", "2", "--min-time", "0", "--max-iters", "2"]
BACKENDS = ["eager", "channels_last", "onnxruntime", "openvino"]


@pytest.fixture(scope="module")
def rows():
    return benchmark(["ghostnet_050"], BACKENDS, [1, 2], input_size=64, threads=2, budget=QUICK)


def test_rows_are_well_formed(rows):
    assert [(r.backend, r.batch) for r in rows] == [(b, n) for b in BACKENDS for n in (1, 2)]
    for r in rows:
        assert r.status == "ok", r.status
        assert (r.model, r.input_size, r.device, r.threads, r.weights) == ("ghostnet_050", 64, "cpu", 2, "random")
        assert r.iters == 3
        assert 0 < r.min_ms <= r.median_ms <= r.p90_ms
        assert r.images_per_s == pytest.approx(r.batch / (r.median_ms / 1e3))
        assert r.prepare_s >= 0 and r.first_call_s > 0
    exported = [r for r in rows if r.backend in ("onnxruntime", "openvino")]
    assert all(r.prepare_s > 0 for r in exported)  # they export (and parity-check) before the first call


def test_report_files_are_written_and_parse(rows, tmp_path):
    settings = environment("cpu", 2, QUICK)
    written = write_report(rows, tmp_path, "zoo", settings, command="ghostzoo benchmark ghostnet_050", notes="Why.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zoo.csv", "zoo.md", "zoo.png"]  # no temp files left
    with open(written["csv"], newline="") as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == COLUMNS and len(table) == len(rows)
    assert [float(t["median_ms"]) for t in table] == pytest.approx([r.median_ms for r in rows])
    md = written["md"].read_text()
    assert md.splitlines()[0] == "# Benchmark: zoo" and "ghostzoo benchmark ghostnet_050" in md and "Why." in md
    assert "- threads: 2 for every backend" in md
    for batch in (1, 2):
        section = md.split(f"## Batch {batch}\n")[1].split("\n## ")[0]
        line = next(s for s in section.splitlines() if s.startswith("| ghostnet_050 |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        eager = next(r for r in rows if r.backend == "eager" and r.batch == batch)
        cl = next(r for r in rows if r.backend == "channels_last" and r.batch == batch)
        assert cells[:4] == ["ghostnet_050", "64", f"{eager.median_ms:.2f}",
                             f"{cl.median_ms:.2f} ({eager.median_ms / cl.median_ms:.2f}x)"]
    assert md.count("| ghostnet_050 | ") == 2 + len(rows)  # one line per batch table, one per measurement
    with Image.open(written["png"]) as im:
        assert im.format == "PNG" and im.width > 200 and im.height > 100


def test_timing_rule_and_synchronisation():
    events = []
    run = lambda: events.append("run")  # noqa: E731
    sync = lambda: events.append("sync")  # noqa: E731
    times = time_runs(run, TimingBudget(warmup=2, min_iters=4, min_time_s=0.0, max_time_s=60.0), sync)
    assert len(times) == 4 and all(t >= 0 for t in times)
    # warm-up untimed, then every timed run is bracketed by synchronisations (as CUDA needs)
    assert events[:3] == ["run", "run", "sync"] and events[3:] == ["sync", "run", "sync"] * 4
    # the iteration cap and the time cap both stop a measurement before its minimum count
    assert len(time_runs(lambda: None, TimingBudget(warmup=0, min_iters=50, max_iters=7))) == 7
    capped = time_runs(lambda: torch.ones(1).add_(1), TimingBudget(warmup=0, min_iters=10**9, min_time_s=0.0,
                                                                  max_time_s=0.05, max_iters=10**9))
    assert 1 <= len(capped) < 10**9


def test_unsupported_and_failing_backends_give_rows(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else find_spec(name, *a))
    got = benchmark(["lego_vgg16"], ["eager", "openvino"], [1], input_size=16, budget=QUICK)
    assert got[0].status.startswith("error: RuntimeError: ") and got[0].median_ms is None  # 16 px is too small
    assert got[1].status == "unsupported: openvino is not installed (pip install openvino)"


def test_max_gmacs_skips_large_batches():
    got = benchmark(["ghostnet_050"], ["eager"], [1, 64], input_size=64, budget=QUICK, max_gmacs=0.2)
    assert got[0].ok and got[1].status.startswith("skipped: 64 x ")


@pytest.mark.parametrize("kwargs, message", [
    ({"backends": ["eager", "tensorrt"]}, "unknown backend"),
    ({"batch_sizes": [1, 0]}, "batch sizes must be positive"),
    ({"device": "nosuchdevice"}, "unknown device"),
    ({"checkpoint": "x.onnx", "models": ["ghostnet_*"]}, "a checkpoint belongs to one model"),
])
def test_library_rejects_bad_arguments(kwargs, message):
    kwargs = {"models": ["ghostnet_050"], **kwargs}
    with pytest.raises(GhostzooError, match=message):
        benchmark(kwargs.pop("models"), **kwargs)


@pytest.mark.parametrize("argv, code, message", [
    (["ghostnet_050", "--backends", "eager,tensorrt"], 2, "unknown backend tensorrt"),
    (["ghostnet_050", "--batch-sizes", "1,0"], 2, "must be at least 1"),
    (["ghostnet_050", "--batch-sizes", "one"], 2, "not an integer"),
    (["ghostnet_05"], 1, "unknown model 'ghostnet_05'; did you mean ghostnet_050"),
    (["nosuch*"], 1, "no model matches 'nosuch*'"),
    ([], 1, "name a model"),
    (["ghostnet_050", "--device", "nosuchdevice"], 1, "unknown device"),
    (["ghostnet_050", "--min-time", "9", "--max-time", "1"], 1, "min time (9.0) <= max time (1.0)"),
    (["ghostnet_050", "--checkpoint", "missing.onnx"], 1, "exported model not found: missing.onnx"),
])
def test_cli_bad_input_is_one_line(argv, code, message, tmp_path, capsys):
    if code == 2:
        with pytest.raises(SystemExit) as exit_info:
            main(["benchmark", *argv, "--output-dir", str(tmp_path)])
        assert exit_info.value.code == 2
    else:
        assert main(["benchmark", *argv, "--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and (code == 2 or len(err) == 1)
    assert not any(tmp_path.iterdir())  # nothing written on bad input


def test_cli_times_an_exported_file(tmp_path, capsys):
    from ghostzoo.deploy.export import export_model

    model = create_model("ghostnet_050", num_classes=3).eval()
    path = tmp_path / "mine.onnx"
    export_model(model, "onnx", path, input_size=64)
    out = tmp_path / "out"
    assert main(["benchmark", "--checkpoint", str(path), "--backends", "eager", "--input-size", "64", *QUICK_ARGS,
                 "--output-dir", str(out), "--name", "mine", "--output", str(tmp_path / "mine.json")]) == 0
    printed = capsys.readouterr().out
    assert "ghostnet_050" in printed and "file" in printed
    result = json.loads((tmp_path / "mine.json").read_text())
    assert [(r["backend"], r["status"], r["weights"]) for r in result["rows"]] == [
        ("eager", "ok", str(path)), ("file", "ok", str(path))]
    assert sorted(p.name for p in out.iterdir()) == ["mine.csv", "mine.md", "mine.png"]
    md = (out / "mine.md").read_text()
    assert f"ghostzoo benchmark --checkpoint {path} --backends eager" in md
