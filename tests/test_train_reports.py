"""The training benchmark (benchmarks/train_imagenette.py) compares what it says it compares: ghostzoo's
trainer and the plain timm loop of a seed are the same training but for the memory layout (checked on a
tiny run), and a missing dataset is refused in one line before anything is written."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ghostzoo.cli import main

from conftest import DATA_DIR, ROOT, require

BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def train_imagenette():
    spec = importlib.util.spec_from_file_location("train_imagenette", BENCHMARKS / "train_imagenette.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_refuses_a_missing_dataset_in_one_line(tmp_path):
    script = "train_imagenette.py"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / script),
            "--data",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "out"),
            "--run-dir",
            str(tmp_path / "runs" / "x"),
        ],
        capture_output=True,
        text=True,
    )
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
    args = train_imagenette.build_parser().parse_args(
        [
            "--data",
            str(data),
            "--epochs",
            "2",
            "--img-size",
            "64",
            "--batch-size",
            "4",
            "--workers",
            "1",
            "--run-dir",
            str(tmp_path / "runs" / "x"),
        ]
    )
    ours, theirs = train_imagenette.pair_commands(args, seed=5)
    at = ours.index("--output-dir") + 1
    out, out_default = Path(ours[at]), tmp_path / "default"
    # In this process (three interpreters would cost more than the runs): the plain loop first, so that
    # nothing ghostzoo's trainer sets can reach it; the trainer changes no global torch setting by default.
    theirs_args = train_imagenette.build_parser().parse_args(theirs[2:] + ["--save-state", str(tmp_path / "plain.pth")])
    train_imagenette.plain_timm_loop(theirs_args)
    assert main(ours[3:] + ["--no-channels-last"]) == 0
    assert main(ours[3:at] + [str(out_default)] + ours[at + 1 :]) == 0
    plain = torch.load(tmp_path / "plain.pth", weights_only=True)
    nchw = torch.load(out / "last.pth", weights_only=True)["state_dict"]
    default = torch.load(out_default / "last.pth", weights_only=True)["state_dict"]
    assert nchw.keys() == plain.keys() == default.keys()
    assert all(torch.equal(nchw[k], plain[k]) for k in plain)
    assert not all(torch.equal(default[k], plain[k]) for k in plain)
    top1 = [h["top1"] for h in json.loads((out / "summary.json").read_text())["history"]]
    assert top1 == [h["top1"] for h in json.loads(Path(theirs[theirs.index("--result") + 1]).read_text())]
