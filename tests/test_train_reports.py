"""The training benchmarks (benchmarks/train_imagenette.py, benchmarks/train_noise.py) compare what they
say they compare: ghostzoo's trainer and the plain timm loop of a seed are the same training but for the
memory layout (checked on a tiny run), and runs made elsewhere are refused, not reported beside these: a
seed's runs repeat bit for bit only on the CPU and library versions they were made with, and once a
report mixed runs it could not repeat."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import DATA_DIR, ROOT, require

BENCHMARKS = ROOT / "benchmarks"
COLUMNS = ["seed", "epoch", "ghostzoo_top1", "timm_top1", "ghostzoo_img_per_s", "timm_img_per_s", "environment"]


@pytest.fixture(scope="module")
def train_imagenette():
    spec = importlib.util.spec_from_file_location("train_imagenette", BENCHMARKS / "train_imagenette.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_report_csv(path: Path, environments: dict) -> None:
    """A one-epoch train_imagenette.csv with one row per seed, made on ``environments[seed]``."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for seed, made in environments.items():
            writer.writerow({"seed": seed, "epoch": 1, "ghostzoo_top1": 50.0 + seed, "timm_top1": 49.0,
                             "ghostzoo_img_per_s": 80.0, "timm_img_per_s": 70.0, "environment": made})


def test_run_folder_records_where_its_runs_were_made(train_imagenette, tmp_path):
    here = train_imagenette.environment()
    assert "torch" in here and "timm" in here
    folder = tmp_path / "runs"
    train_imagenette.check_made_here(folder, here, has_runs=False)
    assert (folder / "environment.txt").read_text() == here + "\n"
    train_imagenette.check_made_here(folder, here, has_runs=True)  # made here: accepted
    with pytest.raises(SystemExit, match="its runs were made on .*, not on another CPU; use another run folder"):
        train_imagenette.check_made_here(folder, "another CPU", has_runs=True)
    (folder / "environment.txt").unlink()
    with pytest.raises(SystemExit, match="do not record where they were made"):
        train_imagenette.check_made_here(folder, here, has_runs=True)
    assert not (folder / "environment.txt").exists()


def test_keep_previous_takes_only_rows_made_here(train_imagenette, tmp_path):
    here = train_imagenette.environment()
    path = tmp_path / "train_imagenette.csv"
    write_report_csv(path, {0: here, 1: here, 2: here})
    kept = train_imagenette.previous_seeds(path, skip=[2], epochs=1, here=here)
    assert sorted(kept) == [0, 1] and kept[1][0]["ghostzoo_top1"] == 51.0 and "environment" not in kept[1][0]
    write_report_csv(path, {0: here, 1: "another CPU", 2: "another CPU"})
    with pytest.raises(SystemExit, match=r"holds seeds \[1\] not made on"):
        train_imagenette.previous_seeds(path, skip=[2], epochs=1, here=here)  # seed 2 is run again: not kept


def test_scripts_refuse_a_report_made_elsewhere_in_one_line(tmp_path):
    out, runs, data = tmp_path / "out", tmp_path / "runs", tmp_path / "data"
    out.mkdir()
    (data / "train").mkdir(parents=True)
    write_report_csv(out / "train_imagenette.csv", {0: "another CPU"})
    before = sorted(p.name for p in out.iterdir())
    for script, args in (("train_imagenette.py", ["--keep-previous", "--seeds", "1", "--epochs", "1",
                                                  "--run-dir", str(runs / "x")]),
                         ("train_noise.py", ["--seeds", "0", "--run-dir", str(runs)])):
        done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--data", str(data), "--out", str(out),
                               *args], capture_output=True, text=True)
        assert done.returncode == 1, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "not made on" in done.stderr, done.stderr
    assert not runs.exists() and sorted(p.name for p in out.iterdir()) == before


def test_scripts_refuse_a_missing_dataset_in_one_line(tmp_path):
    for script in ("train_imagenette.py", "train_noise.py"):
        done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--data", str(tmp_path / "none"),
                               "--out", str(tmp_path / "out"), "--run-dir", str(tmp_path / "runs" / "x")],
                              capture_output=True, text=True)
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip() == f"{script}: dataset folder not found: {tmp_path / 'none'}"
    assert sorted(tmp_path.iterdir()) == []


def test_ghostzoo_train_in_nchw_is_the_benchmarks_plain_timm_loop(train_imagenette, tmp_path):
    """The report's pairing holds: the benchmark's ghostzoo command with ``--no-channels-last`` ends with the
    plain timm loop's weights bit for bit, so the default run differs from that loop only by its memory layout
    (which does change the weights: the comparison below can tell)."""
    source = require(DATA_DIR / "imagenette-160")
    data = tmp_path / "data"
    for split, n in (("train", 8), ("val", 4)):
        for c in sorted(p.name for p in (source / "train").iterdir())[:3]:
            (data / split / c).mkdir(parents=True)
            for f in sorted((source / split / c).iterdir())[:n]:
                (data / split / c / f.name).symlink_to(f)
    args = train_imagenette.build_parser().parse_args([
        "--data", str(data), "--epochs", "2", "--img-size", "64", "--batch-size", "4", "--workers", "1",
        "--run-dir", str(tmp_path / "runs" / "x")])
    ours, theirs = train_imagenette.pair_commands(args, seed=5)
    at = ours.index("--output-dir") + 1
    out, out_default = Path(ours[at]), tmp_path / "default"
    runs = {"nchw": ours + ["--no-channels-last"], "default": ours[:at] + [str(out_default)] + ours[at + 1:],
            "plain": theirs + ["--save-state", str(tmp_path / "plain.pth")]}
    for name, cmd in runs.items():
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, f"{name}: {done.stderr[-2000:]}"
    plain = torch.load(tmp_path / "plain.pth", weights_only=True)
    nchw = torch.load(out / "last.pth", weights_only=True)["state_dict"]
    default = torch.load(out_default / "last.pth", weights_only=True)["state_dict"]
    assert nchw.keys() == plain.keys() == default.keys()
    assert all(torch.equal(nchw[k], plain[k]) for k in plain)
    assert not all(torch.equal(default[k], plain[k]) for k in plain)
    top1 = [h["top1"] for h in json.loads((out / "summary.json").read_text())["history"]]
    assert top1 == [h["top1"] for h in json.loads(Path(theirs[theirs.index("--result") + 1]).read_text())]
