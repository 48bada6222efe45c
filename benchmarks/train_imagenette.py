"""ghostzoo's trainer vs a plain timm training loop, side by side, on Imagenette-160.

Both train ghostnet_100 from scratch at the same resolution, for the same epochs, on the same data
with the same seed and hyper-parameters (the GhostNet recipe: SGD momentum 0.9, cosine with warmup,
label smoothing 0.1, dropout 0.2, weight decay 4e-5; timm's training augmentation). What differs is
what each loop does by default: ghostzoo trains in channels-last memory format, the plain loop in
PyTorch's default NCHW layout, as timm's own train.py does unless told otherwise. Each run is a
separate process, one after the other, so they do not compete for the CPU.

    python benchmarks/train_imagenette.py --data ../shared/data/imagenette-160 --epochs 5

writes docs/results/train_imagenette.{md,csv,png} and keeps the ghostzoo run's checkpoint in
--run-dir (it is the source of the packaged ``ghostnet_100.imagenette`` weights).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def plain_timm_loop(args: argparse.Namespace) -> None:
    """The reference: what a user writes with timm and torchvision, nothing more."""
    import random

    import numpy as np
    import timm
    import torch
    from timm.data import create_transform
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler
    from torchvision.datasets import ImageFolder

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    train_tf = create_transform(args.img_size, is_training=True, color_jitter=0.4, interpolation="bilinear",
                                mean=mean, std=std)
    eval_tf = create_transform(args.img_size, is_training=False, crop_pct=0.875, interpolation="bilinear",
                               mean=mean, std=std)
    train_set = ImageFolder(str(Path(args.data) / "train"), train_tf)
    val_set = ImageFolder(str(Path(args.data) / "val"), eval_tf)
    loader = torch.utils.data.DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         num_workers=args.workers)
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=args.batch_size, num_workers=args.workers)
    model = timm.create_model("ghostnet_100", num_classes=len(train_set.classes), drop_rate=0.2)
    optimizer = create_optimizer_v2(model, opt="sgd", lr=args.lr, weight_decay=4e-5, momentum=0.9)
    steps = len(loader)
    scheduler = CosineLRScheduler(optimizer, t_initial=args.epochs * steps, lr_min=1e-6,
                                  warmup_t=int(args.warmup_epochs * steps), warmup_lr_init=args.lr * 1e-3,
                                  t_in_epochs=False)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    history, updates = [], 0
    for epoch in range(args.epochs):
        model.train()
        seen, t0 = 0, time.perf_counter()
        for images, targets in loader:
            loss = criterion(model(images), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            updates += 1
            scheduler.step_update(updates)
            seen += len(images)
        speed = seen / (time.perf_counter() - t0)
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for images, targets in val_loader:
                correct += int((model(images).argmax(1) == targets).sum())
                total += len(targets)
        history.append({"epoch": epoch + 1, "top1": 100.0 * correct / total, "train_images_per_s": speed})
        print(json.dumps(history[-1]), flush=True)
    Path(args.result).write_text(json.dumps(history))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "imagenette-160"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--warmup-epochs", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default="runs/imagenette_ghostnet_100")
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "results"))
    parser.add_argument("--worker", choices=["timm"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "timm":
        plain_timm_loop(args)
        return

    from _report import markdown_table, save_figure, write_csv

    from ghostzoo._io import write_text_atomic

    out = Path(args.out)
    run_dir = Path(args.run_dir)
    common = ["--epochs", str(args.epochs), "--img-size", str(args.img_size), "--batch-size", str(args.batch_size),
              "--lr", str(args.lr), "--warmup-epochs", str(args.warmup_epochs), "--workers", str(args.workers),
              "--seed", str(args.seed)]
    ghostzoo_cmd = [sys.executable, "-m", "ghostzoo", "train", "ghostnet_100", "--data", args.data,
                    "--recipe", "ghostnet", "--output-dir", str(run_dir), *common]
    timm_result = run_dir.parent / f"{run_dir.name}_timm.json"
    timm_cmd = [sys.executable, __file__, "--worker", "timm", "--data", args.data, "--result", str(timm_result),
                *common]
    for cmd in (ghostzoo_cmd, timm_cmd):
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)

    ours = json.loads((run_dir / "summary.json").read_text())["history"]
    theirs = json.loads(timm_result.read_text())
    rows = [{"epoch": a["epoch"], "ghostzoo_top1": a["top1"], "timm_top1": b["top1"],
             "ghostzoo_img_per_s": a["train_images_per_s"], "timm_img_per_s": b["train_images_per_s"]}
            for a, b in zip(ours, theirs)]
    columns = ["epoch", "ghostzoo_top1", "timm_top1", "ghostzoo_img_per_s", "timm_img_per_s"]
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "train_imagenette.csv", rows, columns)
    speedup = (sum(r["ghostzoo_img_per_s"] for r in rows) / sum(r["timm_img_per_s"] for r in rows))
    text = (f"# ghostnet_100 on Imagenette-160: ghostzoo train vs a plain timm loop\n\n"
            f"Generated by `python benchmarks/train_imagenette.py --epochs {args.epochs} --img-size {args.img_size} "
            f"--batch-size {args.batch_size} --lr {args.lr} --workers {args.workers}` on this project's CPU machine "
            f"(2 cores), runs one after the other. Top-1 on the 3,925 val images; img/s = training images per "
            f"second over the epoch (data loading included).\n\n"
            + markdown_table(rows, columns)
            + f"\nFinal top-1: ghostzoo {rows[-1]['ghostzoo_top1']:.2f}, timm loop {rows[-1]['timm_top1']:.2f}. "
            f"Training throughput ratio ghostzoo / timm loop: {speedup:.2f}x (channels-last vs NCHW).\n")
    write_text_atomic(out / "train_imagenette.md", text)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [r["epoch"] for r in rows]
    for key, label in (("ghostzoo", "ghostzoo train"), ("timm", "plain timm loop")):
        ax1.plot(epochs, [r[f"{key}_top1"] for r in rows], marker="o", label=label)
        ax2.plot(epochs, [r[f"{key}_img_per_s"] for r in rows], marker="o", label=label)
    ax1.set(xlabel="epoch", ylabel="val top-1 (%)", title="accuracy")
    ax2.set(xlabel="epoch", ylabel="train images / s", title="throughput")
    ax1.legend()
    save_figure(fig, out / "train_imagenette.png")
    print(text)


if __name__ == "__main__":
    main()
