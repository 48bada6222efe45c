"""The ghostzoo command, run as a user runs it: output, JSON files, exit codes, one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch

from ghostzoo.cli import main

from conftest import DATA_DIR, require
from golden import load_golden, save_golden_checkpoint


def run(capsys, *argv: str):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def ckpt_050(tmp_path_factory):
    return save_golden_checkpoint("ghostnet_050", tmp_path_factory.mktemp("w") / "ghostnet_050.pth")


def test_list_table_and_json(capsys, tmp_path):
    code, out, _ = run(capsys, "list", "ghostnet_[0-9]*", "--output", str(tmp_path / "list.json"))
    assert code == 0
    assert "ghostnet_100  5.18" in out and "73.98" in out and "in1k" in out
    rows = json.loads((tmp_path / "list.json").read_text())
    assert [r["name"] for r in rows] == ["ghostnet_050", "ghostnet_100", "ghostnet_130"]
    assert rows[1]["params"] == load_golden("ghostnet_100")["params"]


def test_list_pretrained_only(capsys):
    code, out, _ = run(capsys, "list", "--pretrained")
    assert code == 0 and "ghostnet_100" in out and "parameternet_600m" not in out


def test_info(capsys, tmp_path):
    code, out, _ = run(capsys, "info", "ghostnet_100", "--output", str(tmp_path / "info.json"))
    assert code == 0
    assert "state_dict_73.98.pth" in out and "timm/ghostnet_100.in1k" in out and "5,182,508" in out
    # the published MACs of the official weights carry their unit; the Imagenette weights have none
    assert "MACs 0.141G," in out and "MACs -," in out and "-G" not in out
    info = json.loads((tmp_path / "info.json").read_text())
    assert [f["reduction"] for f in info["feature_info"]] == [2, 4, 8, 16, 32]


def test_profile_totals_and_stages(capsys, tmp_path):
    code, out, _ = run(capsys, "profile", "ghostnet_100", "--output", str(tmp_path / "p.json"))
    assert code == 0 and "0.1488 GMACs" in out and "5,182,508 params" in out
    prof = json.loads((tmp_path / "p.json").read_text())
    assert prof["macs"] == load_golden("ghostnet_100")["macs_batch1"]["value"]
    assert sum(s["macs"] for s in prof["stages"]) == prof["macs"]
    assert sum(s["params"] for s in prof["stages"]) == prof["params"]
    assert [s["reduction"] for s in prof["stages"]] == [2, 4, 8, 16, 32, None]


def test_profile_other_resolution_agrees_with_fvcore(capsys, tmp_path):
    from fvcore.nn import FlopCountAnalysis

    import ghostzoo

    run(capsys, "profile", "ghostnet_100", "--input-size", "112", "--output", str(tmp_path / "p.json"))
    macs_112 = json.loads((tmp_path / "p.json").read_text())["macs"]
    counter = FlopCountAnalysis(ghostzoo.create_model("ghostnet_100").eval(), torch.zeros(1, 3, 112, 112))
    counter.unsupported_ops_warnings(False)
    assert macs_112 == counter.total()


def test_predict_files_folders_topk_and_json(capsys, tmp_path, ckpt_050, imagenet_val_images):
    bad = tmp_path / "bad.JPEG"
    bad.write_text("not an image")
    out_json = tmp_path / "results.json"
    code, out, err = run(
        capsys,
        "predict",
        "ghostnet_050",
        str(imagenet_val_images[0]),
        str(bad),
        str(imagenet_val_images[0].parent),
        "--topk",
        "2",
        "--checkpoint",
        str(ckpt_050),
        "--output",
        str(out_json),
    )
    assert code == 0
    assert f"skipped {bad}" in err
    result = json.loads(out_json.read_text())
    assert len(result["predictions"]) == 1 + len(imagenet_val_images)
    assert all(len(p["topk"]) == 2 for p in result["predictions"])
    assert result["skipped"][0]["path"] == str(bad)
    first = result["predictions"][0]["topk"][0]
    assert f"{first['label']}  ({first['index']})" in out


def test_predict_exits_non_zero_when_no_image_is_readable(capsys, tmp_path, ckpt_050):
    (tmp_path / "a.jpg").write_text("text")
    code, _, err = run(
        capsys,
        "predict",
        "ghostnet_050",
        str(tmp_path / "a.jpg"),
        str(tmp_path / "none.png"),
        "--checkpoint",
        str(ckpt_050),
        "--output",
        str(tmp_path / "r.json"),
    )
    assert code == 1
    assert "ghostzoo predict: error: no readable image among 2 input(s)" in err
    assert json.loads((tmp_path / "r.json").read_text())["predictions"] == []


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["info", "ghostnet_10"], ["unknown model 'ghostnet_10'", "did you mean", "ghostnet_100"]),
        (["profile", "ghostnet100"], ["unknown model", "ghostnet_100"]),
        (["list", "nothing*"], ["no model matches"]),
        (["predict", "ghostnet_050", "x.jpg"], ["no released weights", "--checkpoint"]),
        (["predict", "ghostnet_100.in21k", "x.jpg"], ["unknown pretrained tag", "ghostnet_100.in1k"]),
        (["predict", "ghostnet_100", "x.jpg", "--device", "tpu9"], ["unknown device 'tpu9'"]),
    ],
)
def test_bad_names_fail_in_one_line(capsys, argv, fragments):
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert_one_line_error(err, *fragments)


def test_bad_checkpoints_fail_in_one_line(capsys, tmp_path, imagenet_val_images):
    image = str(imagenet_val_images[0])
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x00" * 64)
    other = tmp_path / "w100.pth"
    torch.save({"state_dict": {"conv_stem.weight": torch.zeros(16, 3, 3, 3)}}, other)
    cases = [
        (tmp_path / "missing.pth", ["checkpoint not found"]),
        (corrupt, ["cannot read checkpoint", "corrupt.pth"]),
        (other, ["does not fit ghostnet_100", "missing"]),
    ]
    for ckpt, fragments in cases:
        out_json = tmp_path / f"{ckpt.stem}.json"
        code, _, err = run(
            capsys, "predict", "ghostnet_100", image, "--checkpoint", str(ckpt), "--output", str(out_json)
        )
        assert code == 1
        assert_one_line_error(err, *fragments)
        assert not out_json.exists()  # nothing half-written


def test_offline_pretrained_download_is_one_line(capsys, monkeypatch, imagenet_val_images):
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    code, _, err = run(capsys, "predict", "ghostnet_100", str(imagenet_val_images[0]))
    assert code == 1
    assert_one_line_error(err, "could not download https://github.com/huawei-noah/", "offline", "--checkpoint PATH")


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "ghostnet_100", "x.jpg", "--topk", "0"],
        ["predict", "ghostnet_100", "x.jpg", "--topk", "many"],
        ["profile", "ghostnet_100", "--input-size", "-3"],
        ["benchmark", "ghostnet_050", "--output-dir", "out", "--name", "../../x"],
        ["train", "ghostnet_050", "--data", "d", "--lr", "-1"],
        ["predict", "ghostnet_100"],
        ["frobnicate"],
        [],
    ],
)
def test_bad_arguments_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as e:
        code = main(argv)
        raise SystemExit(code)
    assert e.value.code == 2
    if argv:  # a malformed command line is one line too; `ghostzoo` alone shows the help
        err = capsys.readouterr().err
        assert_one_line_error(err, "error: ", "--help)")
        assert err.startswith("ghostzoo")


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "ghostzoo", "info", "nope"], capture_output=True, text=True)
    assert out.returncode == 1 and out.stderr.startswith("ghostzoo info: error: unknown model 'nope'")


# One command per output option of each subcommand; each would run for a while before writing.
OUTPUT_COMMANDS = [
    ["list", "ghostnet_*", "--output", "{target}"],
    ["info", "ghostnet_100", "--output", "{target}"],
    ["profile", "ghostnet_050", "--output", "{target}"],
    ["predict", "ghostnet_050", "x.jpg", "--checkpoint", "none.pth", "--output", "{target}"],
    ["validate", "ghostnet_050", "--data", "none", "--output", "{target}"],
    ["export", "ghostnet_050", "--format", "onnx", "--random-weights", "--output", "{target}"],
    ["quantize", "ghostnet_050", "--output", "{target}", "--checkpoint", "none.pth", "--calib-data", "none"],
    ["benchmark", "ghostnet_050", "--output-dir", "{target}"],
    ["train", "ghostnet_050", "--data", "none", "--output-dir", "{target}"],
]


@pytest.mark.parametrize("argv", OUTPUT_COMMANDS, ids=lambda argv: argv[0])
@pytest.mark.parametrize("where", ["under_a_file", "a_folder"])
def test_unwritable_output_targets_are_refused_before_the_work(capsys, tmp_path, argv, where):
    """An output under a regular file, or (for a file output) a folder by that name: one line, exit 1,
    before the command's own checks and work, and nothing written there."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    folder = tmp_path / "folder.json"
    folder.mkdir()
    is_dir_option = "--output-dir" in argv
    if where == "a_folder" and is_dir_option:
        pytest.skip("an existing folder is a fine --output-dir")
    target = blocker / "out.json" if where == "under_a_file" else folder
    before = sorted(tmp_path.rglob("*"))
    code, out, err = run(capsys, *[a.replace("{target}", str(target)) for a in argv])
    assert code == 1
    if where == "a_folder":
        assert_one_line_error(err, f"--output {target} is a folder: name a file to write")
    else:
        option = "--output-dir" if is_dir_option else "--output"
        assert_one_line_error(err, f"{option} {target}: {blocker} is not a writable folder")
    assert sorted(tmp_path.rglob("*")) == before


def test_predict_takes_a_single_path(ckpt_050, imagenet_val_images):
    """A path given as one string is one image (or folder), not a sequence of one-character paths."""
    import ghostzoo
    from ghostzoo.inference import Predictor

    predictor = Predictor(ghostzoo.create_model("ghostnet_050", checkpoint_path=ckpt_050))
    one = predictor.predict(str(imagenet_val_images[0]), topk=2)
    listed = predictor.predict([imagenet_val_images[0]], topk=2)
    assert [p["path"] for p in one.predictions] == [str(imagenet_val_images[0])] and not one.skipped
    assert one.predictions == listed.predictions


def _bad_inputs(tmp_path):
    """One bad input per subcommand, beyond the classes tested on their own: (argv, what the line says)."""
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    no_images = tmp_path / "no_images"
    (no_images / "train" / "a").mkdir(parents=True)
    (no_images / "val" / "a").mkdir(parents=True)
    only_train = tmp_path / "only_train"
    (only_train / "train" / "a").mkdir(parents=True)
    (only_train / "train" / "a" / "x.jpg").write_bytes(b"")
    out = str(tmp_path / "out.json")
    return [
        (["list", "zzz*", "--output", out], "no model matches 'zzz*'"),
        (["info", "ghostnet_100.nope", "--output", out], "unknown pretrained tag"),
        (["predict", "ghostnet_050", str(tmp_path), "--checkpoint", str(empty), "--output", out], "cannot read"),
        (["demo", "ghostnet_050", "--output", out], "no released weights"),
        (["validate", "ghostnet_100.imagenette", "--data", str(no_images), "--output", out], "no_images"),
        (["train", "ghostnet_050", "--data", str(only_train), "--output-dir", str(tmp_path / "run")], "val"),
        (["export", "ghostnet_051", "--format", "onnx", "--output", str(tmp_path / "m.onnx")], "unknown model"),
        (["benchmark", "ghostnet_050", "--notes", "missing.md", "--output-dir", str(tmp_path / "b")], "--notes"),
        (["quantize", "vig_ti_224_gelu", "--output", str(tmp_path / "q.onnx"), "--calib-data", "x"], "vig_ti_224_gelu"),
        (["profile", "ghostnet_100.in21k", "--output", out], "unknown pretrained tag"),
        (
            ["push-to-hub", "ghostnet_050", "me/x", "--metrics", str(empty), "--output-dir", str(tmp_path / "r")],
            "not a `ghostzoo validate --output` file",
        ),
        (
            ["convert", str(empty), "--model", "ghostnet_050", "--output", str(tmp_path / "c.safetensors")],
            "cannot read",
        ),
    ]


def test_bad_input_to_every_subcommand_is_one_line_and_leaves_nothing(tmp_path, capsys):
    from ghostzoo.cli import COMMANDS

    cases = _bad_inputs(tmp_path)
    assert {argv[0] for argv, _ in cases} == set(COMMANDS)
    before = sorted(tmp_path.rglob("*"))
    for argv, fragment in cases:
        code, out, err = run(capsys, *argv)
        assert code == 1, (argv, err)
        assert_one_line_error(err, f"ghostzoo {argv[0]}: error: ", fragment)
        assert "Traceback" not in err + out
        assert sorted(tmp_path.rglob("*")) == before, argv


@pytest.mark.parametrize(
    "argv",
    [
        ["profile", "--input-size", "8"],
        ["export", "--input-size", "8", "--format", "onnx", "--random-weights", "--output", "{tmp}/m.onnx"],
        ["benchmark", "--input-size", "8", "--output-dir", "{tmp}/b", "--max-iters", "1", "--min-iters", "1"],
        ["train", "--img-size", "8", "--data", "{data}", "--output-dir", "{tmp}/run", "--batch-size", "4"],
    ],
    ids=lambda argv: argv[0],
)
def test_an_input_too_small_for_the_model_names_the_smallest(capsys, tmp_path, argv):
    """TNT cuts 16 px patches: on 8 px images it would fail deep inside. The command says which side
    the model takes, and that side runs."""
    data = require(DATA_DIR / "imagenette-160")
    argv = [argv[0], "tnt_s_patch16_224", *[a.format(tmp=tmp_path, data=data) for a in argv[1:]]]
    code, _, err = run(capsys, *argv)
    assert code == 1
    line = err.strip().splitlines()[-1]  # after benchmark's progress bar
    option = "--img-size" if argv[0] == "train" else "--input-size"
    found = re.search(rf"{option} 8 is too small for tnt_s_patch16_224: the smallest side it runs on is (\d+)px", line)
    assert found and err.count("error:") == 1, err
    assert not list(tmp_path.iterdir())
    assert run(capsys, "profile", "tnt_s_patch16_224", "--input-size", found.group(1))[0] == 0


def test_timm_spellings_of_the_training_and_validation_flags():
    """The flags timm's train.py / validate.py users type mean the same here (where the meanings match)."""
    from ghostzoo.cli_parser import build_parser

    parser = build_parser()
    timm_style = parser.parse_args(
        "train m --data-dir d -b 8 -j 1 --model-ema --model-ema-decay 0.99 --drop 0.1 --drop-path 0.05 "
        "--aa rand-m9-mstd0.5 --reprob 0.25 --initial-checkpoint c.pth --amp-dtype bfloat16".split()
    )
    ours = parser.parse_args(
        "train m --data d --batch-size 8 --workers 1 --ema --ema-decay 0.99 --drop-rate 0.1 --drop-path-rate 0.05 "
        "--auto-augment rand-m9-mstd0.5 --re-prob 0.25 --checkpoint c.pth --amp bf16".split()
    )
    assert vars(timm_style) == vars(ours)
    timm_style = parser.parse_args("validate m --data-dir d -b 8 -j 0 --amp-dtype float16".split())
    ours = parser.parse_args("validate m --data d --batch-size 8 --workers 0 --amp fp16".split())
    assert vars(timm_style) == vars(ours)
    help_text = " ".join(parser._subparsers._group_actions[0].choices["train"].format_help().split())
    assert "unlike timm's --resume PATH" in help_text and "unlike timm's --amp switch" in help_text
