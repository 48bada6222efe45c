"""``ghostzoo benchmark``: timing rule, rows, report files and the command line (no assertion on speed)."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import shlex

import pytest
import torch
from PIL import Image

from ghostzoo import create_model, profile_model
from ghostzoo.bench import (
    COLUMNS,
    TimingBudget,
    benchmark,
    environment,
    markdown_report,
    read_rows,
    time_runs,
    write_report,
)
from ghostzoo.cli import main
from ghostzoo.deploy import reparameterize
from ghostzoo.errors import GhostzooError

QUICK = TimingBudget(warmup=1, min_iters=3, min_time_s=0.0, max_time_s=60.0, max_iters=3)
QUICK_ARGS = ["--warmup", "1", "--min-iters", "2", "--min-time", "0", "--max-iters", "2", "--threads", "1"]
BACKENDS = ["eager", "channels_last", "onnxruntime", "openvino", "int8", "int8_openvino"]


@pytest.fixture(scope="module")
def rows():
    # batch 2: every exported backend traces a fixed batch other than 1 (test_cli_times_an_exported_file: batch 1)
    return benchmark(["ghostnet_050"], BACKENDS, [2], input_size=64, threads=1, budget=QUICK)


def test_rows_are_well_formed(rows):
    assert [(r.backend, r.batch) for r in rows] == [(b, 2) for b in BACKENDS]
    for r in rows:
        assert r.status == "ok", r.status
        assert (r.model, r.input_size, r.device, r.threads, r.weights) == ("ghostnet_050", 64, "cpu", 1, "random")
        assert r.iters == 3
        assert 0 < r.min_ms <= r.median_ms <= r.p90_ms
        assert r.images_per_s == pytest.approx(r.batch / (r.median_ms / 1e3))
        assert r.prepare_s >= 0 and r.first_call_s > 0
    exported = [r for r in rows if r.backend not in ("eager", "channels_last")]
    assert all(r.prepare_s > 0 for r in exported)  # they export / quantize before the first call


def test_report_files_are_written_and_parse(rows, tmp_path):
    settings = environment("cpu", 1, QUICK)
    # the measured batch 2, and the same rows as a batch 1: the report has a section per batch size
    rows = [dataclasses.replace(r, batch=n, command="ghostzoo benchmark ghostnet_050") for n in (1, 2) for r in rows]
    written = write_report(rows, tmp_path, "zoo", settings, notes="Why.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zoo.csv", "zoo.md", "zoo.png"]  # no temp files left
    with open(written["csv"], newline="") as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == COLUMNS and len(table) == len(rows)
    assert [float(t["median_ms"]) for t in table] == pytest.approx([r.median_ms for r in rows])
    assert read_rows(written["csv"]) == rows  # the CSV is the record: the report can be written again from it
    md = written["md"].read_text()
    assert md.splitlines()[0] == "# Benchmark: zoo" and "Why." in md
    assert "```bash\nghostzoo benchmark ghostnet_050\n```" in md  # one command, listed once
    assert "- threads: 1 for every backend" in md
    for batch in (1, 2):
        section = md.split(f"## Batch {batch}\n")[1].split("\n## ")[0]
        line = next(s for s in section.splitlines() if s.startswith("| ghostnet_050 |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        eager = next(r for r in rows if r.backend == "eager" and r.batch == batch)
        cl = next(r for r in rows if r.backend == "channels_last" and r.batch == batch)
        assert cells[:4] == [
            "ghostnet_050",
            "64",
            f"{eager.median_ms:.2f}",
            f"{cl.median_ms:.2f} ({eager.median_ms / cl.median_ms:.2f}x)",
        ]
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
    assert events == ["run", "run"] + ["sync", "run", "sync"] * 4
    # the iteration cap and the time cap both stop a measurement before its minimum count
    assert len(time_runs(lambda: None, TimingBudget(warmup=0, min_iters=50, max_iters=7))) == 7
    capped = time_runs(
        lambda: torch.ones(1).add_(1),
        TimingBudget(warmup=0, min_iters=10**9, min_time_s=0.0, max_time_s=0.05, max_iters=10**9),
    )
    assert 1 <= len(capped) < 10**9


def test_unsupported_and_failing_backends_give_rows(monkeypatch):
    got = benchmark(
        ["vig_ti_224_gelu"], ["int8", "int8_openvino", "eager"], [1], input_size=64, budget=QUICK, threads=1
    )
    assert got[0].status.startswith("unsupported: vig_ti_224_gelu (vig) has no int8 path") and got[2].ok
    assert got[1].status == got[0].status
    # the report names each reason once, with the backends and measurements it hit
    reasons = markdown_report(got, {}).split("## Not measured\n")[1].split("\n## ")[0]
    assert f"| {got[0].status} | int8, int8_openvino | vig_ti_224_gelu b1 |" in reasons
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else find_spec(name, *a)
    )
    got = benchmark(["lego_vgg16"], ["eager", "openvino"], [1], input_size=32, budget=QUICK, threads=1)
    assert got[0].ok and got[1].median_ms is None
    assert got[1].status == "unsupported: openvino is not installed (pip install openvino)"
    got = benchmark(["lego_vgg16"], ["eager"], [1], input_size=16, budget=QUICK, threads=1)
    assert got[0].median_ms is None and got[0].status == (
        "unsupported: --input-size 16 is too small for lego_vgg16: the smallest side it runs on is 32px"
    )


def test_large_batches_only_for_small_models():
    gmacs = profile_model(reparameterize(create_model("ghostnet_050")), (3, 64, 64)).macs / 1e9  # what is timed
    above = benchmark(
        ["ghostnet_050"], ["eager"], [1, 2], input_size=64, budget=QUICK, threads=1, batched_max_gmacs=gmacs * 1.01
    )
    below = benchmark(
        ["ghostnet_050"], ["eager"], [1, 2], input_size=64, budget=QUICK, threads=1, batched_max_gmacs=gmacs * 0.99
    )
    assert above[0].ok and above[1].ok and below[0].ok  # batch 1 is always timed
    assert below[1].status == f"skipped: batch sizes above 1 only for models of <= {gmacs * 0.99:g} GMACs"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"backends": ["eager", "tensorrt"]}, "unknown backend"),
        ({"batch_sizes": [1, 0]}, "batch sizes must be positive"),
        ({"device": "nosuchdevice"}, "unknown device"),
        ({"checkpoint": "x.onnx", "models": ["ghostnet_*"]}, "a checkpoint belongs to one model"),
    ],
)
def test_library_rejects_bad_arguments(kwargs, message):
    kwargs = {"models": ["ghostnet_050"], **kwargs}
    with pytest.raises(GhostzooError, match=message):
        benchmark(kwargs.pop("models"), **kwargs)


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["ghostnet_050", "--backends", "eager,tensorrt"], 2, "unknown backend tensorrt"),
        (["ghostnet_050", "--batch-sizes", "1,0"], 2, "must be at least 1"),
        (["ghostnet_050", "--batch-sizes", "one"], 2, "not an integer"),
        (["ghostnet_05"], 1, "unknown model 'ghostnet_05'; did you mean ghostnet_050"),
        (["nosuch*"], 1, "no model matches 'nosuch*'"),
        ([], 1, "name a model"),
        (["ghostnet_050", "--device", "nosuchdevice"], 1, "unknown device"),
        (["ghostnet_050", "--min-time", "9", "--max-time", "1"], 1, "min time (9.0) <= max time (1.0)"),
        (["ghostnet_050", "--checkpoint", "missing.onnx"], 1, "exported model not found: missing.onnx"),
        (["ghostnet_050", "--notes", "missing.md"], 1, "--notes: no such file missing.md"),
        (["ghostnet_050", "--output-dir", f"{__file__}/out"], 1, f"{__file__} is not a writable folder"),
    ],
)
def test_cli_bad_input_is_one_line(argv, code, message, tmp_path, capsys):
    if code == 2:
        with pytest.raises(SystemExit) as exit_info:
            main(["benchmark", "--output-dir", str(tmp_path), *argv])
        assert exit_info.value.code == 2
    else:
        assert main(["benchmark", "--output-dir", str(tmp_path), *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and (code == 2 or len(err) == 1)
    assert not any(tmp_path.iterdir())  # nothing written on bad input


def test_empty_calibration_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "calib").mkdir()
    (tmp_path / "calib" / "broken.jpg").write_bytes(b"not a jpeg")
    assert (
        main(
            [
                "benchmark",
                "ghostnet_050",
                "--backends",
                "int8",
                "--calib-data",
                str(tmp_path / "calib"),
                "--output-dir",
                str(tmp_path / "out"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ghostzoo benchmark: error: no readable image found in {tmp_path / 'calib'} for int8 calibration"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["float", "int8"])
def test_cli_times_an_exported_file(kind, tmp_path, capsys):
    """The user's own file: an export, or the int8 file of `ghostzoo quantize`, timed as it is."""
    from ghostzoo.deploy.export import export_model
    from ghostzoo.quantization import quantize_to_onnx

    model = create_model("ghostnet_050", num_classes=3).eval()
    path = tmp_path / "mine.onnx"
    if kind == "float":
        export_model(model, "onnx", path, input_size=64, dynamic_batch=True)
    else:
        quantize_to_onnx(model, torch.randn(4, 3, 64, 64), path, input_size=64)
    out = tmp_path / "out"
    assert (
        main(
            [
                "benchmark",
                "--checkpoint",
                str(path),
                "--backends",
                "eager",
                *QUICK_ARGS,
                "--output-dir",
                str(out),
                "--name",
                "mine",
                "--output",
                str(tmp_path / "mine.json"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "ghostnet_050" in printed and "file" in printed
    result = json.loads((tmp_path / "mine.json").read_text())
    assert [(r["backend"], r["status"], r["weights"], r["input_size"]) for r in result["rows"]] == [
        ("eager", "ok", str(path), 64),
        ("file", "ok", str(path), 64),
    ]  # the file's input size, from its metadata
    assert sorted(p.name for p in out.iterdir()) == ["mine.csv", "mine.md", "mine.png"]
    md = (out / "mine.md").read_text()
    assert f"ghostzoo benchmark --checkpoint {path} --backends eager --warmup 1" in md


def test_update_measures_again_only_what_it_names(tmp_path, capsys):
    """--update: a first run writes two models; a second re-times one backend of one of them. The
    other rows stay as they were, the re-timed one is replaced in place and names the second command,
    and the report lists both commands: all read back from the CSV (the old NAME.md is not read)."""
    out = tmp_path / "out"
    first = [
        "benchmark",
        "ghostnet_050",
        "tinynet_e",
        "--backends",
        "eager,onnxruntime",
        "--input-size",
        "64",
        *QUICK_ARGS,
        "--output-dir",
        str(out),
        "--name",
        "zoo",
    ]
    assert main(first) == 0
    with open(out / "zoo.csv", newline="") as f:
        before = list(csv.DictReader(f))
    assert {r["command"] for r in before} == {shlex.join(["ghostzoo", *first])}
    (out / "zoo.md").write_text("# not a report any more\n")
    second = [
        "benchmark",
        "tinynet_e",
        "--backends",
        "onnxruntime",
        "--input-size",
        "64",
        *QUICK_ARGS,
        "--output-dir",
        str(out),
        "--name",
        "zoo",
        "--update",
    ]
    assert main(second) == 0
    with open(out / "zoo.csv", newline="") as f:
        after = list(csv.DictReader(f))
    key = lambda r: (r["model"], r["backend"], r["batch"])  # noqa: E731
    assert [key(r) for r in after] == [key(r) for r in before]
    changed = [a for a, b in zip(after, before) if a != b]
    assert [key(r) for r in changed] == [("tinynet_e", "onnxruntime", "1")]  # timings differ run to run
    assert changed[0]["command"] == shlex.join(["ghostzoo", *second])
    md = (out / "zoo.md").read_text()
    block = md.split("```bash\n")[1].split("\n```")[0].splitlines()
    assert block == [shlex.join(["ghostzoo", *first]), shlex.join(["ghostzoo", *second])]
    capsys.readouterr()
    assert main(["benchmark", "tinynet_e", "--output-dir", str(tmp_path / "none"), "--update"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err
        == [f"ghostzoo benchmark: error: --update: no earlier results to update at {tmp_path / 'none'}/benchmark.csv"]
        and not (tmp_path / "none").exists()
    )
    for name, header in [("other", "model,latency"), ("older", ",".join(c for c in COLUMNS if c != "command"))]:
        (out / f"{name}.csv").write_text(header + "\n")  # a CSV of something else, or of an earlier version
        assert main(["benchmark", "tinynet_e", "--output-dir", str(out), "--name", name, "--update"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        columns = header.replace(",", ", ")
        assert len(err) == 1 and f"is not a benchmark CSV of this version (columns {columns})" in err[0]
        assert (out / f"{name}.csv").read_text() == header + "\n" and not (out / f"{name}.md").exists()


def test_nothing_measured_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["benchmark", "vig_ti_224_gelu", "--backends", "int8", "--output-dir", str(out), *QUICK_ARGS]
    assert main(argv) == 1
    err = capsys.readouterr().err
    line = err.strip().splitlines()[-1]  # after the progress bar
    assert line.startswith("ghostzoo benchmark: error: nothing could be measured, so nothing was written; ")
    assert "has no int8 path" in line and err.count("error:") == 1
    assert not out.exists() or not any(out.iterdir())
