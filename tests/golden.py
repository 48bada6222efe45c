"""Golden parity: official logits, rebuilt official-format weights, loaded the way a user would.

``check_golden(name, tmp_path)`` saves the golden weights with ``torch.save`` (the official format:
a bare state_dict with the official key names), builds the model through
``create_model(name, checkpoint_path=...)`` and compares its logits on the golden input with the
official ones: float32 at 1e-4 relative, or float64 at 1e-6 for files marked ``fragile``.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict

import torch

import ghostzoo

from conftest import GOLDEN_DIR, require

# Models whose reference is another framework's code: their goldens sit in that framework's folder,
# in its own format (tests/models/test_ghostnet_paddle.py and test_ghostnet_tf.py read them).
FOREIGN_GOLDENS = {
    "ghostnet_x0_5": "paddle/GhostNet_x0_5.json",
    "ghostnet_x1_0": "paddle/GhostNet_x1_0.json",
    "ghostnet_x1_3": "paddle/GhostNet_x1_3.json",
    "ghostnet_x1_3_ssld": "paddle/GhostNet_x1_3.json",  # the same code; SSLD changed only the weights
    "tf_ghostnet_100": "tf/ghostnet_tf_100.json",
}


@lru_cache(maxsize=None)
def load_golden(name: str) -> Dict[str, Any]:
    return json.loads(require(GOLDEN_DIR / f"{name}.json").read_text())


def golden_weights_module():
    require(GOLDEN_DIR / "golden_weights.py")
    if str(GOLDEN_DIR) not in sys.path:
        sys.path.insert(0, str(GOLDEN_DIR))
    import golden_weights

    return golden_weights


def save_golden_checkpoint(name: str, path: Path) -> Path:
    """Write the golden weights of ``name`` in the official (bare state_dict) format."""
    torch.save(golden_weights_module().state_dict_from_golden(load_golden(name)), path)
    return path


def relative_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y.double() - ref.double()).abs().max() / ref.double().abs().max())


def check_golden(name: str, tmp_path: Path, **create_kwargs: Any) -> float:
    """Assert ``name`` reproduces its official logits; returns the relative error."""
    g = load_golden(name)
    ckpt = save_golden_checkpoint(name, tmp_path / f"{name}.pth")
    model = ghostzoo.create_model(name, checkpoint_path=ckpt, num_classes=g["num_classes"], **create_kwargs).eval()
    x = golden_weights_module().input_from_golden(g)
    fragile = g["numerics"].get("fragile", False)
    if fragile:
        model, x = model.double(), x.double()
        ref, tol = torch.tensor(g["output_float64"]["logits"], dtype=torch.float64), 1e-6
    else:
        ref, tol = torch.tensor(g["output"]["logits"]), 1e-4
    with torch.no_grad():
        y = model(x)
    assert y.shape == ref.shape
    err = relative_error(y, ref)
    assert err <= tol, f"{name}: relative error {err:.3g} > {tol}"
    return err
