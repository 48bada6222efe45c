"""`ghostzoo convert`: other frameworks' files become ghostzoo files that load alone, equal to the original."""

from __future__ import annotations

import torch

import ghostzoo
from ghostzoo.cli import main

from conftest import GOLDEN_DIR, require


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_converted_files_load_alone_with_the_same_weights(tmp_path, capsys):
    sources = [
        (require(GOLDEN_DIR / "paddle" / "GhostNet_x0_5_golden.pdparams"), "ghostnet_x0_5"),
        (require(GOLDEN_DIR / "mindspore" / "ghostnet_050.ckpt"), "ghostnet_050.mindcv_in1k"),
        (require(GOLDEN_DIR / "tf" / "ghostnet_tf_100.index"), "tf_ghostnet_100"),
    ]
    for source, name in sources:
        out = tmp_path / f"{name}.safetensors"
        assert main(["convert", str(source), "--model", name, "--output", str(out)]) == 0
        assert f"-> {out}" in capsys.readouterr().out
        direct = ghostzoo.create_model(name, checkpoint_path=source)
        converted = ghostzoo.create_model(name.split(".")[0], checkpoint_path=out)
        assert _same_weights(direct, converted)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.safetensors" for _, n in sources)


def test_a_file_for_another_model_is_refused_and_nothing_is_written(tmp_path, capsys):
    source = require(GOLDEN_DIR / "paddle" / "GhostNet_x0_5_golden.pdparams")
    out = tmp_path / "bad.safetensors"
    assert main(["convert", str(source), "--model", "ghostnet_x1_0", "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ghostzoo convert: error: checkpoint does not fit ghostnet_x1_0") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
