"""Shared fixtures: where ../shared lives, an isolated download cache for every test, and the threads of
each pytest-xdist worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
GOLDEN_DIR = SHARED / "golden"
DATA_DIR = SHARED / "data"


def pytest_configure(config):
    """Under pytest-xdist, share the cores among the workers: torch would give each of them all."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def require(path: Path) -> Path:
    """Skip (with the reason) when the shared folder of the project is not beside the checkout."""
    if not path.exists():
        pytest.skip(f"{path} not found: tests that use ../shared need the project's shared/ folder")
    return path


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's torch hub / Hugging Face caches."""
    home = tmp_path_factory.mktemp("torch_home")
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield


@pytest.fixture
def imagenet_val_images() -> list[Path]:
    folder = require(DATA_DIR / "imagenet-val-sample" / "images")
    return sorted(folder.glob("*.JPEG"))
