"""PaddleClas GhostNet: the real .pdparams file and the rebuilt arrays of every width give PaddleClas's
own logits (../shared/golden/paddle), read without PaddlePaddle."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys

import numpy as np
import pytest
import torch

import ghostzoo
import ghostzoo.checkpoints
from ghostzoo.cli import main
from ghostzoo.errors import CheckpointError

from conftest import GOLDEN_DIR, require

PADDLE = GOLDEN_DIR / "paddle"
WIDTHS = {"ghostnet_x0_5": "GhostNet_x0_5", "ghostnet_x1_0": "GhostNet_x1_0", "ghostnet_x1_3": "GhostNet_x1_3"}


def _golden(paddle_name: str):
    require(PADDLE / "paddle_golden.py")
    if str(PADDLE) not in sys.path:
        sys.path.insert(0, str(PADDLE))
    import paddle_golden

    return paddle_golden, json.loads((PADDLE / f"{paddle_name}.json").read_text())


def _assert_paddle_logits(model: torch.nn.Module, paddle_name: str) -> None:
    pg, g = _golden(paddle_name)
    with torch.no_grad():
        y = model.eval()(torch.from_numpy(pg.make_input(g))).numpy()
    ref = pg.logits(g)
    assert np.abs(y - ref).max() / np.abs(ref).max() <= 1e-4


def _write_pdparams(arrays, path, protocol: int = 4) -> None:
    """A file as paddle.save writes it: a pickled dict of numpy arrays, then the name table."""
    table = {k: k.replace(".", "_") for k in arrays}
    with open(path, "wb") as f:
        pickle.dump({**arrays, "StructuredToParameterName@@": table}, f, protocol=protocol)


def test_the_real_pdparams_file_gives_paddleclas_logits():
    path = require(PADDLE / "GhostNet_x0_5_golden.pdparams")
    model = ghostzoo.create_model("ghostnet_x0_5", checkpoint_path=path)
    _assert_paddle_logits(model, "GhostNet_x0_5")
    assert ghostzoo.count_params(model) == ghostzoo.get_pretrained_cfg("ghostnet_x0_5").published.params


@pytest.mark.parametrize("name", sorted(WIDTHS))
def test_every_width_matches_paddleclas(name, tmp_path):
    pg, g = _golden(WIDTHS[name])
    _write_pdparams(pg.make_state_dict(g), tmp_path / "w.pdparams", protocol=2 if name == "ghostnet_x1_0" else 4)
    model = ghostzoo.create_model(name, checkpoint_path=tmp_path / "w.pdparams")
    _assert_paddle_logits(model, WIDTHS[name])
    assert ghostzoo.count_params(model) == ghostzoo.get_pretrained_cfg(name).published.params


def test_pretrained_true_reads_the_pdparams_of_the_cfg_url(tmp_path, monkeypatch):
    cfg = ghostzoo.get_pretrained_cfg("ghostnet_x0_5")
    assert cfg.url.endswith("/GhostNet_x0_5_pretrained.pdparams")
    shutil.copy(require(PADDLE / "GhostNet_x0_5_golden.pdparams"), tmp_path / "GhostNet_x0_5_pretrained.pdparams")
    monkeypatch.setattr(ghostzoo.checkpoints, "cache_dir", lambda: tmp_path)  # as if downloaded before
    _assert_paddle_logits(ghostzoo.create_model("ghostnet_x0_5", pretrained=True), "GhostNet_x0_5")


def test_all_five_names_of_the_model_zoo_work(capsys):
    for name in ("ghostnet_100", "ghostnet_x0_5", "ghostnet_x1_0", "ghostnet_x1_3", "ghostnet_x1_3_ssld"):
        assert main(["info", name]) == 0
        assert ghostzoo.create_model(name).pretrained_cfg.architecture == name
    assert "79.4" in capsys.readouterr().out
    ssld = ghostzoo.get_pretrained_cfg("ghostnet_x1_3_ssld")
    assert ssld.url == ghostzoo.get_pretrained_cfg("ghostnet_x1_3.paddle_ssld_in1k").url
    assert ssld.url.endswith("/GhostNet_x1_3_ssld_pretrained.pdparams")


def test_a_pickle_with_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    path = tmp_path / "evil.pdparams"
    with open(path, "wb") as f:
        pickle.dump({"conv1._conv.weight": Payload()}, f, protocol=4)
    with pytest.raises(CheckpointError, match=r"references posix\.mkdir, which a \.pdparams file never holds"):
        ghostzoo.create_model("ghostnet_x0_5", checkpoint_path=path)
    assert not marker.exists()


def test_a_file_of_another_width_names_the_mismatched_keys(capsys):
    path = require(PADDLE / "GhostNet_x0_5_golden.pdparams")
    with pytest.raises(CheckpointError, match=r"does not fit ghostnet_x1_0: wrong shape: blocks\.0\.0\.ghost1"):
        ghostzoo.create_model("ghostnet_x1_0", checkpoint_path=path)
    assert main(["predict", "ghostnet_x1_0", str(path), "--checkpoint", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ghostzoo predict: error:" in err
