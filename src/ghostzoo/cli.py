"""The ``ghostzoo`` command: argument parsing and printing around the library, nothing more."""

from __future__ import annotations

import argparse
import inspect
import logging
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from . import __version__
from ._io import write_json_atomic
from .bench import BACKENDS, DEFAULT_BACKENDS, TimingBudget, run_benchmark
from .deploy.export import FORMATS
from .deploy.runtime import is_exported, load_exported
from .errors import GhostzooError
from .factory import create_model
from ._runtime import resolve_device
from .inference import Predictor, demo_images, true_label
from .profile import profile_model
from .quantization.observers import OBSERVERS
from .registry import PretrainedCfg, get_model_entry, get_pretrained_cfg, list_models


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _fmt(value: float | None, scale: float, digits: int, unit: str = "") -> str:
    """An unknown value prints as "-" alone: "-G" would read as a number with a unit."""
    return "-" if value is None else f"{value / scale:.{digits}f}{unit}"


def _cfg_row(name: str) -> dict:
    entry = get_model_entry(name)
    cfg = entry.default_cfg
    pub = cfg.published
    tags = [c.tag for c in entry.cfgs.values() if c.has_weights]
    return {"name": name, "family": entry.family, "params": pub.params, "macs": pub.macs,
            "input_size": cfg.input_size[-1], "top1": pub.top1, "weights": tags}


def cmd_list(args: argparse.Namespace) -> int:
    names = list_models(args.pattern or "", pretrained=args.pretrained)
    if not names:
        raise GhostzooError(f"no model matches {args.pattern!r}; see `ghostzoo list`")
    rows = [_cfg_row(n) for n in names]
    print(_table([[r["name"], _fmt(r["params"], 1e6, 2), _fmt(r["macs"], 1e9, 3), r["input_size"],
                   _fmt(r["top1"], 1, 2), ",".join(r["weights"]) or "-"] for r in rows],
                 ["model", "params(M)", "GMACs", "res", "top-1", "weights"]))
    print(f"\n{len(rows)} models; params, MACs and top-1 as published by the authors (see `ghostzoo info`)")
    if args.output:
        write_json_atomic(args.output, rows)
    return 0


def _info(name: str) -> dict:
    entry = get_model_entry(name)
    cfg = get_pretrained_cfg(name)
    model = create_model(name)
    doc = inspect.getdoc(entry.builder) or ""
    return {
        "name": entry.name, "family": entry.family, "description": doc,
        "pretrained": {c.name: c.to_dict() for c in entry.cfgs.values()},
        "default_tag": cfg.tag,
        "feature_info": list(model.feature_info),
        "params_built": sum(p.numel() for p in model.parameters()),
    }


def cmd_info(args: argparse.Namespace) -> int:
    info = _info(args.model)
    print(f"{info['name']}  ({info['family']})")
    if info["description"]:
        print(f"  {info['description']}")
    print(f"  params (built): {info['params_built']:,}")
    print("  features: " + ", ".join(f"{f['num_chs']}ch@/{f['reduction']} ({f['module']})"
                                     for f in info["feature_info"]))
    for name, cfg in info["pretrained"].items():
        pub = cfg["published"]
        print(f"\n  weights {name}{'  (default)' if cfg['tag'] == info['default_tag'] else ''}")
        for key in ("url", "hf_hub_id", "license", "paper", "notes"):
            if cfg[key]:
                print(f"    {key}: {cfg[key]}")
        print(f"    eval: {cfg['input_size'][-1]}px, crop_pct {cfg['crop_pct']}, {cfg['interpolation']}, "
              f"mean {tuple(cfg['mean'])}, std {tuple(cfg['std'])}, {cfg['num_classes']} classes")
        print(f"    published: params {_fmt(pub['params'], 1e6, 2, 'M')}, MACs {_fmt(pub['macs'], 1e9, 3, 'G')}, "
              f"top-1 {_fmt(pub['top1'], 1, 2)}, top-5 {_fmt(pub['top5'], 1, 2)}  [{pub['source']}]")
    if args.output:
        write_json_atomic(args.output, info)
    return 0


def _load_for_inference(args: argparse.Namespace):
    cfg: PretrainedCfg = get_pretrained_cfg(args.model)
    if args.checkpoint is not None and is_exported(args.checkpoint):
        return load_exported(args.checkpoint, args.model)
    if args.checkpoint is None and not cfg.has_weights:
        raise GhostzooError(f"{cfg.name} has no released weights; pass --checkpoint PATH")
    return create_model(args.model, pretrained=args.checkpoint is None, checkpoint_path=args.checkpoint,
                        use_ema=args.use_ema)


def cmd_predict(args: argparse.Namespace) -> int:
    resolve_device(args.device)  # fail before any download
    model = _load_for_inference(args)
    predictor = Predictor(model, device=args.device, batch_size=args.batch_size)
    with tqdm(desc="predict", unit="img", disable=None, file=sys.stderr, leave=False) as bar:
        report = predictor.predict(args.images, topk=args.topk, on_image=bar.update)
    for item in report.skipped:
        print(f"skipped {item['path']}: {item['reason']}", file=sys.stderr)
    for pred in report.predictions:
        print(pred["path"])
        for t in pred["topk"]:
            print(f"  {t['prob']:7.2%}  {t['label']}  ({t['index']})")
    if args.output:
        write_json_atomic(args.output, {"model": model.pretrained_cfg.name, "predictions": report.predictions,
                                        "skipped": report.skipped})
    if not report.predictions:
        raise GhostzooError(f"no readable image among {len(report.skipped)} input(s)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    args.use_ema = None
    model = _load_for_inference(args)
    folder = args.images or demo_images()
    report = Predictor(model).predict([folder], topk=3)
    hits = 0
    for pred in report.predictions:
        truth = true_label(pred["path"])
        top = pred["topk"]
        hits += int(top[0]["label"] == truth)
        mark = "ok " if top[0]["label"] == truth else "MISS"
        print(f"{mark} {Path(pred['path']).name}  true: {truth}")
        print("      " + "  |  ".join(f"{t['label']} {t['prob']:.1%}" for t in top))
    if not report.predictions:
        raise GhostzooError(f"no readable image in {folder}")
    accuracy = 100.0 * hits / len(report.predictions)
    print(f"\n{model.pretrained_cfg.name}: {hits}/{len(report.predictions)} correct (top-1 {accuracy:.1f}%)")
    if args.output:
        write_json_atomic(args.output, {"model": model.pretrained_cfg.name, "accuracy": accuracy,
                                        "predictions": report.predictions})
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    cfg = get_pretrained_cfg(args.model)
    size = args.input_size or cfg.input_size[-1]
    model = create_model(args.model)
    prof = profile_model(model, (cfg.input_size[0], size, size))
    rows = [[s.name, s.modules, s.reduction or "-", s.channels or "-", f"{s.params:,}", f"{s.macs / 1e6:.2f}"]
            for s in prof.stages]
    print(f"{args.model} at {size}x{size}, batch 1")
    print(_table(rows, ["stage", "modules", "stride", "chs", "params", "MMACs"]))
    print(f"\ntotal: {prof.params:,} params, {prof.macs / 1e9:.4f} GMACs "
          f"({prof.conv_linear_macs / 1e9:.4f} G in convolutions and linear layers alone)")
    if args.output:
        write_json_atomic(args.output, {"model": args.model, **prof.to_dict()})
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .deploy import export_model

    if args.checkpoint is not None and is_exported(args.checkpoint):
        raise GhostzooError(f"--checkpoint takes weights, and {args.checkpoint} is already an exported model "
                            "(an int8 ONNX file goes to --int8)")
    if args.int8 or args.random_weights:
        model = create_model(args.model, checkpoint_path=args.checkpoint, use_ema=args.use_ema)
    else:
        model = _load_for_inference(args)
    report = export_model(model, args.format, args.output, input_size=args.input_size, batch_size=args.batch_size,
                          dynamic_batch=args.dynamic_batch, opset=args.opset, int8=args.int8)
    shape = "x".join(map(str, report.input_shape))
    print(f"{report.model} -> {', '.join(report.paths)}  ({report.format}{', int8' if report.int8 else ''}"
          f"{f', opset {report.opset}' if report.opset else ''}, input {shape}"
          f"{', dynamic batch' if report.dynamic_batch else ''})")
    print("parity (max|a-b| / max|ref|): " + ", ".join(f"{k} {v:.2e}" for k, v in report.errors.items()) +
          f"  (tolerance {report.tolerance:g})")
    if report.neighbour_slack is not None:
        print(f"neighbours: compared on the file's own k-NN choices, {report.neighbour_slack:.1e} from PyTorch's "
              "nearest (near-ties; see ghostzoo.deploy.export)")
    if report.ops:
        print(f"graph: {sum(report.ops.values())} nodes, " + (
            f"{len(report.dynamic_ops)} computing on shapes at run time ({', '.join(report.dynamic_ops[:3])}"
            f"{', ...' if len(report.dynamic_ops) > 3 else ''})" if report.dynamic_ops else "static (no shape ops)"))
    if args.report:
        write_json_atomic(args.report, report.to_dict())
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .engine import validate

    resolve_device(args.device)
    model = _load_for_inference(args)
    result = validate(model, args.data, split=args.split, labels=args.labels, batch_size=args.batch_size,
                      workers=args.workers, device=args.device, amp=args.amp, channels_last=args.channels_last,
                      progress=True)
    for item in result.skipped:
        print(f"skipped {item['path']}: {item['reason']}", file=sys.stderr)
    print(f"{args.model} on {args.data} ({result.images} images): top-1 {result.top1:.2f}  top-5 {result.top5:.2f}  "
          f"loss {result.loss:.4f}  {result.images_per_s:.1f} img/s" +
          (f"  ({len(result.skipped)} unreadable skipped)" if result.skipped else ""))
    worst = sorted(result.per_class.items(), key=lambda kv: kv[1])[:5]
    print("lowest per-class top-1: " + ", ".join(f"{k} {v:.1f}" for k, v in worst))
    if args.output:
        write_json_atomic(args.output, {"model": args.model, "data": str(args.data), **result.to_dict()})
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .engine import TrainConfig, train

    fields = {f for f in TrainConfig.__dataclass_fields__}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields and v is not None})
    summary = train(cfg)
    if args.output:
        write_json_atomic(args.output, summary)
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from .quantization import check_family, check_output
    from .quantization.workflow import quantize

    check_family(args.model)
    check_output(args.output)
    if args.checkpoint is not None and is_exported(args.checkpoint):
        raise GhostzooError("--checkpoint must hold float PyTorch weights, not an exported file")
    model = _load_for_inference(args)
    report = quantize(model, args.calib_data, args.output, calib_split=args.calib_split, calib_size=args.calib_size,
                      observer=args.observer, keep_float=args.keep_float, qat_epochs=args.qat_epochs,
                      train_data=args.train_data, lr=args.lr, batch_size=args.batch_size,
                      check_split=None if args.check_split.lower() == "none" else args.check_split,
                      check_size=args.check_size, workers=args.workers, seed=args.seed, qat_dir=args.qat_dir,
                      train_split=args.train_split, val_split=args.val_split, progress=True)
    how = f"{report.observer} observer, {report.calibration_images} calibration images"
    how += f", {report.qat_epochs} QAT epochs" if report.qat_epochs else ""
    how += f", float: {', '.join(report.keep_float)}" if report.keep_float else ""
    print(f"{model.pretrained_cfg.name} -> int8 ({how}): {report.output} ({report.file_bytes / 1e6:.2f} MB)")
    check = report.check
    accuracy = (f"fp32 top-1 {check.fp32_top1:.2f}  int8 top-1 {check.int8_top1:.2f}  "
                if check.fp32_top1 is not None else "")
    print(f"on {report.check_data} {report.check_split} ({check.images} images): {accuracy}"
          f"top-1 agreement {check.agreement:.2f}%")
    if args.report:
        write_json_atomic(args.report, report.to_dict())
    return 0


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _batch_sizes(text: str) -> list[int]:
    """An argparse type: comma-separated positive integers, e.g. ``1,32``."""
    return [_positive_int(part) for part in text.split(",")]


def _backends(text: str) -> list[str]:
    """An argparse type: comma-separated backend names, or ``all``."""
    names = list(BACKENDS) if text == "all" else [b.strip() for b in text.split(",")]
    unknown = [b for b in names if b not in BACKENDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown backend {', '.join(unknown)!s}; choose from "
                                         f"{', '.join(BACKENDS)} or all")
    return names


def cmd_benchmark(args: argparse.Namespace) -> int:
    budget = TimingBudget(warmup=args.warmup, min_iters=args.min_iters, min_time_s=args.min_time,
                          max_time_s=args.max_time, max_iters=args.max_iters)
    run = run_benchmark(args.models, args.output_dir, args.name, command=shlex.join(["ghostzoo", *args.argv]),
                        notes=args.notes, update=args.update, device=args.device, checkpoint=args.checkpoint,
                        budget=budget, reparameterize=args.reparameterize, backends=args.backends,
                        batch_sizes=args.batch_sizes, input_size=args.input_size, threads=args.threads,
                        calib_data=args.calib_data, batched_max_gmacs=args.batched_max_gmacs, progress=True)
    rows = run.rows
    backends = list(dict.fromkeys(r.backend for r in rows))
    for batch in args.batch_sizes:
        cells = {}
        for r in rows:
            if r.batch == batch:
                cells.setdefault(r.model, {})[r.backend] = f"{r.median_ms:.2f}" if r.ok else r.status.split(":")[0]
        print(f"batch {batch}: median latency (ms)")
        print(_table([[m, *(c.get(b, "-") for b in backends)] for m, c in cells.items()], ["model", *backends]))
        print()
    print(f"threads: {rows[0].threads}; wrote " + ", ".join(str(p) for p in run.written.values()))
    if args.output:
        write_json_atomic(args.output, {"settings": run.settings, "rows": [r.to_dict() for r in rows]})
    if not any(r.ok for r in rows):
        raise GhostzooError(f"nothing could be measured; first problem: {rows[0].status}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ghostzoo", description="Huawei Noah's efficient backbones: "
                                     "list, inspect, predict, profile, quantize.")
    parser.add_argument("--version", action="version", version=f"ghostzoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, fn: Callable, help: str, json_flag: str = "--output") -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(fn=fn)
        p.add_argument(json_flag, metavar="FILE.json", help="also write the results as JSON")
        return p

    p = add("list", cmd_list, "table of models: params, MACs, resolution, published top-1, weights")
    p.add_argument("pattern", nargs="?", help="shell-style pattern, e.g. 'ghostnet*'")
    p.add_argument("--pretrained", action="store_true", help="only models with released weights")

    p = add("info", cmd_info, "everything known about one model")
    p.add_argument("model")

    p = add("predict", cmd_predict, "top-k ImageNet classes for image files or folders")
    p.add_argument("model", help="model name, or name.tag for specific weights")
    p.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--topk", type=_positive_int, default=5)
    p.add_argument("--checkpoint", metavar="PATH|URL|hf-hub:ID",
                   help="weights to use instead of the model's released ones")
    p.add_argument("--use-ema", action=argparse.BooleanOptionalAction, default=None,
                   help="take the EMA weights of a checkpoint that has both")
    p.add_argument("--batch-size", type=_positive_int, default=16)
    p.add_argument("--device", default="cpu")

    p = add("demo", cmd_demo, "offline demo: the packaged Imagenette photos, top-3 each, and accuracy")
    p.add_argument("model", nargs="?", default="ghostnet_100.imagenette",
                   help="default: ghostnet_100.imagenette, trained by ghostzoo and shipped in the package")
    p.add_argument("--images", help="another folder of <WordNet id>/<image> files")
    p.add_argument("--checkpoint", metavar="PATH|URL|hf-hub:ID")

    p = add("validate", cmd_validate, "top-1 / top-5, loss and per-class accuracy on a labelled dataset")
    p.add_argument("model")
    p.add_argument("--data", required=True, help="ImageFolder, ILSVRC2012-val (val.txt) or Oxford-IIIT Pet folder")
    p.add_argument("--split", default="val", help="split folder / split name (default: val)")
    p.add_argument("--labels", help="ground-truth file of '<file> <index>' lines (ILSVRC2012 val layout)")
    p.add_argument("--checkpoint", metavar="PATH|URL|hf-hub:ID")
    p.add_argument("--use-ema", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--workers", type=_non_negative_int, default=2)
    p.add_argument("--amp", choices=["bf16", "fp16"], help="autocast: bf16 on CPU, fp16 or bf16 on CUDA")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--device", default="cpu")

    p = add("train", cmd_train, "train or fine-tune on a labelled dataset (single process or torchrun)")
    p.add_argument("model")
    p.add_argument("--data", required=True, help="dataset folder with train and val splits")
    p.add_argument("--recipe", default="ghostnet", help="ghostnet (SGD, the GhostNet paper's) or deit "
                   "(AdamW, RandAugment, mixup/cutmix, erasing, EMA); every knob below overrides it")
    p.add_argument("--output-dir", help="where checkpoints and summary.json go (default: runs/MODEL)")
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--lr", type=float, help="default: the recipe's, scaled to the global batch size")
    p.add_argument("--min-lr", type=float)
    p.add_argument("--opt", help="any timm optimizer name (sgd, adamw, lamb, ...)")
    p.add_argument("--momentum", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--warmup-epochs", type=float)
    p.add_argument("--smoothing", type=float, help="label smoothing")
    p.add_argument("--drop-rate", type=float, help="dropout before the classifier")
    p.add_argument("--drop-path-rate", type=float)
    p.add_argument("--color-jitter", type=float)
    p.add_argument("--auto-augment", help="timm auto-augment policy, e.g. rand-m9-mstd0.5-inc1")
    p.add_argument("--re-prob", type=float, help="random erasing probability")
    p.add_argument("--mixup", type=float, help="mixup alpha (0 disables)")
    p.add_argument("--cutmix", type=float, help="cutmix alpha (0 disables)")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=None, help="keep an EMA of the weights")
    p.add_argument("--ema-decay", type=float)
    p.add_argument("--img-size", type=_positive_int, help="training and validation resolution")
    p.add_argument("--checkpoint", metavar="PATH|URL|hf-hub:ID", help="start from these weights (fine-tuning)")
    p.add_argument("--num-classes", type=_positive_int, help="re-head to this many classes (default: the data's)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output-dir from its last epoch")
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", type=_non_negative_int)
    p.add_argument("--amp", choices=["bf16", "fp16"])
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels-last memory format (default: on; faster than NCHW for these nets on CPU)")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the training step: faster steps after a one-off compile of minutes, "
                        "and BatchNorm statistics by a Welford reduction (eager channels-last on CPU sums them "
                        "naively)")
    p.add_argument("--device")
    p.add_argument("--train-split")
    p.add_argument("--val-split")
    p.add_argument("--steps-per-epoch", type=_positive_int, help="cap on optimizer steps per epoch")
    p.add_argument("--deterministic", action="store_true", default=None)
    p.add_argument("--log-interval", type=_positive_int,
                   help="steps between reads of the loss from the device for the progress bar (default: 50)")

    p = add("export", cmd_export, "a deployable file (ONNX, OpenVINO IR, TorchScript, pt2) of the deploy-form "
            "model, checked against PyTorch", json_flag="--report")
    p.add_argument("model", help="model name, or name.tag for specific weights")
    p.add_argument("--format", required=True, choices=list(FORMATS))
    p.add_argument("--output", required=True, metavar="FILE",
                   help="the file to write: .onnx, .xml (its .bin beside it), .pt (TorchScript) or .pt2")
    p.add_argument("--checkpoint", metavar="PATH|URL|hf-hub:ID", help="weights (default: the released ones)")
    p.add_argument("--use-ema", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--random-weights", action="store_true", help="export freshly initialised weights (speed tests)")
    p.add_argument("--int8", metavar="FILE.onnx", help="carry this int8 ONNX file from `ghostzoo quantize` "
                   "to --format (onnx: checked and copied; openvino: converted)")
    p.add_argument("--input-size", type=_positive_int, help="square input side (default: the model's)")
    p.add_argument("--batch-size", type=_positive_int, default=1, help="batch traced and checked (default: 1)")
    p.add_argument("--dynamic-batch", action="store_true", help="leave the batch dimension free")
    p.add_argument("--opset", type=_int_at_least(17), default=17, help="ONNX opset (default: 17)")

    p = add("benchmark", cmd_benchmark, "latency and throughput per backend; writes CSV, Markdown and a PNG plot")
    p.add_argument("models", nargs="*", metavar="MODEL", help="names or shell patterns ('*' = the whole zoo)")
    p.add_argument("--backends", type=_backends, default=",".join(DEFAULT_BACKENDS),
                   help=f"comma-separated from {', '.join(BACKENDS)}, or all (default: all but compile, "
                        "which takes minutes per model to compile on a CPU)")
    p.add_argument("--batch-sizes", type=_batch_sizes, default=[1], help="comma-separated, e.g. 1,32 (default: 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i] (on CUDA: the PyTorch backends)")
    p.add_argument("--input-size", type=_positive_int, help="square input side (default: each model's)")
    p.add_argument("--checkpoint", metavar="PATH|FILE.onnx",
                   help="weights for the one model named, or an exported / int8 file to time as is")
    p.add_argument("--threads", type=_positive_int, help="threads for every backend (default: torch's)")
    p.add_argument("--warmup", type=_non_negative_int, default=3, help="untimed runs first (default: 3)")
    p.add_argument("--min-iters", type=_positive_int, default=10, help="timed runs, at least (default: 10)")
    p.add_argument("--min-time", type=float, default=2.0, metavar="S", help="seconds of timed runs, at least (2)")
    p.add_argument("--max-time", type=_positive_float, default=5.0, metavar="S",
                   help="cap on the timed runs of one measurement, seconds (default: 5)")
    p.add_argument("--max-iters", type=_positive_int, default=1000, help="cap on timed runs (default: 1000)")
    p.add_argument("--batched-max-gmacs", type=_positive_float, metavar="G",
                   help="batch sizes above 1 only for models of at most G GMACs per image (the small ones)")
    p.add_argument("--calib-data", metavar="DIR", help="images for int8 calibration (default: the packaged photos)")
    p.add_argument("--reparameterize", action=argparse.BooleanOptionalAction, default=True,
                   help="run the PyTorch backends on the deploy form, as the exporters do (default: yes)")
    p.add_argument("--output-dir", required=True, help="where NAME.csv, NAME.md and NAME.png go")
    p.add_argument("--name", default="benchmark", help="file name stem (default: benchmark)")
    p.add_argument("--notes", metavar="FILE.md", help="Markdown put under the title of NAME.md")
    p.add_argument("--update", action="store_true",
                   help="measure again only what this run names: the other rows of an existing NAME.csv stay, "
                        "and NAME.md lists its earlier commands before this one")

    p = add("quantize", cmd_quantize, "int8: post-training quantization, optionally quantization-aware "
            "fine-tuning, into an ONNX file that validate / predict / benchmark accept", json_flag="--report")
    p.add_argument("model", help="a CNN: GhostNet v1/v2/v3, Ghost-ResNet, G-Ghost RegNet, TinyNet, LegoNet, "
                   "Versatile filters")
    p.add_argument("--output", required=True, metavar="MODEL_INT8.onnx", help="the int8 file to write")
    p.add_argument("--checkpoint", metavar="PATH|URL|hf-hub:ID", help="float weights (default: the released ones)")
    p.add_argument("--use-ema", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--calib-data", required=True, metavar="DIR",
                   help="calibration images: a dataset folder in any layout validate reads, or a folder of images")
    p.add_argument("--calib-split", default="train", help="split of --calib-data to calibrate on (default: train)")
    p.add_argument("--calib-size", type=_positive_int, default=256, help="images drawn at random (default: 256)")
    p.add_argument("--observer", choices=sorted(OBSERVERS), default="minmax",
                   help="activation ranges: min-max, 99.99th percentile, or least squared error (default: minmax)")
    p.add_argument("--keep-float", action="append", default=[], metavar="PATTERN",
                   help="leave the modules matching this pattern (fnmatch, repeatable) in float, e.g. 'conv_stem'")
    p.add_argument("--qat-epochs", type=_non_negative_int, default=0,
                   help="quantization-aware fine-tuning epochs after calibration (default: 0, PTQ only)")
    p.add_argument("--train-data", metavar="DIR", help="dataset to fine-tune on (needed with --qat-epochs)")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val", help="split the QAT epochs are validated on")
    p.add_argument("--lr", type=float, help="QAT learning rate (default: 1/100 of the training recipe's)")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--qat-dir", metavar="DIR", help="keep the QAT checkpoints here (default: a temporary folder)")
    p.add_argument("--check-split", default="val", help="split of --calib-data on which float and int8 are "
                   "compared; 'none': agreement on the calibration images")
    p.add_argument("--check-size", type=_positive_int, help="images of --check-split to compare on (default: all)")
    p.add_argument("--workers", type=_non_negative_int, default=2)
    p.add_argument("--seed", type=int, default=0, help="draws the calibration and check images, seeds QAT")

    p = add("profile", cmd_profile, "parameters and MACs, in total and per stage")
    p.add_argument("model")
    p.add_argument("--input-size", type=_positive_int, help="square input side (default: the model's)")
    return parser


@contextmanager
def _console_logging() -> Iterator[None]:
    """The library's INFO records (a training run's "resumed ..." and per-epoch lines) on stdout as plain
    lines while a command runs: the library logs, the command decides what the user sees."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("ghostzoo")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed, for reports that quote their command
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        with _console_logging():
            return args.fn(args)
    except GhostzooError as e:
        print(f"ghostzoo {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ghostzoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
