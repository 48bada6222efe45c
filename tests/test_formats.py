"""Other frameworks' weight files, read without those frameworks: the stored real files of
../shared/golden give back the arrays their frameworks wrote, bit for bit."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import torch

import ghostzoo
import ghostzoo.checkpoints
from ghostzoo.checkpoints import read_checkpoint
from ghostzoo.errors import CheckpointError
from ghostzoo.formats import bundle_prefix, read_tf_bundle

from conftest import GOLDEN_DIR, require

TF = GOLDEN_DIR / "tf"


def _tf_golden():
    require(TF / "tf_golden.py")
    if str(TF) not in sys.path:
        sys.path.insert(0, str(TF))
    import tf_golden

    return tf_golden, json.loads((TF / "ghostnet_tf_100.json").read_text())


@pytest.mark.parametrize("given", ["ghostnet_tf_100", "ghostnet_tf_100.index", "ghostnet_tf_100.data-00000-of-00001"])
def test_a_tensorflow_bundle_reads_back_the_arrays_tensorflow_wrote(given):
    tg, g = _tf_golden()
    expected = tg.make_variables(g)  # the arrays the official TF graph was given (names, HWIO layouts)
    ckpt = read_checkpoint(TF / given)  # the prefix or either of its files, as --checkpoint takes it
    assert ckpt.state_dict.keys() == expected.keys()
    assert all(np.array_equal(ckpt.state_dict[k].numpy(), v) for k, v in expected.items())


def test_a_damaged_bundle_is_refused_in_one_line(tmp_path):
    for suffix in (".index", ".data-00000-of-00001"):
        (tmp_path / f"m{suffix}").write_bytes((TF / f"ghostnet_tf_100{suffix}").read_bytes())
    data = tmp_path / "m.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])  # cut short
    with pytest.raises(CheckpointError, match=r"cannot read TensorFlow checkpoint .*m: MobileNetV2/.* do not hold"):
        read_tf_bundle(bundle_prefix(tmp_path / "m"))
    (tmp_path / "m.index").write_bytes(b"not an sstable" * 10)
    with pytest.raises(CheckpointError, match="no SSTable footer"):
        read_tf_bundle(bundle_prefix(tmp_path / "m"))


def test_a_bundle_for_another_model_names_the_keys_it_lacks():
    with pytest.raises(CheckpointError, match="does not fit ghostnet_100"):
        ghostzoo.create_model("ghostnet_100", checkpoint_path=require(TF / "ghostnet_tf_100.index"))


MS = GOLDEN_DIR / "mindspore"


def _ms_golden(name: str):
    require(MS / "mindspore_golden.py")
    if str(MS) not in sys.path:
        sys.path.insert(0, str(MS))
    import mindspore_golden

    return mindspore_golden, json.loads((MS / f"{name}.json").read_text())


def _varint(n: int) -> bytes:
    out = b""
    while True:
        out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return out


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def write_ckpt(arrays, path, extras=()) -> None:
    """A .ckpt as mindspore.save_checkpoint lays it out: one Checkpoint message per parameter, concatenated
    (dims one varint field each, tensor_type as MindSpore names it, raw bytes)."""
    names = {np.dtype("float32"): "Float32", np.dtype("int64"): "Int64"}
    with open(path, "wb") as f:
        for tag, array in [*arrays.items(), *extras]:
            dims = b"".join(_varint(1 << 3) + _varint(d) for d in array.shape)
            tensor = dims + _field(2, names[array.dtype].encode()) + _field(3, array.tobytes())
            f.write(_field(1, _field(1, tag.encode()) + _field(2, tensor)))


def _assert_ms_logits(model, g, mg) -> None:
    with torch.no_grad():
        y = model.eval()(torch.from_numpy(mg.make_input(g))).numpy()
    ref = mg.logits(g)
    assert np.abs(y - ref).max() / np.abs(ref).max() <= 1e-4


def test_the_real_mindspore_file_reads_back_and_gives_mindcv_logits():
    mg, g = _ms_golden("ghostnet_050")
    path = require(MS / "ghostnet_050.ckpt")
    ckpt = read_checkpoint(path)
    expected = mg.make_parameters(g)
    assert ckpt.state_dict.keys() == expected.keys()
    assert all(np.array_equal(ckpt.state_dict[k].numpy(), v) for k, v in expected.items())
    _assert_ms_logits(ghostzoo.create_model("ghostnet_050.mindcv_in1k", checkpoint_path=path), g, mg)


def test_a_training_checkpoint_of_the_1x_model_loads_without_its_extras(tmp_path):
    mg, g = _ms_golden("ghostnet_100")
    arrays = mg.make_parameters(g)
    extras = [("global_step", np.array([1000], np.int64)), ("moments.conv_stem.weight", arrays["conv_stem.weight"])]
    write_ckpt(arrays, tmp_path / "w.ckpt", extras)
    (tmp_path / "crc.ckpt").write_bytes((tmp_path / "w.ckpt").read_bytes() + b"crc_num" + b"0123456789")
    for name in ("w.ckpt", "crc.ckpt"):
        _assert_ms_logits(ghostzoo.create_model("ghostnet_100.mindcv_in1k", checkpoint_path=tmp_path / name), g, mg)


def test_pretrained_mindcv_weights_come_from_the_cfg_url(tmp_path, monkeypatch):
    mg, g = _ms_golden("ghostnet_050")
    cfg = ghostzoo.get_pretrained_cfg("ghostnet_050.mindcv_in1k")
    assert cfg.url.endswith("/ghostnet_050-85b91860.ckpt") and cfg.published.top1 == 66.03
    shutil.copy(require(MS / "ghostnet_050.ckpt"), tmp_path / "ghostnet_050-85b91860.ckpt")
    monkeypatch.setattr(ghostzoo.checkpoints, "cache_dir", lambda: tmp_path)  # as if downloaded before
    _assert_ms_logits(ghostzoo.create_model("ghostnet_050.mindcv_in1k", pretrained=True), g, mg)


def test_a_truncated_mindspore_file_is_refused_in_one_line(tmp_path):
    (tmp_path / "cut.ckpt").write_bytes(require(MS / "ghostnet_050.ckpt").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="cannot read .*cut.ckpt as a MindSpore checkpoint: a field runs past"):
        read_checkpoint(tmp_path / "cut.ckpt")
