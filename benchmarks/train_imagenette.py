"""ghostzoo's trainer vs a plain timm training loop, side by side, on Imagenette-160.

Both train ghostnet_100 from scratch at the same resolution, for the same epochs, on the same data
with the same seed and hyper-parameters (the GhostNet recipe: SGD momentum 0.9, cosine with warmup,
label smoothing 0.1, dropout 0.2, weight decay 4e-5; timm's training augmentation). The plain loop
draws its random numbers from the seeds ghostzoo's trainer uses (``ghostzoo.engine.train.epoch_seeds``):
the two runs of a seed start from the same weights and see the same batches, augmentations and
dropout masks, a paired comparison (only rounding differs, then grows). What differs is
what each loop does by default: ghostzoo trains in channels-last memory format, the plain loop in
PyTorch's default NCHW layout, as timm's own train.py does unless told otherwise. With ``--compile``
ghostzoo's runs use ``ghostzoo train --compile``: its compile time counts in epoch 1 (the first run of
an invocation compiles from an empty cache, the later ones reuse inductor's on-disk cache, as a
user's repeated runs do), and its dropout masks come from inductor's generator, so only weights,
batches and augmentations are shared. Each run is a separate process, one after the other, so they
do not compete for the CPU.

    python benchmarks/train_imagenette.py --data ../shared/data/imagenette-160 --epochs 5 --seeds 0 1

writes docs/results/train_imagenette.{md,csv,png} (train_imagenette_compile.* with ``--compile``) and
keeps each ghostzoo run's checkpoint in RUN_DIR_seed<N>. A seed's runs repeat bit for bit only on the
same CPU and library versions, so the runs' folder records where they were made, the CSV carries it
beside every row, and runs or rows from elsewhere are refused rather than reported beside these.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


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
    train_tf = create_transform(args.img_size, is_training=True, color_jitter=0.4, interpolation="bilinear",
                                mean=mean, std=std)
    eval_tf = create_transform(args.img_size, is_training=False, crop_pct=0.875, interpolation="bilinear",
                               mean=mean, std=std)
    train_set = ImageFolder(str(Path(args.data) / "train"), train_tf)
    val_set = ImageFolder(str(Path(args.data) / "val"), eval_tf)
    # The same random numbers as ghostzoo's trainer with this seed: the same initial weights, batches,
    # augmentations and dropout masks, so that the two runs of a seed are a paired comparison.
    sampler_gen, loader_gen = torch.Generator(), torch.Generator()
    loader = torch.utils.data.DataLoader(train_set, batch_size=args.batch_size, drop_last=True,
                                         sampler=torch.utils.data.RandomSampler(train_set, generator=sampler_gen),
                                         num_workers=args.workers, generator=loader_gen)
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=args.batch_size, num_workers=args.workers)
    seed_everything(epoch_seeds(args.seed, -1).global_)
    model = timm.create_model("ghostnet_100", num_classes=len(train_set.classes), drop_rate=0.2)
    # The noise-floor controls of train_noise.py: the same run in another memory format, or with the
    # loss scaled by 1 + 2^-k, which changes only the rounding of every gradient.
    layout = torch.channels_last if args.layout == "channels_last" else torch.contiguous_format
    model = model.to(memory_format=layout)
    optimizer = create_optimizer_v2(model, opt="sgd", lr=args.lr, weight_decay=4e-5, momentum=0.9)
    steps = len(loader)
    scheduler = CosineLRScheduler(optimizer, t_initial=args.epochs * steps, lr_min=1e-6,
                                  warmup_t=int(args.warmup_epochs * steps), warmup_lr_init=args.lr * 1e-3,
                                  t_in_epochs=False)
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
            loss = criterion(model(images.contiguous(memory_format=layout)), targets) * args.loss_scale
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


def result_files(args: argparse.Namespace, seed: int) -> tuple:
    """(ghostzoo's run folder, the plain loop's result file) for ``seed``."""
    run_dir = Path(f"{args.run_dir}_seed{seed}")
    return run_dir, run_dir.parent / f"{run_dir.name}_timm.json"


def finished_at(path: Path) -> str:
    return datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")


def pair_commands(args: argparse.Namespace, seed: int) -> tuple:
    """The command lines of ``seed``'s two runs: ghostzoo's trainer, then the plain loop."""
    run_dir, timm_result = result_files(args, seed)
    common = ["--epochs", str(args.epochs), "--img-size", str(args.img_size), "--batch-size", str(args.batch_size),
              "--lr", str(args.lr), "--warmup-epochs", str(args.warmup_epochs), "--workers", str(args.workers),
              "--seed", str(seed)]
    ours = [sys.executable, "-m", "ghostzoo", "train", "ghostnet_100", "--data", args.data, "--recipe", "ghostnet",
            "--output-dir", str(run_dir), *common, *(["--compile"] if args.compile else [])]
    theirs = [sys.executable, __file__, "--worker", "timm", "--data", args.data, "--result", str(timm_result), *common]
    return ours, theirs


def run_pair(args: argparse.Namespace, seed: int) -> list:
    """Train both loops with ``seed`` (unless their results already exist); per-epoch rows."""
    run_dir, timm_result = result_files(args, seed)
    ours_cmd, theirs_cmd = pair_commands(args, seed)
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(inductor_cache(args))}
    for name, done, cmd in (("ghostzoo", run_dir / "summary.json", ours_cmd), ("plain loop", timm_result, theirs_cmd)):
        if not done.is_file() and subprocess.run(cmd, env=env).returncode != 0:
            raise SystemExit(f"seed {seed}: the {name} run failed (its error is above); the report is not written")
    ours = json.loads((run_dir / "summary.json").read_text())["history"]
    theirs = json.loads(timm_result.read_text())
    if len(ours) != args.epochs or len(theirs) != args.epochs:
        raise SystemExit(f"{run_dir}: results are for another number of epochs; remove them to re-run")
    return [{"epoch": a["epoch"], "ghostzoo_top1": a["top1"], "timm_top1": b["top1"],
             "ghostzoo_img_per_s": a["train_images_per_s"], "timm_img_per_s": b["train_images_per_s"]}
            for a, b in zip(ours, theirs)]


def environment() -> str:
    """What a seed's runs depend on beyond the seed: the CPU, the kernels PyTorch picks for it, the versions."""
    import timm
    import torch

    from ghostzoo.deploy.benchmark import processor_name

    return (f"{processor_name()} ({os.cpu_count()} logical CPUs, PyTorch's {torch.backends.cpu.get_cpu_capability()} "
            f"kernels), torch {torch.__version__}, timm {timm.__version__}")


def inductor_cache(args: argparse.Namespace) -> Path:
    return Path(args.run_dir).parent / "inductor_cache"


def check_made_here(folder: Path, here: str, has_runs: bool) -> None:
    """Refuse a run folder whose runs were made elsewhere (or do not say where), so that a report never
    sets runs it cannot repeat beside ones it can; record ``here`` in a folder that starts empty."""
    from ghostzoo._io import write_text_atomic

    record = folder / "environment.txt"
    made = record.read_text().strip() if record.is_file() else None
    if made is None and has_runs:
        raise SystemExit(f"{folder}: holds runs that do not record where they were made; use another run folder")
    if made is not None and made != here:
        raise SystemExit(f"{folder}: its runs were made on {made}, not on {here}; use another run folder")
    if made is None:
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(record, here + "\n")


def previous_seeds(csv_path: Path, skip: list, epochs: int, here: str) -> dict:
    """Per-seed rows of an earlier run's CSV, for the seeds not in ``skip`` (those are run again); all of
    them must have been made ``here``."""
    import csv

    if not csv_path.is_file():
        raise SystemExit(f"--keep-previous: no earlier results at {csv_path}")
    per_seed: dict = {}
    elsewhere = set()
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            seed, made = int(row.pop("seed")), row.pop("environment", None)
            if seed not in skip:
                if made != here:
                    elsewhere.add(seed)
                per_seed.setdefault(seed, []).append({k: int(v) if k == "epoch" else float(v) for k, v in row.items()})
    if elsewhere:
        raise SystemExit(f"--keep-previous: {csv_path} holds seeds {sorted(elsewhere)} not made on {here}; "
                         "run them again here with --seeds")
    if any(len(rows) != epochs for rows in per_seed.values()):
        raise SystemExit(f"--keep-previous: {csv_path} holds runs of another number of epochs")
    return per_seed


def mean_and_se(diffs: list) -> tuple:
    """The mean of paired differences and its standard error (None for one seed), which says how far the
    mean could move with other seeds (runs that differ only in rounding already end points apart)."""
    mean = statistics.fmean(diffs)
    return mean, (statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else None)


def paired_summary(diffs: list, first: str = "ghostzoo") -> str:
    """The per-seed top-1 differences (``first`` minus the other) in one sentence."""
    mean, se = mean_and_se(diffs)
    if se is None:
        return f"Mean difference {mean:+.2f} points (one seed: no standard error)."
    ahead = sum(d >= 0 for d in diffs)
    return (f"Mean difference {mean:+.2f} points, standard error {se:.2f} over {len(diffs)} seeds "
            f"({first} at least as good on {ahead} of {len(diffs)}).")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "imagenette-160"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--warmup-epochs", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                        help="one pair of runs per seed; the bars are judged on the mean")
    parser.add_argument("--run-dir", default="runs/imagenette_ghostnet_100",
                        help="runs go to RUN_DIR_seed<N>; a seed whose results are there is not re-run; the "
                             "folder above records the machine and versions they were made with, and refuses others")
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "results"))
    parser.add_argument("--keep-previous", action="store_true",
                        help="keep the other seeds of the earlier report's CSV in OUT in the report "
                             "(rows made on another machine or versions are refused: they do not repeat here)")
    parser.add_argument("--compile", action="store_true", help="train ghostzoo's runs with `ghostzoo train --compile`")
    parser.add_argument("--worker", choices=["timm"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--layout", choices=["nchw", "channels_last"], default="nchw", help=argparse.SUPPRESS)
    parser.add_argument("--loss-scale", type=float, default=1.0, help=argparse.SUPPRESS)
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

    from _report import markdown_table, save_figure, write_csv

    from ghostzoo._io import write_text_atomic

    out = Path(args.out)
    if args.compile:
        shutil.rmtree(inductor_cache(args), ignore_errors=True)  # the first compiled run pays the full compile
    stem = "train_imagenette_compile" if args.compile else "train_imagenette"
    here = environment()
    per_seed = previous_seeds(out / f"{stem}.csv", args.seeds, args.epochs, here) if args.keep_previous else {}
    kept = sorted(per_seed)
    runs = Path(args.run_dir).parent
    check_made_here(runs, here, has_runs=any(runs.glob(f"{Path(args.run_dir).name}_seed*")))
    per_seed.update({seed: run_pair(args, seed) for seed in args.seeds})
    per_seed = dict(sorted(per_seed.items()))
    rows = [{"seed": seed, **row, "environment": here} for seed, seed_rows in per_seed.items() for row in seed_rows]
    columns = ["seed", "epoch", "ghostzoo_top1", "timm_top1", "ghostzoo_img_per_s", "timm_img_per_s"]
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / f"{stem}.csv", rows, columns + ["environment"])
    finals = [seed_rows[-1] for seed_rows in per_seed.values()]
    diffs = [r["ghostzoo_top1"] - r["timm_top1"] for r in finals]
    mean = lambda key: sum(r[key] for r in finals) / len(finals)  # noqa: E731
    speed = lambda key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    n_val = sum(1 for f in (Path(args.data) / "val").rglob("*") if f.is_file())
    ended = []
    for seed in sorted(args.seeds):
        run_dir, timm_result = result_files(args, seed)
        ended.append({"seed": seed, "ghostzoo": finished_at(run_dir / "summary.json"),
                      "plain timm loop": finished_at(timm_result)})
    text = (f"# ghostnet_100 on Imagenette-160: ghostzoo train vs a plain timm loop\n\n"
            f"Generated by `python benchmarks/train_imagenette.py --epochs {args.epochs} --img-size {args.img_size} "
            f"--batch-size {args.batch_size} --lr {args.lr} --workers {args.workers} --seeds "
            f"{' '.join(map(str, args.seeds))}{' --compile' if args.compile else ''}"
            f"{' --keep-previous' if kept else ''}` "
            f"on {here}, one run after the other, one pair per seed"
            + (f" (seeds {', '.join(map(str, kept))}: kept from an earlier run of the same command)" if kept else "")
            + ". Same data, epochs, hyper-parameters (the GhostNet recipe) and augmentation, and the "
            f"same random numbers per seed (initial weights, batches, augmentations, dropout masks); "
            f"ghostzoo trains channels-last"
            + (" and compiled (`torch.compile`: compile time included in epoch 1, from an empty cache in the "
               "first run and from inductor's on-disk cache in the later ones; its dropout masks differ)"
               if args.compile else "")
            + f", the plain loop in PyTorch's default NCHW. Top-1 on the {n_val:,} val "
            f"images; img/s = training images per second over the epoch (data loading included).\n\n"
            + markdown_table(rows, columns)
            + "\nWhen each run ended (UTC; a run found in the run folder is not run again):\n\n"
            + markdown_table(ended, ["seed", "ghostzoo", "plain timm loop"])
            + "\n| after the last epoch, mean over seeds | ghostzoo | plain timm loop |\n|---|---|---|\n"
            f"| top-1 (%) | {mean('ghostzoo_top1'):.2f} | {mean('timm_top1'):.2f} |\n"
            f"| training images/s (all epochs) | {speed('ghostzoo_img_per_s'):.1f} | {speed('timm_img_per_s'):.1f} |\n"
            f"\nThroughput ratio ghostzoo / timm loop: {speed('ghostzoo_img_per_s') / speed('timm_img_per_s'):.2f}x. "
            f"Top-1 difference (ghostzoo - timm), per seed: "
            + ", ".join(f"seed {seed}: {d:+.2f}" for seed, d in zip(per_seed, diffs))
            + ". " + paired_summary(diffs)
            + "\n\nBars, on the means (a difference within one standard error is within the noise): "
              "ghostzoo's top-1 at least the plain loop's: "
            + ("met" if mean("ghostzoo_top1") >= mean("timm_top1") else "**not met**")
            + "; ghostzoo's images/s at least the plain loop's: "
            + ("met" if speed("ghostzoo_img_per_s") >= speed("timm_img_per_s") else "**not met**") + ".\n")
    write_text_atomic(out / f"{stem}.md", text)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4))
    epochs = [r["epoch"] for r in next(iter(per_seed.values()))]
    # One faint line per seed and a bold mean per loop: with a dozen seeds, per-seed colours are unreadable.
    for key, label, colour in (("ghostzoo", "ghostzoo train", "tab:blue"), ("timm", "plain timm loop", "tab:orange")):
        for ax, metric in ((ax1, "top1"), (ax2, "img_per_s")):
            for seed_rows in per_seed.values():
                ax.plot(epochs, [r[f"{key}_{metric}"] for r in seed_rows], color=colour, alpha=0.2, linewidth=1)
            ax.plot(epochs, [sum(rs[i][f"{key}_{metric}"] for rs in per_seed.values()) / len(per_seed)
                             for i in range(len(epochs))],
                    color=colour, marker="o", linewidth=2.5, label=f"{label}, mean of {len(per_seed)} seeds")
    ax3.bar([str(seed) for seed in per_seed], diffs, color=["tab:blue" if d >= 0 else "tab:orange" for d in diffs])
    ax3.axhline(0, color="black", linewidth=0.8)
    mean_diff, se = mean_and_se(diffs)
    ax3.axhline(mean_diff, color="black", linestyle="--", label="mean")
    if se is not None:
        ax3.axhspan(mean_diff - se, mean_diff + se, color="grey", alpha=0.3, label="mean +- 1 standard error")
    ax1.set(xlabel="epoch", ylabel="val top-1 (%)", title="accuracy (thin: one seed)")
    ax2.set(xlabel="epoch", ylabel="train images / s", title="throughput (thin: one seed)")
    ax3.set(xlabel="seed", ylabel="top-1 points", title="final top-1, ghostzoo minus plain loop")
    for ax in (ax1, ax2, ax3):
        ax.legend(fontsize="small")
    save_figure(fig, out / f"{stem}.png")
    print(text)


if __name__ == "__main__":
    main()
