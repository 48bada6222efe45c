"""The training benchmarks refuse to report runs made elsewhere beside their own: a seed's runs repeat bit
for bit only on the CPU and library versions they were made with, and once a report mixed runs it could
not repeat (benchmarks/train_imagenette.py, benchmarks/train_noise.py; no training runs here)."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

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
