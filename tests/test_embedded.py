"""The model shipped inside the package: offline demo, and the accuracy its cfg claims is real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import ghostzoo
from ghostzoo.checkpoints import pretrained_source
from ghostzoo.engine import validate

from conftest import DATA_DIR, require

TAG = "ghostnet_100.imagenette"


def test_packaged_weights_are_small_and_load_without_network():
    cfg = ghostzoo.get_pretrained_cfg(TAG)
    path = Path(pretrained_source(cfg))
    assert path.is_file() and path.stat().st_size <= 20_000_000  # safetensors, float32
    model = ghostzoo.create_model(TAG, pretrained=True)
    assert model.num_classes == 10 and list(model.pretrained_cfg.class_names) == list(cfg.class_names)
    assert TAG in ghostzoo.list_pretrained("ghostnet_100*")


def test_demo_runs_offline_and_reports_accuracy(tmp_path):
    out = tmp_path / "demo.json"
    done = subprocess.run(
        [sys.executable, "-m", "ghostzoo", "demo", "--output", str(out)],
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "TORCH_HOME": str(tmp_path / "no_cache")},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert len(result["predictions"]) == 10
    assert all(len(p["topk"]) == 3 for p in result["predictions"])
    hits = sum(line.startswith("ok ") for line in done.stdout.splitlines())
    assert result["accuracy"] == pytest.approx(10.0 * hits)
    assert f"{hits}/10 correct" in done.stdout


def test_recorded_val_top1_is_what_validate_measures(tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTZOO_CACHE", str(tmp_path))  # the export behind --backend auto
    data = require(DATA_DIR / "imagenette-160")
    model = ghostzoo.create_model(TAG, pretrained=True)
    result = validate(model, data, "val", batch_size=100, workers=2, backend="auto")  # the command line's default
    assert result.images == 3925
    assert result.top1 == pytest.approx(ghostzoo.get_pretrained_cfg(TAG).published.top1, abs=0.01)
