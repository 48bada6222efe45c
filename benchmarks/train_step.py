"""One ghostnet_100 training step on this CPU: its time and its precision, per memory format.

The three ways the step can run:

- ``nchw``: eager PyTorch in its default layout, what a plain timm loop does;
- ``channels_last``: eager in channels-last memory format, ``ghostzoo train``'s default;
- ``channels_last_compiled``: the same through ``torch.compile``, ``ghostzoo train --compile``.

Time: the three step in turn, one step each per round, in one process, so a change in the machine's
speed during the run (these shared machines drift by 20% within minutes) touches all three alike;
the median step time per way and its speed-up over ``nchw`` are reported, and the time of the first
two steps (the compile, from an empty inductor cache).

Precision: one step's gradients from the same weights and batch, each way against the float64
NCHW step (dropout off), as the relative error of every convolution's weight gradient; and
BatchNorm's training forward alone on N(mean, 0.5^2) data, against float64. PyTorch's eager
channels-last BatchNorm kernel sums its statistics naively in float32, hence its larger errors;
the compiled step computes them with inductor's Welford reduction.

    python benchmarks/train_step.py [--data ../shared/data/imagenette-160] [--rounds 12]

writes docs/results/train_step.{md,csv}. The batch is 64 real training photos at 128 px.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

WAYS = ("nchw", "channels_last", "channels_last_compiled")


def real_batch(data: str, size: int, batch: int) -> tuple:
    import ghostzoo
    from ghostzoo.data import build_dataset, collate_skipping, create_transform

    cfg = ghostzoo.get_pretrained_cfg("ghostnet_100")
    dataset = build_dataset(data, "train", create_transform(cfg, size))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, collate_fn=collate_skipping,
                                         generator=torch.Generator().manual_seed(0))
    images, targets, _ = next(iter(loader))
    return images, targets, len(dataset.classes)


def prepare(way: str, model: torch.nn.Module) -> tuple:
    """(the module to call, the weights it trains, the input memory format) for ``way``."""
    fmt = torch.contiguous_format if way == "nchw" else torch.channels_last
    model = copy.deepcopy(model).to(memory_format=fmt)
    return (torch.compile(model) if way.endswith("compiled") else model), model, fmt


def step_times(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor, rounds: int) -> List[Dict]:
    runs: Dict[str, Callable[[], None]] = {}
    first_two: Dict[str, float] = {}
    for way in WAYS:
        fn, weights, fmt = prepare(way, model)
        optimizer = torch.optim.SGD(weights.parameters(), lr=0.01, momentum=0.9)
        x = images.contiguous(memory_format=fmt)

        def run(fn=fn, optimizer=optimizer, x=x) -> None:
            loss = F.cross_entropy(fn(x), targets, label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        start = time.perf_counter()
        run()
        run()
        first_two[way] = time.perf_counter() - start
        runs[way] = run
    times: Dict[str, List[float]] = {way: [] for way in WAYS}
    for _ in range(rounds):
        for way in WAYS:
            start = time.perf_counter()
            runs[way]()
            times[way].append(time.perf_counter() - start)
    base = statistics.median(times["nchw"])
    return [{"way": way, "median_step_ms": 1e3 * statistics.median(times[way]),
             "images_per_s": len(images) / statistics.median(times[way]),
             "speedup_vs_nchw": base / statistics.median(times[way]),
             "first_two_steps_s": first_two[way]} for way in WAYS]


def gradient_errors(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor) -> Dict[str, float]:
    """Median over conv weights of |grad - grad_float64| / |grad_float64|, per way (``model`` without dropout)."""

    def grads(fn: torch.nn.Module, weights: torch.nn.Module, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        F.cross_entropy(fn(x), targets).backward()
        return {n: p.grad.double() for n, p in weights.named_parameters() if p.ndim == 4}

    reference = copy.deepcopy(model).double()
    exact = grads(reference, reference, images.double())
    errors = {}
    for way in WAYS:
        fn, weights, fmt = prepare(way, model)
        got = grads(fn, weights, images.contiguous(memory_format=fmt))
        errors[way] = statistics.median(float((got[n] - g).norm() / g.norm()) for n, g in exact.items())
    return errors


def batchnorm_errors(mean: float) -> Dict[str, float]:
    """BatchNorm2d's training forward on a 64x48x32x32 N(mean, 0.5^2) tensor vs float64."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 48, 32, 32, generator=gen) * 0.5 + mean
    bn = torch.nn.BatchNorm2d(48).train()
    with torch.no_grad():
        exact = copy.deepcopy(bn).double()(x.double())
    errors = {}
    for way in WAYS:
        fn, _, fmt = prepare(way, bn)
        with torch.no_grad():
            y = fn(x.contiguous(memory_format=fmt))
        errors[way] = float((y.double() - exact).norm() / exact.norm())
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "imagenette-160"))
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "results"))
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not Path(args.data).is_dir():
        parser.error(f"dataset folder not found: {args.data}")

    import ghostzoo
    from _report import markdown_table, write_csv

    from ghostzoo._io import write_text_atomic
    from ghostzoo.deploy.benchmark import processor_name

    # The compile is timed from an empty cache: what a first `ghostzoo train --compile` pays.
    images, targets, classes = real_batch(args.data, args.img_size, args.batch_size)
    torch.manual_seed(0)
    model = ghostzoo.create_model("ghostnet_100", num_classes=classes, drop_rate=0.2).train()
    no_dropout = ghostzoo.create_model("ghostnet_100", num_classes=classes, drop_rate=0.0).train()
    no_dropout.load_state_dict(model.state_dict())
    with tempfile.TemporaryDirectory(prefix="ghostzoo-inductor-") as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        rows = step_times(model, images, targets, args.rounds)
        grad_err = gradient_errors(no_dropout, images, targets)
        bn_err = {mean: batchnorm_errors(mean) for mean in (0.0, 50.0)}
    for row in rows:
        row["conv_grad_rel_error"] = f"{grad_err[row['way']]:.1e}"
        for mean, errs in bn_err.items():
            row[f"bn_out_rel_error_mean{mean:g}"] = f"{errs[row['way']]:.1e}"
    columns = ["way", "median_step_ms", "images_per_s", "speedup_vs_nchw", "first_two_steps_s",
               "conv_grad_rel_error", "bn_out_rel_error_mean0", "bn_out_rel_error_mean50"]
    out = Path(args.out)
    write_csv(out / "train_step.csv", rows, columns)
    text = (f"# One ghostnet_100 training step on CPU: time and precision per memory format\n\n"
            f"Generated by `python benchmarks/train_step.py --img-size {args.img_size} --batch-size "
            f"{args.batch_size} --rounds {args.rounds}` on {processor_name()}, "
            f"{torch.get_num_threads()} threads, torch {torch.__version__}. A batch of {len(images)} Imagenette "
            f"training photos at {args.img_size} px, SGD; the three ways alternate step by step for "
            f"{args.rounds} rounds (median step time). first_two_steps_s includes the compile from an empty "
            f"inductor cache. conv_grad_rel_error: median over the convolution weights of one step's gradient "
            f"error against the float64 NCHW step (dropout off). bn_out_rel_error_meanM: BatchNorm2d's "
            f"training output on a 64x48x32x32 tensor of N(M, 0.5^2) against float64.\n\n"
            + markdown_table(rows, columns))
    write_text_atomic(out / "train_step.md", text)
    print(text)


if __name__ == "__main__":
    main()
