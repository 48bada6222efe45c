"""Shared fixtures: where ../shared lives, and an isolated download cache for every test."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
GOLDEN_DIR = SHARED / "golden"
DATA_DIR = SHARED / "data"


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
