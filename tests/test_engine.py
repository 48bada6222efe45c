"""validate and train on real images: skipping bad files, resume after SIGKILL, DDP, fine-tuning."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import ghostzoo
from ghostzoo.cli import main
from ghostzoo.engine import TrainConfig, train, validate
from ghostzoo.engine.config import train_resolution
from ghostzoo.registry import get_pretrained_cfg

from conftest import DATA_DIR, require
from golden import save_golden_checkpoint

CLASSES = ["n01440764", "n02102040", "n02979186"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """Three Imagenette classes, eight train and four val photos each, plus one corrupt file."""
    source = require(DATA_DIR / "imagenette-160")
    root = tmp_path_factory.mktemp("tiny")
    for split, n in (("train", 8), ("val", 4)):
        for c in CLASSES:
            (root / split / c).mkdir(parents=True)
            for f in sorted((source / split / c).iterdir())[:n]:
                shutil.copy(f, root / split / c / f.name)
    (root / "val" / CLASSES[0] / "corrupt.JPEG").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


def _train_cmd(data: Path, out: Path, *extra: str) -> list:
    return [
        sys.executable,
        "-m",
        "ghostzoo",
        "train",
        "ghostnet_050",
        "--data",
        str(data),
        "--img-size",
        "64",
        "--batch-size",
        "4",
        "--workers",
        "1",
        "--seed",
        "3",
        "--output-dir",
        str(out),
        *extra,
    ]


def test_validate_skips_corrupt_image_and_maps_imagenet_classes(tiny, tmp_path, capsys):
    ckpt = save_golden_checkpoint("ghostnet_050", tmp_path / "g.pth")
    model = ghostzoo.create_model("ghostnet_050", checkpoint_path=ckpt)
    result = validate(model, tiny, "val", batch_size=5, workers=1)
    assert result.images == 12 and len(result.per_class) == 3
    assert [s["path"].endswith("corrupt.JPEG") for s in result.skipped] == [True]
    # an ImageNet model on ImageNet classes: predictions are compared in ImageNet's index space
    with torch.no_grad():
        logits = model.eval()(
            torch.stack(
                [
                    ghostzoo.data.create_transform(model.pretrained_cfg)(ghostzoo.data.read_image(p))
                    for p in sorted((tiny / "val" / CLASSES[1]).glob("*.JPEG"))
                ]
            )
        )
    expected = 100.0 * float((logits.argmax(1) == 217).float().mean())  # n02102040 is ImageNet class 217
    assert result.per_class[CLASSES[1]] == pytest.approx(expected)

    out = tmp_path / "v.json"
    assert (
        main(
            [
                "validate",
                "ghostnet_050",
                "--data",
                str(tiny),
                "--checkpoint",
                str(ckpt),
                "--workers",
                "0",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["images"] == 12 and report["skipped"][0]["path"].endswith("corrupt.JPEG")
    assert "unreadable skipped" in capsys.readouterr().out


def test_validate_refuses_class_mismatch(tiny, tmp_path):
    ckpt = save_golden_checkpoint("ghostnet_050", tmp_path / "g.pth")
    model = ghostzoo.create_model("ghostnet_050", checkpoint_path=ckpt, num_classes=7)
    with pytest.raises(ghostzoo.GhostzooError, match="dataset has 3 classes but the model predicts 7"):
        validate(model, tiny, "val", workers=0)
    # as many classes, but other ones: scoring label i against output i would be silently wrong
    model = ghostzoo.create_model("ghostnet_050", num_classes=3)
    model.pretrained_cfg = dataclasses.replace(model.pretrained_cfg, class_names=("tench", "goldfish", "shark"))
    with pytest.raises(ghostzoo.GhostzooError, match="the model's class 1 is 'goldfish' but .* is 'English springer'"):
        validate(model, tiny, "val", workers=0)


def test_splits_with_other_classes_are_named(tiny, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny, data)
    shutil.move(data / "val" / CLASSES[2], data / "val" / "n03000684")
    assert main(["train", "ghostnet_050", "--data", str(data), "--output-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert f"only in train: {CLASSES[2]}; only in val: n03000684" in err and not (tmp_path / "run").exists()


def test_resume_after_sigkill_ends_with_identical_weights(tiny, tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_train_cmd(tiny, full, "--epochs", "2"), check=True, capture_output=True)

    proc = subprocess.Popen(
        _train_cmd(tiny, killed, "--epochs", "2"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while not (killed / "last.pth").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # mid-epoch 2: epoch 1's checkpoint has just been written
    assert proc.wait() == -signal.SIGKILL
    assert torch.load(killed / "last.pth", weights_only=True)["epoch"] < 1  # the run really was cut short

    resumed = subprocess.run(_train_cmd(tiny, killed, "--epochs", "2", "--resume"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stdout
    a = torch.load(full / "last.pth", weights_only=True)
    b = torch.load(killed / "last.pth", weights_only=True)
    assert a["epoch"] == b["epoch"] == 1
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    # channels-last is the default memory format of the weights being trained
    assert a["state_dict"]["conv_stem.weight"].is_contiguous(memory_format=torch.channels_last)


def test_torchrun_two_cpu_processes_keep_replicas_identical(tiny, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={port}",
        "-m",
        "ghostzoo",
        *_train_cmd(tiny, tmp_path / "ddp", "--epochs", "1", "--steps-per-epoch", "2")[3:],
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["replicas_identical"] is True
    assert done.stdout.count("epoch 1/1") == 1  # only rank 0 logs
    # the same command again: the folder holds a run, and every rank stops with the same line
    again = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    refusal = f"ghostzoo train: error: {tmp_path / 'ddp'} already holds a run; pass --resume"
    # each rank refuses with that line; torchrun may stop the slower rank (SIGTERM) before it prints
    assert again.returncode != 0 and again.stderr.count(refusal) in (1, 2), again.stderr[-2000:]
    assert "ProcessGroup" not in again.stderr and "DistBackendError" not in again.stderr


def test_fine_tune_re_heads_a_checkpoint_and_the_result_loads_by_itself(tmp_path, capsys):
    pets = require(DATA_DIR / "oxford-pets-sample")
    start = save_golden_checkpoint("ghostnet_050", tmp_path / "imagenet.pth")
    out = tmp_path / "pets"
    with pytest.warns(UserWarning, match="re-initialising the head"):
        code = main(
            [
                "train",
                "ghostnet_050",
                "--data",
                str(pets),
                "--val-split",
                "test",
                "--checkpoint",
                str(start),
                "--num-classes",
                "37",
                "--epochs",
                "1",
                "--steps-per-epoch",
                "2",
                "--batch-size",
                "8",
                "--img-size",
                "64",
                "--workers",
                "0",
                "--lr",
                "0.01",
                "--output-dir",
                str(out),
            ]
        )
    assert code == 0
    ckpt = torch.load(out / "last.pth", weights_only=True)
    w0 = torch.load(start, weights_only=True)["conv_stem.weight"]
    w1 = ckpt["state_dict"]["conv_stem.weight"]
    assert 0 < float((w1 - w0).norm()) < 0.1 * float(w0.norm())  # started from the checkpoint, then moved
    assert ckpt["state_dict"]["classifier.weight"].shape == (37, 1280)

    # the trained file alone rebuilds the model: 37 classes, breed names, its training resolution
    model = ghostzoo.create_model("ghostnet_050", checkpoint_path=out / "last.pth")
    assert model.num_classes == 37 and model.pretrained_cfg.input_size == (3, 64, 64)
    assert model.pretrained_cfg.class_names[0] == "Abyssinian"
    capsys.readouterr()
    report = tmp_path / "val.json"
    assert (
        main(
            [
                "validate",
                "ghostnet_050",
                "--checkpoint",
                str(out / "last.pth"),
                "--data",
                str(pets),
                "--split",
                "test",
                "--workers",
                "0",
                "--output",
                str(report),
            ]
        )
        == 0
    )
    result = json.loads(report.read_text())
    assert result["images"] == 74 and len(result["per_class"]) == 37
    assert result["top1"] == pytest.approx(ckpt["history"][-1]["top1"])  # same number as the trainer's


def test_bad_training_arguments(tiny, tmp_path, capsys):
    assert main(["train", "ghostnet_050", "--data", str(tiny), "--recipe", "yolo", "--output-dir", str(tmp_path)]) == 1
    assert "unknown recipe 'yolo'" in capsys.readouterr().err
    assert main(["train", "ghostnet_050", "--data", str(tiny), "--resume", "--output-dir", str(tmp_path / "x")]) == 1
    assert "nothing to resume" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "ghostnet_050",
                "--data",
                str(tiny),
                "--batch-size",
                "100",
                "--workers",
                "0",
                "--output-dir",
                str(tmp_path / "y"),
            ]
        )
        == 1
    )
    assert "larger than the training split" in capsys.readouterr().err
    # refused before anything is written: no output folder is left behind
    assert main(["train", "ghostnet_050", "--data", str(tmp_path / "none"), "--output-dir", str(tmp_path / "z")]) == 1
    assert "dataset folder not found" in capsys.readouterr().err and not (tmp_path / "z").exists()
    assert (
        main(
            [
                "train",
                "ghostnet_050",
                "--data",
                str(tiny),
                "--output-dir",
                str(tiny / "val" / CLASSES[0] / "corrupt.JPEG" / "z"),
            ]
        )
        == 1
    )
    assert "corrupt.JPEG is not a writable folder" in capsys.readouterr().err
    for knob, message in (
        (["--crop-scale", "0.6", "0.2"], "crop_scale must be two fractions 0 < low <= high <= 1, got 0.6, 0.2"),
        (["--val-crop-pct", "1.5"], "val_crop_pct must be in (0, 1], got 1.5"),
        (["--smoothing", "2"], "smoothing must be in [0, 1), got 2.0"),
        (["--opt", "nonsense"], "unknown optimizer 'nonsense'"),
        (["--auto-augment", "garbage"], "cannot build the training augmentation (--auto-augment 'garbage')"),
        (["--num-classes", "2", "--batch-size", "4"], "--num-classes 2 is fewer than the 3 classes of"),
        (["--img-size-start", "256"], "img_size_start 256 is larger than the training resolution 224"),
    ):
        out = tmp_path / knob[0].strip("-")
        assert main(["train", "ghostnet_050", "--data", str(tiny), "--output-dir", str(out), *knob]) == 1
        assert message in capsys.readouterr().err and not out.exists()


def test_the_evaluation_size_and_crop_travel_with_the_weights(tiny, tmp_path):
    """A run trained at 64 px and evaluated at 80 px on the whole image records that evaluation in its
    checkpoint: the model built from it predicts as the run measured."""
    train(_one_step(tiny, tmp_path / "run", val_img_size=80, val_crop_pct=1.0, crop_scale=(0.5, 1.0)))
    ckpt = torch.load(tmp_path / "run" / "last.pth", weights_only=True)
    assert (ckpt["img_size"], ckpt["crop_pct"]) == (80, 1.0)
    model = ghostzoo.create_model("ghostnet_050", checkpoint_path=tmp_path / "run" / "last.pth")
    assert model.pretrained_cfg.input_size == (3, 80, 80) and model.pretrained_cfg.crop_pct == 1.0
    recorded = json.loads((tmp_path / "run" / "summary.json").read_text())["history"][0]["top1"]
    assert validate(model, tiny, "val", batch_size=4, workers=0).top1 == pytest.approx(recorded)


def test_progressive_resizing_grows_the_training_images_epoch_by_epoch(tiny, tmp_path):
    """--img-size-start: the batches the network sees grow in steps of 16 px to --img-size, reached at
    3/4 of the run; the loader's worker process is handed each epoch's size."""
    cfg = _one_step(tiny, tmp_path / "run", img_size_start=32)
    cfg.workers = 1  # the loader's worker process is started per epoch: it must get the new size
    cfg.epochs = 8
    assert [train_resolution(cfg, epoch, 64) for epoch in range(8)] == [32, 32, 32, 48, 48, 64, 64, 64]
    seen = []
    net = _small_net()
    net.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[-1]) if module.training else None)
    cfg.epochs = 4  # 32, 48, 64, 64
    history = train(cfg, model=net)["history"]
    assert seen == [record["img_size"] for record in history] == [32, 48, 64, 64]


def _small_net(seed: int = 0) -> torch.nn.Module:
    """A stem, BatchNorm and classifier for the three tiny classes, with ghostnet_050's preprocessing:
    torch.compile turns it around in seconds, where a whole GhostNet takes a minute."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, bias=False),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, len(CLASSES)),
    )
    net.num_classes = len(CLASSES)
    net.pretrained_cfg = dataclasses.replace(get_pretrained_cfg("ghostnet_050"), num_classes=len(CLASSES))
    return net


def _one_step(tiny: Path, out: Path, **knobs) -> TrainConfig:
    return TrainConfig(
        model="ghostnet_050",
        data=str(tiny),
        output_dir=str(out),
        epochs=1,
        steps_per_epoch=1,
        img_size=64,
        batch_size=4,
        workers=0,
        lr=0.02,
        warmup_epochs=0,
        seed=3,
        progress=False,
        **knobs,
    )


def test_compiled_training_trains_the_model_itself(tiny, tmp_path, monkeypatch):
    """--compile compiles the step, not a copy: checkpoints hold plain keys and the eager step's result.

    One step only: at batch 4 the rounding differences between any two float32 runs (NCHW against
    channels-last included) grow about 100x per step, so later steps compare chaos, not code.
    """
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    initial = _small_net().state_dict()
    runs = {}
    for name, compile in (("eager", False), ("compiled", True)):
        train(_one_step(tiny, tmp_path / name, compile=compile), model=_small_net())
        runs[name] = torch.load(tmp_path / name / "last.pth", weights_only=True)["state_dict"]
    eager, compiled = runs["eager"], runs["compiled"]
    assert list(compiled) == list(eager) == list(initial)
    # the convolution, the classifier and the BatchNorm's running mean (of an input with a mean)
    for key in [k for k, v in initial.items() if v.ndim >= 2] + ["1.running_mean"]:
        moved = float((eager[key] - initial[key]).norm())
        assert moved > 0, key
        assert float((compiled[key] - eager[key]).norm()) < 0.01 * moved, key
    assert all(torch.equal(compiled[k], eager[k]) for k, v in initial.items() if not v.is_floating_point())


def test_compile_without_a_cxx_compiler_fails_in_one_line(tiny, tmp_path, monkeypatch):
    from torch._inductor import config as inductor_config

    monkeypatch.setattr(inductor_config.cpp, "cxx", (None, str(tmp_path / "no-such-g++")))
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)  # no compiled kernel may come from a cache
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch._dynamo.reset()
    with pytest.raises(ghostzoo.GhostzooError) as failed:
        train(_one_step(tiny, tmp_path / "run", compile=True), model=_small_net())
    assert str(failed.value).startswith("--compile failed: InvalidCxxCompiler: No working C++ compiler")
    assert "\n" not in str(failed.value)
    assert not (tmp_path / "run" / "last.pth").exists()


def test_a_damaged_or_foreign_run_is_not_resumed(tiny, tmp_path, capsys):
    """--resume refuses in one line, and leaves the folder as it was, when last.pth is truncated, is not
    a training checkpoint, or belongs to another model or head."""
    base = tmp_path / "base"
    train(_one_step(tiny, base))
    whole = (base / "last.pth").read_bytes()
    cases = {
        "truncated": (whole[: len(whole) // 2], "ghostnet_050", [], "cannot read checkpoint"),
        "foreign": (None, "ghostnet_050", [], "is not a ghostzoo training checkpoint (it has no 'optimizer')"),
        "model": (whole, "tinynet_e", [], "is a run of ghostnet_050, not of tinynet_e"),
        "head": (whole, "ghostnet_050", ["--num-classes", "5"], "does not fit this run's model or settings"),
    }
    for name, (content, model, extra, message) in cases.items():
        run = tmp_path / name
        shutil.copytree(base, run)
        if content is None:
            torch.save({"state_dict": ghostzoo.create_model("ghostnet_050").state_dict()}, run / "last.pth")
        else:
            (run / "last.pth").write_bytes(content)
        before = {p.name: p.read_bytes() for p in run.iterdir()}
        argv = ["train", model, "--data", str(tiny), "--img-size", "64", "--batch-size", "4", "--workers", "0"]
        assert main([*argv, "--epochs", "2", "--output-dir", str(run), "--resume", *extra]) == 1, name
        out, err = capsys.readouterr()
        assert len(err.strip().splitlines()) == 1 and message in err, (name, err)
        assert {p.name: p.read_bytes() for p in run.iterdir()} == before, name
