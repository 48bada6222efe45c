"""How far apart do two training runs end that differ only in rounding? The noise floor of
train_imagenette.py's top-1 bar.

A 5-epoch run of ghostnet_100 on Imagenette-160 is chaotic: any change in the rounding of one
gradient (another memory format, another summation order) makes the weights of two runs of the same
seed as far apart as the distance they travelled within about 15 steps. Their final top-1 then
differs although the data, batches, augmentations, dropout masks and hyper-parameters are the same.
This script runs train_imagenette.py's plain timm loop again for each seed in controlled variants,
``LAYOUT:K`` = that memory format with the loss scaled by 1 + 2^-K (which changes only the rounding),
and sets their final top-1 beside the two runs of train_imagenette.md (ghostzoo channels-last, the
plain loop in NCHW):

    python benchmarks/train_noise.py --seeds 0 1 2 3 4 5 6 7 8 9 10 --variants nchw:19

writes docs/results/train_noise.{md,csv}. A run whose result file is already in the run folder is
not run again, and the runs of other variants found there for these seeds are reported too. Each run
is a separate process, one after the other. The report pairs the runs by seed: ghostzoo's run and the
plain loop's run of train_imagenette.md, each minus every variant. A fresh NCHW variant answers
whether channels-last trains worse than NCHW without leaning on the one NCHW run of each seed that
the bar compares against. Its runs, and the runs of train_imagenette.csv it pairs them with, must have
been made on this machine with these versions (see train_imagenette.py); others are refused.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

OURS, THEIRS = "ghostzoo train (channels_last)", "plain loop (nchw)"
SETTINGS = {"epochs": 5, "img_size": 128, "batch_size": 64, "lr": 0.1, "warmup_epochs": 1.0, "workers": 2}


def parse_variant(text: str) -> tuple:
    layout, _, exponent = text.partition(":")
    if layout not in ("nchw", "channels_last") or not exponent.isdigit():
        raise argparse.ArgumentTypeError(f"expected LAYOUT:K with LAYOUT nchw or channels_last, got {text!r}")
    return layout, int(exponent)


def variant_name(layout: str, exponent: int) -> str:
    return f"{layout}, loss x (1+2^-{exponent})"


def result_file(args: argparse.Namespace, seed: int, layout: str, exponent: int) -> Path:
    return Path(args.run_dir) / f"seed{seed}_{layout}_k{exponent}.json"


def found_variants(args: argparse.Namespace) -> list:
    """The variants with a result file in the run folder for any of ``args.seeds``, in name order."""
    found = set()
    for path in Path(args.run_dir).glob("seed*_*_k*.json"):
        match = re.fullmatch(r"seed(\d+)_(nchw|channels_last)_k(\d+)\.json", path.name)
        if match and int(match[1]) in args.seeds:
            found.add((match[2], int(match[3])))
    return sorted(found)


def run_variant(args: argparse.Namespace, seed: int, layout: str, exponent: int) -> list:
    """The plain loop's per-epoch history for this seed and variant (trained unless already there)."""
    result = result_file(args, seed, layout, exponent)
    if not result.is_file():
        result.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(HERE / "train_imagenette.py"), "--worker", "timm", "--data", args.data,
                        "--result", str(result), "--seed", str(seed), "--layout", layout,
                        "--loss-scale", repr(1 + 2.0 ** -exponent),
                        *[f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]], check=True)
    return json.loads(result.read_text())


def reference_finals(csv_path: Path, here: str) -> dict:
    """{seed: (ghostzoo top-1, plain loop top-1)} after the last epoch of train_imagenette.csv, whose runs
    must have been made ``here`` to be paired with this script's."""
    finals: dict = {}
    if csv_path.is_file():
        with open(csv_path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("environment") != here:
                    raise SystemExit(f"{csv_path}: seed {row['seed']} was not made on {here}; "
                                     "regenerate it here before pairing with it")
                if int(row["epoch"]) == SETTINGS["epochs"]:
                    finals[int(row["seed"])] = (float(row["ghostzoo_top1"]), float(row["timm_top1"]))
    return finals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "imagenette-160"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--variants", type=parse_variant, nargs="+", default=[("nchw", 19), ("channels_last", 20)],
                        metavar="LAYOUT:K")
    parser.add_argument("--run-dir", default="runs/train_noise",
                        help="result files go here; it records the machine and versions they were made with, "
                             "and refuses others")
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "results"))
    args = parser.parse_args()
    if not (Path(args.data) / "train").is_dir():
        raise SystemExit(f"{parser.prog}: dataset folder not found: {args.data}")

    from _report import markdown_table, write_csv
    from train_imagenette import check_made_here, environment, finished_at, paired_summary

    from ghostzoo._io import write_text_atomic

    out, here = Path(args.out), environment()
    references = reference_finals(out / "train_imagenette.csv", here)
    check_made_here(Path(args.run_dir), here, has_runs=any(Path(args.run_dir).glob("seed*_*_k*.json")))
    rows, finals, ended = [], [], []
    by_layout: dict = {}  # every final top-1 of the report, per memory format
    # Earlier invocations' runs of other variants are reported where they exist, never trained here.
    earlier = [v for v in found_variants(args) if v not in args.variants]
    variants = list(dict.fromkeys(args.variants)) + earlier
    for seed in args.seeds:
        final = {"seed": seed}
        if seed in references:
            final[OURS], final[THEIRS] = references[seed]
            by_layout.setdefault("channels_last", []).append(references[seed][0])
            by_layout.setdefault("nchw", []).append(references[seed][1])
        for layout, exponent in variants:
            if (layout, exponent) in earlier and not result_file(args, seed, layout, exponent).is_file():
                continue
            history = run_variant(args, seed, layout, exponent)
            rows += [{"seed": seed, "variant": variant_name(layout, exponent), "epoch": h["epoch"],
                      "top1": h["top1"]} for h in history]
            final[variant_name(layout, exponent)] = history[-1]["top1"]
            by_layout.setdefault(layout, []).append(history[-1]["top1"])
            ended.append({"seed": seed, "variant": variant_name(layout, exponent),
                          "ended (UTC)": finished_at(result_file(args, seed, layout, exponent))})
        finals.append(final)
    columns = ["seed"] + list(dict.fromkeys(k for f in finals for k in f if k != "seed"))
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "train_noise.csv", rows, ["seed", "variant", "epoch", "top1"])
    spread = "".join(f"- {layout}: {len(v)} runs, top-1 mean {statistics.mean(v):.2f}, "
                     f"range {min(v):.2f}-{max(v):.2f}\n" for layout, v in by_layout.items())
    pairs = "".join(f"- {first} minus {variant_name(*v)}: {paired_summary(diffs, first)}\n"
                    for first in (OURS, THEIRS) for v in variants
                    if (diffs := [f[first] - f[variant_name(*v)] for f in finals
                                  if first in f and variant_name(*v) in f]))
    command = (f"python benchmarks/train_noise.py --seeds {' '.join(map(str, args.seeds))} --variants "
               + " ".join(f"{layout}:{exponent}" for layout, exponent in args.variants))
    text = ("# The noise floor of the Imagenette training bar: runs that differ only in rounding\n\n"
            f"Generated by `{command}` on {here}, one run after the other. "
            f"Every run is train_imagenette.py's plain timm loop (ghostnet_100, {SETTINGS['epochs']} epochs, "
            f"{SETTINGS['img_size']} px, batch {SETTINGS['batch_size']}, lr {SETTINGS['lr']}, the GhostNet recipe) "
            "with the seed's random numbers: the same initial weights, batches, "
            "augmentations and dropout masks. `LAYOUT, loss x (1+2^-K)` runs it in that memory format with "
            "the loss scaled by 1 + 2^-K, which changes only the rounding of the gradients. "
            + ("The `ghostzoo train` and `plain loop (nchw)` columns are the two runs of the seed in "
               "[train_imagenette.md](train_imagenette.md). " if any(s in references for s in args.seeds) else "")
            + ("Also reported, from earlier invocations' result files in the run folder: "
               + ", ".join(variant_name(*v) for v in earlier) + ". " if earlier else "")
            + "Final val top-1 (%) after the last epoch:\n\n"
            + markdown_table(finals, columns)
            + "\nOver all runs above, per memory format:\n\n" + spread
            + ("\nPaired by seed, final top-1 differences:\n\n" + pairs if pairs else "")
            + "\nWhen each run of this script ended (a run found in the run folder is not run again):\n\n"
            + markdown_table(ended, ["seed", "variant", "ended (UTC)"])
            + "\nPer-epoch top-1 of this script's runs: train_noise.csv.\n")
    write_text_atomic(out / "train_noise.md", text)
    print(text)


if __name__ == "__main__":
    main()
