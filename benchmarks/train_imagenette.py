"""ghostzoo's trainer vs a plain timm training loop, side by side, on Imagenette-160.

Both train ghostnet_100 from scratch at the same resolution, for the same epochs, on the same data
with the same seed and hyper-parameters (the GhostNet recipe: SGD momentum 0.9, cosine with warmup,
label smoothing 0.1, dropout 0.2, weight decay 4e-5; timm's training augmentation). The plain loop
draws its random numbers from the seeds ghostzoo's trainer uses (``ghostzoo.engine.train.epoch_seeds``),
so the two runs of a seed start from the same weights and see the same batches, augmentations and
dropout masks: a paired comparison. What differs is what each loop does by default: ghostzoo trains
in channels-last memory format, the plain loop in PyTorch's default NCHW layout, as timm's own
train.py does. Each run is a separate process, one after the other, so they do not compete for the CPU.

    python benchmarks/train_imagenette.py --data ../shared/data/imagenette-160 --epochs 5 --seeds 0 1

writes docs/results/train_imagenette.{md,csv,png} and keeps each ghostzoo run in RUN_DIR_seed<N>; a
seed whose two results are already there is not trained again. A 5-epoch run is chaotic (runs that
differ only in rounding end points apart), so judge the two loops on the mean over several seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLUMNS = ["seed", "epoch", "ghostzoo_top1", "timm_top1", "ghostzoo_img_per_s", "timm_img_per_s"]


def plain_timm_loop(args: argparse.Namespace) -> None:
    """The reference: what a user writes with timm and torchvision, nothing more."""
    import timm
    import torch
    from timm.data import create_transform
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler
    from torchvision.datasets import ImageFolder

    from ghostzoo._io import atomic_paths, write_text_atomic
    from ghostzoo.engine.train import epoch_seeds, seed_everything

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    train_tf = create_transform(
        args.img_size, is_training=True, color_jitter=0.4, interpolation="bilinear", mean=mean, std=std
    )
    eval_tf = create_transform(
        args.img_size, is_training=False, crop_pct=0.875, interpolation="bilinear", mean=mean, std=std
    )
    train_set = ImageFolder(str(Path(args.data) / "train"), train_tf)
    val_set = ImageFolder(str(Path(args.data) / "val"), eval_tf)
    # The same random numbers as ghostzoo's trainer with this seed: the same initial weights, batches,
    # augmentations and dropout masks, so that the two runs of a seed are a paired comparison.
    sampler_gen, loader_gen = torch.Generator(), torch.Generator()
    loader = torch.utils.data.DataLoader(
        train_set,
        batch_size=args.batch_size,
        drop_last=True,
        sampler=torch.utils.data.RandomSampler(train_set, generator=sampler_gen),
        num_workers=args.workers,
        generator=loader_gen,
    )
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=args.batch_size, num_workers=args.workers)
    seed_everything(epoch_seeds(args.seed, -1).global_)
    model = timm.create_model("ghostnet_100", num_classes=len(train_set.classes), drop_rate=0.2)
    optimizer = create_optimizer_v2(model, opt="sgd", lr=args.lr, weight_decay=4e-5, momentum=0.9)
    steps = len(loader)
    scheduler = CosineLRScheduler(
        optimizer,
        t_initial=args.epochs * steps,
        lr_min=1e-6,
        warmup_t=int(args.warmup_epochs * steps),
        warmup_lr_init=args.lr * 1e-3,
        t_in_epochs=False,
    )
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    history, updates = [], 0
    for epoch in range(args.epochs):
        seeds = epoch_seeds(args.seed, epoch)
        seed_everything(seeds.global_)
        sampler_gen.manual_seed(seeds.sampler)
        loader_gen.manual_seed(seeds.loader)
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
    if args.save_state:
        with atomic_paths(args.save_state) as (tmp,):
            torch.save(model.state_dict(), tmp)
    write_text_atomic(args.result, json.dumps(history))  # last: its presence marks the run as done


def result_files(args: argparse.Namespace, seed: int) -> tuple[Path, Path]:
    """(ghostzoo's run folder, the plain loop's result file) for ``seed``."""
    run_dir = Path(f"{args.run_dir}_seed{seed}")
    return run_dir, run_dir.parent / f"{run_dir.name}_timm.json"


def pair_commands(args: argparse.Namespace, seed: int) -> tuple[list[str], list[str]]:
    """The command lines of ``seed``'s two runs: ghostzoo's trainer, then the plain loop."""
    run_dir, timm_result = result_files(args, seed)
    common = [
        "--epochs",
        str(args.epochs),
        "--img-size",
        str(args.img_size),
        "--batch-size",
        str(args.batch_size),
        "--lr",
        str(args.lr),
        "--warmup-epochs",
        str(args.warmup_epochs),
        "--workers",
        str(args.workers),
        "--seed",
        str(seed),
    ]
    ours = [
        sys.executable,
        "-m",
        "ghostzoo",
        "train",
        "ghostnet_100",
        "--data",
        args.data,
        "--recipe",
        "ghostnet",
        "--output-dir",
        str(run_dir),
        *common,
    ]
    theirs = [sys.executable, __file__, "--worker", "timm", "--data", args.data, "--result", str(timm_result), *common]
    return ours, theirs


def run_pair(args: argparse.Namespace, seed: int) -> list[dict]:
    """Train both loops with ``seed`` (unless their results already exist); per-epoch rows."""
    run_dir, timm_result = result_files(args, seed)
    ours_cmd, theirs_cmd = pair_commands(args, seed)
    for name, done, cmd in (("ghostzoo", run_dir / "summary.json", ours_cmd), ("plain loop", timm_result, theirs_cmd)):
        if not done.is_file() and subprocess.run(cmd).returncode != 0:
            raise SystemExit(f"seed {seed}: the {name} run failed (its error is above); the report is not written")
    ours = json.loads((run_dir / "summary.json").read_text())["history"]
    theirs = json.loads(timm_result.read_text())
    if len(ours) != args.epochs or len(theirs) != args.epochs:
        raise SystemExit(f"{run_dir}: results are for another number of epochs; remove them to re-run")
    return [
        {
            "seed": seed,
            "epoch": a["epoch"],
            "ghostzoo_top1": a["top1"],
            "timm_top1": b["top1"],
            "ghostzoo_img_per_s": a["train_images_per_s"],
            "timm_img_per_s": b["train_images_per_s"],
        }
        for a, b in zip(ours, theirs)
    ]


def paired_summary(diffs: list[float]) -> str:
    """The per-seed top-1 differences (ghostzoo minus the plain loop) in one sentence, with the standard
    error of their mean, which says how far the mean could move with other seeds."""
    mean = statistics.fmean(diffs)
    if len(diffs) == 1:
        return f"Difference {mean:+.2f} points (one seed: no standard error)."
    se = statistics.stdev(diffs) / len(diffs) ** 0.5
    ahead = sum(d >= 0 for d in diffs)
    return (
        f"Mean difference {mean:+.2f} points, standard error {se:.2f} over {len(diffs)} seeds "
        f"(ghostzoo at least as good on {ahead} of {len(diffs)})."
    )


def report_text(rows: list[dict], command: str, made_on: str, n_val: int) -> str:
    """The Markdown page: the command and machine once, the per-epoch table, and the means."""
    from ghostzoo.bench.tables import markdown_table

    finals = {r["seed"]: r for r in rows}  # the last epoch of each seed
    diffs = [r["ghostzoo_top1"] - r["timm_top1"] for r in finals.values()]
    final_mean = lambda key: statistics.fmean(r[key] for r in finals.values())
    speed = lambda key: statistics.fmean(r[key] for r in rows)
    return (
        "# ghostnet_100 on Imagenette-160: ghostzoo train vs a plain timm loop\n\n"
        f"Generated by `{command}` on {made_on}, one run after the other, one pair per seed. Same data, "
        "epochs, hyper-parameters (the GhostNet recipe) and augmentation, and the same random numbers per seed "
        "(initial weights, batches, augmentations, dropout masks); ghostzoo trains channels-last, the plain "
        f"loop in PyTorch's default NCHW. Top-1 on the {n_val:,} val images; img/s = training images per second "
        "over the epoch (data loading included).\n\n"
        + markdown_table(rows, COLUMNS)
        + "\n| after the last epoch, mean over seeds | ghostzoo | plain timm loop |\n|---|---|---|\n"
        f"| top-1 (%) | {final_mean('ghostzoo_top1'):.2f} | {final_mean('timm_top1'):.2f} |\n"
        f"| training images/s (all epochs) | {speed('ghostzoo_img_per_s'):.1f} | {speed('timm_img_per_s'):.1f} |\n"
        f"\nThroughput ratio ghostzoo / plain loop: {speed('ghostzoo_img_per_s') / speed('timm_img_per_s'):.2f}x. "
        "Final top-1 difference (ghostzoo - plain loop) per seed: "
        + ", ".join(f"seed {seed}: {d:+.2f}" for seed, d in zip(finals, diffs))
        + ". "
        + paired_summary(diffs)
        + "\n"
    )


def plot(rows: list[dict], path: Path) -> None:
    """Top-1 and throughput per epoch (one faint line per seed, the mean bold), and the final differences."""
    from matplotlib.figure import Figure

    from ghostzoo.bench.tables import save_figure

    seeds = sorted({r["seed"] for r in rows})
    per_seed = {s: [r for r in rows if r["seed"] == s] for s in seeds}
    epochs = [r["epoch"] for r in per_seed[seeds[0]]]
    fig = Figure(figsize=(15, 4))
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for key, label, colour in (("ghostzoo", "ghostzoo train", "tab:blue"), ("timm", "plain timm loop", "tab:orange")):
        for ax, metric in ((ax1, "top1"), (ax2, "img_per_s")):
            for seed_rows in per_seed.values():
                ax.plot(epochs, [r[f"{key}_{metric}"] for r in seed_rows], color=colour, alpha=0.2, linewidth=1)
            means = [statistics.fmean(rs[i][f"{key}_{metric}"] for rs in per_seed.values()) for i in range(len(epochs))]
            ax.plot(
                epochs, means, color=colour, marker="o", linewidth=2.5, label=f"{label}, mean of {len(seeds)} seeds"
            )
    diffs = [rs[-1]["ghostzoo_top1"] - rs[-1]["timm_top1"] for rs in per_seed.values()]
    ax3.bar([str(s) for s in seeds], diffs, color=["tab:blue" if d >= 0 else "tab:orange" for d in diffs])
    ax3.axhline(0, color="black", linewidth=0.8)
    ax3.axhline(statistics.fmean(diffs), color="black", linestyle="--", label="mean")
    ax1.set(xlabel="epoch", ylabel="val top-1 (%)", title="accuracy (thin: one seed)")
    ax2.set(xlabel="epoch", ylabel="train images / s", title="throughput (thin: one seed)")
    ax3.set(xlabel="seed", ylabel="top-1 points", title="final top-1, ghostzoo minus plain loop")
    for ax in (ax1, ax2, ax3):
        ax.legend(fontsize="small")
    fig.tight_layout()
    save_figure(fig, path)


def write_report(rows: list[dict], args: argparse.Namespace) -> str:
    from ghostzoo._io import write_text_atomic
    from ghostzoo.bench import machine_description
    from ghostzoo.bench.tables import write_csv

    out = Path(args.out)
    command = (
        f"python benchmarks/train_imagenette.py --epochs {args.epochs} --img-size {args.img_size} "
        f"--batch-size {args.batch_size} --lr {args.lr} --workers {args.workers} "
        f"--seeds {' '.join(map(str, args.seeds))}"
    )
    n_val = sum(1 for f in (Path(args.data) / "val").rglob("*") if f.is_file())
    text = report_text(rows, command, machine_description(), n_val)
    write_csv(out / "train_imagenette.csv", rows, COLUMNS)
    plot(rows, out / "train_imagenette.png")
    write_text_atomic(out / "train_imagenette.md", text)
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "imagenette-160"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--warmup-epochs", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="one pair of runs per seed")
    parser.add_argument(
        "--run-dir",
        default="runs/imagenette_ghostnet_100",
        help="runs go to RUN_DIR_seed<N>; a seed whose results are there is not trained again",
    )
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "results"))
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)  # the plain loop's, set per run
    parser.add_argument("--worker", choices=["timm"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--save-state", help=argparse.SUPPRESS)  # the plain loop's final weights, for the tests
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if not (Path(args.data) / "train").is_dir():
        raise SystemExit(f"{parser.prog}: dataset folder not found: {args.data}")
    if args.worker == "timm":
        plain_timm_loop(args)
        return
    rows = [row for seed in sorted(set(args.seeds)) for row in run_pair(args, seed)]
    print(write_report(rows, args))


if __name__ == "__main__":
    main()
