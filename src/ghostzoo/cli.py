"""The ``ghostzoo`` command: argument parsing and printing around the library, nothing more."""

from __future__ import annotations

import argparse
import inspect
import sys
from typing import Callable, Dict, List, Optional, Sequence

from tqdm import tqdm

from . import __version__
from ._io import write_json_atomic
from .errors import GhostzooError
from .factory import create_model
from .inference import Predictor, resolve_device
from .profile import profile_model
from .registry import PretrainedCfg, get_model_entry, get_pretrained_cfg, list_models


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _fmt(value: Optional[float], scale: float, digits: int) -> str:
    return "-" if value is None else f"{value / scale:.{digits}f}"


def _cfg_row(name: str) -> Dict:
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


def _info(name: str) -> Dict:
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
        print(f"    published: params {_fmt(pub['params'], 1e6, 2)}M, MACs {_fmt(pub['macs'], 1e9, 3)}G, "
              f"top-1 {_fmt(pub['top1'], 1, 2)}, top-5 {_fmt(pub['top5'], 1, 2)}  [{pub['source']}]")
    if args.output:
        write_json_atomic(args.output, info)
    return 0


def _load_for_inference(args: argparse.Namespace):
    cfg: PretrainedCfg = get_pretrained_cfg(args.model)
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ghostzoo", description="Huawei Noah's efficient backbones: "
                                     "list, inspect, predict, profile.")
    parser.add_argument("--version", action="version", version=f"ghostzoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, fn: Callable, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(fn=fn)
        p.add_argument("--output", metavar="FILE.json", help="also write the results as JSON")
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

    p = add("profile", cmd_profile, "parameters and MACs, in total and per stage")
    p.add_argument("model")
    p.add_argument("--input-size", type=_positive_int, help="square input side (default: the model's)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.fn(args)
    except GhostzooError as e:
        print(f"ghostzoo {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ghostzoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
