"""The ``ghostzoo`` command: argument parsing and printing around the library, nothing more."""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from ._io import check_writable_file, check_writable_folder, write_json_atomic
from ._runtime import check_input_size, resolve_device
from .bench import TimingBudget, run_benchmark
from .cli_parser import build_parser
from .deploy.runtime import is_exported, load_exported
from .errors import GhostzooError
from .factory import create_model
from .inference import Predictor, demo_images, true_label
from .profile import profile_model
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
    return {
        "name": name,
        "family": entry.family,
        "params": pub.params,
        "macs": pub.macs,
        "input_size": cfg.input_size[-1],
        "top1": pub.top1,
        "weights": tags,
    }


def cmd_list(args: argparse.Namespace) -> int:
    names = list_models(args.pattern or "", pretrained=args.pretrained)
    if not names:
        raise GhostzooError(f"no model matches {args.pattern!r}; see `ghostzoo list`")
    rows = [_cfg_row(n) for n in names]
    print(
        _table(
            [
                [
                    r["name"],
                    _fmt(r["params"], 1e6, 2),
                    _fmt(r["macs"], 1e9, 3),
                    r["input_size"],
                    _fmt(r["top1"], 1, 2),
                    ",".join(r["weights"]) or "-",
                ]
                for r in rows
            ],
            ["model", "params(M)", "GMACs", "res", "top-1", "weights"],
        )
    )
    noun = "model" if len(rows) == 1 else "models"
    print(f"\n{len(rows)} {noun}; params, MACs and top-1 as published by the authors (see `ghostzoo info`)")
    if args.output:
        write_json_atomic(args.output, rows)
    return 0


def _info(name: str) -> dict:
    entry = get_model_entry(name)
    cfg = get_pretrained_cfg(name)
    model = create_model(name)
    doc = inspect.getdoc(entry.builder) or ""
    return {
        "name": entry.name,
        "family": entry.family,
        "description": doc,
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
    print(
        "  features: " + ", ".join(f"{f['num_chs']}ch@/{f['reduction']} ({f['module']})" for f in info["feature_info"])
    )
    for name, cfg in info["pretrained"].items():
        pub = cfg["published"]
        print(f"\n  weights {name}{'  (default)' if cfg['tag'] == info['default_tag'] else ''}")
        for key in ("url", "hf_hub_id", "license", "paper", "notes"):
            if cfg[key]:
                print(f"    {key}: {cfg[key]}")
        print(
            f"    eval: {cfg['input_size'][-1]}px, crop_pct {cfg['crop_pct']}, {cfg['interpolation']}, "
            f"mean {tuple(cfg['mean'])}, std {tuple(cfg['std'])}, {cfg['num_classes']} classes"
        )
        print(
            f"    published: params {_fmt(pub['params'], 1e6, 2, 'M')}, MACs {_fmt(pub['macs'], 1e9, 3, 'G')}, "
            f"top-1 {_fmt(pub['top1'], 1, 2)}, top-5 {_fmt(pub['top5'], 1, 2)}  [{pub['source']}]"
        )
    if args.output:
        write_json_atomic(args.output, info)
    return 0


def _load_for_inference(args: argparse.Namespace):
    cfg: PretrainedCfg = get_pretrained_cfg(args.model)
    if args.checkpoint is not None and is_exported(args.checkpoint):
        return load_exported(args.checkpoint, args.model)
    if args.checkpoint is None and not cfg.has_weights:
        raise GhostzooError(f"{cfg.name} has no released weights; pass --checkpoint PATH")
    return create_model(
        args.model, pretrained=args.checkpoint is None, checkpoint_path=args.checkpoint, use_ema=args.use_ema
    )


def _with_precision(args: argparse.Namespace, model, calib_data: str | None = None):
    """(the model to run, the precision left for the backend): ``--precision int8`` turns the model
    into its cached int8 file on a runtime, which the backend then runs as it is."""
    if args.precision != "int8":
        return model, args.precision
    from .quantization import int8_runtime

    runner = int8_runtime(
        model,
        args.calib_data or calib_data or demo_images(),
        args.backend,
        calib_size=args.calib_size,
        device=getattr(args, "device", "cpu"),  # demo runs on the CPU
        workers=getattr(args, "workers", 2),
    )
    return runner, "fp32"


def cmd_predict(args: argparse.Namespace) -> int:
    resolve_device(args.device)  # fail before any download
    model, precision = _with_precision(args, _load_for_inference(args))
    predictor = Predictor(
        model, device=args.device, batch_size=args.batch_size, backend=args.backend, precision=precision
    )
    with tqdm(desc="predict", unit="img", disable=None, file=sys.stderr, leave=False) as bar:
        report = predictor.predict(args.images, topk=args.topk, on_image=bar.update)
    for item in report.skipped:
        print(f"skipped {item['path']}: {item['reason']}", file=sys.stderr)
    for pred in report.predictions:
        print(pred["path"])
        for t in pred["topk"]:
            print(f"  {t['prob']:7.2%}  {t['label']}  ({t['index']})")
    if args.output:
        write_json_atomic(
            args.output,
            {"model": model.pretrained_cfg.name, "predictions": report.predictions, "skipped": report.skipped},
        )
    if not report.predictions:
        raise GhostzooError(f"no readable image among {len(report.skipped)} input(s)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    args.use_ema = None
    model, precision = _with_precision(args, _load_for_inference(args))
    folder = args.images or demo_images()
    report = Predictor(model, backend=args.backend, precision=precision).predict([folder], topk=3)
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
        write_json_atomic(
            args.output, {"model": model.pretrained_cfg.name, "accuracy": accuracy, "predictions": report.predictions}
        )
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    cfg = get_pretrained_cfg(args.model)
    size = args.input_size or cfg.input_size[-1]
    model = create_model(args.model)
    check_input_size(model, size, "--input-size")
    prof = profile_model(model, (cfg.input_size[0], size, size))
    rows = [
        [s.name, s.modules, s.reduction or "-", s.channels or "-", f"{s.params:,}", f"{s.macs / 1e6:.2f}"]
        for s in prof.stages
    ]
    print(f"{args.model} at {size}x{size}, batch 1")
    print(_table(rows, ["stage", "modules", "stride", "chs", "params", "MMACs"]))
    print(
        f"\ntotal: {prof.params:,} params, {prof.macs / 1e9:.4f} GMACs "
        f"({prof.conv_linear_macs / 1e9:.4f} G in convolutions and linear layers alone)"
    )
    if args.output:
        write_json_atomic(args.output, {"model": args.model, **prof.to_dict()})
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .deploy import export_model

    if args.checkpoint is not None and is_exported(args.checkpoint):
        raise GhostzooError(
            f"--checkpoint takes weights, and {args.checkpoint} is already an exported model "
            "(an int8 ONNX file goes to --int8)"
        )
    if args.int8 or args.random_weights:
        model = create_model(args.model, checkpoint_path=args.checkpoint, use_ema=args.use_ema)
    else:
        model = _load_for_inference(args)
    if args.input_size and not args.int8:
        check_input_size(model, args.input_size, "--input-size")
    report = export_model(
        model,
        args.format,
        args.output,
        input_size=args.input_size,
        batch_size=args.batch_size,
        dynamic_batch=args.dynamic_batch,
        opset=args.opset,
        int8=args.int8,
        exporter=args.exporter,
    )
    shape = "x".join(map(str, report.input_shape))
    print(
        f"{report.model} -> {', '.join(report.paths)}  ({report.format}{', int8' if report.int8 else ''}"
        f"{f', opset {report.opset}' if report.opset else ''}, input {shape}"
        f"{', dynamic batch' if report.dynamic_batch else ''})"
    )
    print(
        "parity (max|a-b| / max|ref|): "
        + ", ".join(f"{k} {v:.2e}" for k, v in report.errors.items())
        + f"  (tolerance {report.tolerance:g})"
    )
    if report.neighbour_slack is not None:
        print(
            f"neighbours: compared on the file's own k-NN choices, {report.neighbour_slack:.1e} from PyTorch's "
            "nearest (near-ties; see ghostzoo.deploy.export)"
        )
    if report.ops:
        print(
            f"graph: {sum(report.ops.values())} nodes, "
            + (
                f"{len(report.dynamic_ops)} computing on shapes at run time ({', '.join(report.dynamic_ops[:3])}"
                f"{', ...' if len(report.dynamic_ops) > 3 else ''})"
                if report.dynamic_ops
                else "static (no shape ops)"
            )
        )
    if args.report:
        write_json_atomic(args.report, report.to_dict())
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .engine import validate

    resolve_device(args.device)
    if args.precision == "int8" and not args.calib_data and not (Path(args.data) / "train").is_dir():
        raise GhostzooError(f"--precision int8: {args.data} has no train split to calibrate on; pass --calib-data DIR")
    model, precision = _with_precision(args, _load_for_inference(args), calib_data=args.data)
    result = validate(
        model,
        args.data,
        split=args.split,
        labels=args.labels,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        amp=args.amp,
        channels_last=args.channels_last,
        progress=True,
        backend=args.backend,
        precision=precision,
    )
    for item in result.skipped:
        print(f"skipped {item['path']}: {item['reason']}", file=sys.stderr)
    print(
        f"{args.model} on {args.data} ({result.images} images): top-1 {result.top1:.2f}  top-5 {result.top5:.2f}  "
        f"loss {result.loss:.4f}  {result.images_per_s:.1f} img/s"
        + (f"  ({len(result.skipped)} unreadable skipped)" if result.skipped else "")
    )
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
    check_output(args.output, args.format, args.exporter)
    if args.checkpoint is not None and is_exported(args.checkpoint):
        raise GhostzooError("--checkpoint must hold float PyTorch weights, not an exported file")
    model = _load_for_inference(args)
    report = quantize(
        model,
        args.calib_data,
        args.output,
        calib_split=args.calib_split,
        calib_size=args.calib_size,
        observer=args.observer,
        keep_float=args.keep_float,
        qat_epochs=args.qat_epochs,
        train_data=args.train_data,
        lr=args.lr,
        batch_size=args.batch_size,
        check_split=None if args.check_split.lower() == "none" else args.check_split,
        check_size=args.check_size,
        workers=args.workers,
        seed=args.seed,
        qat_dir=args.qat_dir,
        train_split=args.train_split,
        val_split=args.val_split,
        progress=True,
        exporter=args.exporter,
    )
    how = f"{report.observer} observer, {report.calibration_images} calibration images"
    how += f", {report.qat_epochs} QAT epochs" if report.qat_epochs else ""
    how += f", float: {', '.join(report.keep_float)}" if report.keep_float else ""
    print(f"{model.pretrained_cfg.name} -> int8 ({how}): {report.output} ({report.file_bytes / 1e6:.2f} MB)")
    check = report.check
    accuracy = (
        f"fp32 top-1 {check.fp32_top1:.2f}  int8 top-1 {check.int8_top1:.2f}  " if check.fp32_top1 is not None else ""
    )
    print(
        f"on {report.check_data} {report.check_split} ({check.images} images): {accuracy}"
        f"top-1 agreement {check.agreement:.2f}%"
    )
    if args.report:
        write_json_atomic(args.report, report.to_dict())
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    budget = TimingBudget(
        warmup=args.warmup,
        min_iters=args.min_iters,
        min_time_s=args.min_time,
        max_time_s=args.max_time,
        max_iters=args.max_iters,
    )
    run = run_benchmark(
        args.models,
        args.output_dir,
        args.name,
        command=shlex.join(["ghostzoo", *args.argv]),
        notes=args.notes,
        update=args.update,
        device=args.device,
        checkpoint=args.checkpoint,
        budget=budget,
        reparameterize=args.reparameterize,
        backends=args.backends,
        batch_sizes=args.batch_sizes,
        input_size=args.input_size,
        threads=args.threads,
        calib_data=args.calib_data,
        batched_max_gmacs=args.batched_max_gmacs,
        progress=True,
    )
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
    return 0


def _validation_metrics(path: str) -> dict:
    """The numbers of a ``ghostzoo validate --output`` file, for a model card."""
    try:
        result = json.loads(Path(path).read_text(encoding="utf-8"))
        return {
            "data": Path(result["data"]).name,
            "images": result["images"],
            "top-1 (%)": round(result["top1"], 2),
            "top-5 (%)": round(result["top5"], 2),
        }
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise GhostzooError(
            f"--metrics {path}: not a `ghostzoo validate --output` file ({type(e).__name__}: {e})"
        ) from None


def cmd_push_to_hub(args: argparse.Namespace) -> int:
    from .hub import push_to_hub, save_for_hub

    metrics = _validation_metrics(args.metrics) if args.metrics else None
    model = create_model(args.model, pretrained=args.checkpoint is None, checkpoint_path=args.checkpoint)
    if args.output_dir:
        where = str(save_for_hub(model, args.output_dir, args.repo_id, metrics))
    else:
        where = push_to_hub(model, args.repo_id, metrics, private=args.private)
    print(f"{args.repo_id}: {where}")
    if args.output:
        write_json_atomic(args.output, {"repo_id": args.repo_id, "location": where, "metrics": metrics})
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .convert import convert_checkpoint

    path = convert_checkpoint(args.source, args.model, args.output, use_ema=args.use_ema)
    print(f"{args.source} -> {path} ({args.model}, {path.stat().st_size / 1e6:.1f} MB)")
    if args.report:
        write_json_atomic(args.report, {"source": str(args.source), "model": args.model, "output": str(path)})
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": cmd_list,
    "info": cmd_info,
    "predict": cmd_predict,
    "demo": cmd_demo,
    "validate": cmd_validate,
    "train": cmd_train,
    "export": cmd_export,
    "benchmark": cmd_benchmark,
    "quantize": cmd_quantize,
    "profile": cmd_profile,
    "push-to-hub": cmd_push_to_hub,
    "convert": cmd_convert,
}


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


def _check_outputs(args: argparse.Namespace) -> None:
    """Every command's output targets, refused before its work when they could not be written."""
    for option in ("output", "report"):
        if getattr(args, option, None):
            check_writable_file(getattr(args, option), f"--{option}")
    if getattr(args, "output_dir", None):
        check_writable_folder(args.output_dir, "--output-dir")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed, for reports that quote their command
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        _check_outputs(args)
        with _console_logging():
            return COMMANDS[args.command](args)
    except GhostzooError as e:
        print(f"ghostzoo {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ghostzoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
