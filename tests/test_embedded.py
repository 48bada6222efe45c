"""The model shipped inside the package: offline demo, and the accuracy its cfg claims is real."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

import ghostzoo
from ghostzoo.checkpoints import pretrained_source
from ghostzoo.cli import main
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


def test_demo_runs_offline_and_reports_accuracy(tmp_path, monkeypatch, capsys):
    def no_network(*args, **kwargs):
        raise OSError("the demo tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_cache"))  # nothing cached to fall back on
    out = tmp_path / "demo.json"
    assert main(["demo", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert len(result["predictions"]) == 10
    assert all(len(p["topk"]) == 3 for p in result["predictions"])
    hits = sum(line.startswith("ok ") for line in printed.splitlines())
    assert result["accuracy"] == pytest.approx(10.0 * hits)
    assert f"{hits}/10 correct" in printed
    assert not (tmp_path / "no_cache").exists()


def test_recorded_val_top1_is_what_validate_measures(tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTZOO_CACHE", str(tmp_path))  # the export behind --backend auto
    data = require(DATA_DIR / "imagenette-160")
    model = ghostzoo.create_model(TAG, pretrained=True)
    result = validate(model, data, "val", batch_size=100, workers=2, backend="auto")  # the command line's default
    assert result.images == 3925
    assert result.top1 == pytest.approx(ghostzoo.get_pretrained_cfg(TAG).published.top1, abs=0.01)
