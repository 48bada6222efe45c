"""The arguments of the ``ghostzoo`` command: one subparser per command, and the argument types that
refuse bad values (a negative batch size, an unknown backend) before any work starts."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn

from . import __version__
from .bench import BACKENDS, DEFAULT_BACKENDS
from .deploy.backend import INFERENCE_BACKENDS, PRECISIONS
from .deploy.export import FORMATS
from .deploy.onnx_export import EXPORTERS
from .quantization.observers import OBSERVERS


def _add_exporter(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--exporter",
        choices=list(EXPORTERS),
        default="torchscript",
        help="torch's ONNX exporter: torchscript (deprecated by PyTorch, fast), or dynamo (supported, static graphs "
        "for every family, 5-16x slower to export; needs onnxscript). Default: torchscript",
    )


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

AMP_DTYPES = {"bf16": "bf16", "bfloat16": "bf16", "fp16": "fp16", "float16": "fp16"}  # ours, then timm's


def _amp_dtype(text: str) -> str:
    """An argparse type: the autocast dtype, by ghostzoo's name (bf16) or timm's (bfloat16)."""
    try:
        return AMP_DTYPES[text]
    except KeyError:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(AMP_DTYPES)}, got {text!r}") from None


AMP_HELP = "autocast dtype: bf16 (CPU or CUDA) or fp16 (CUDA); timm's --amp-dtype bfloat16 / float16 too"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _file_stem(text: str) -> str:
    """An argparse type: a bare file name stem, so that the files stay inside their --output-dir."""
    if not text or text in (".", "..") or "/" in text or "\\" in text:
        raise argparse.ArgumentTypeError(f"must be a file name without a folder, got {text!r}")
    return text


def _batch_sizes(text: str) -> list[int]:
    """An argparse type: comma-separated positive integers, e.g. ``1,32``."""
    return [_positive_int(part) for part in text.split(",")]


def _backends(text: str) -> list[str]:
    """An argparse type: comma-separated backend names, or ``all``."""
    names = list(BACKENDS) if text == "all" else [b.strip() for b in text.split(",")]
    unknown = [b for b in names if b not in BACKENDS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown backend {', '.join(unknown)!s}; choose from {', '.join(BACKENDS)} or all"
        )
    return names


class _Parser(argparse.ArgumentParser):
    """argparse, with a malformed command line answered in one line (argparse prints its usage too),
    like every other error of the command; ``--help`` still shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ghostzoo",
        description="Huawei Noah's efficient backbones: list, inspect, predict, validate, train, "
        "quantize, export, benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"ghostzoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add_backend(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--backend",
            choices=INFERENCE_BACKENDS,
            default="auto",
            help="what runs the model: auto (the fastest runtime installed: OpenVINO, ONNX Runtime, else "
            "eager), eager, compile, onnxruntime or openvino; a runtime gets a cached, parity-checked export",
        )
        p.add_argument(
            "--precision",
            choices=(*PRECISIONS, "int8"),
            default="fp32",
            help="bf16: OpenVINO's bf16 inference; int8: the model quantized once (cached) and run by OpenVINO "
            "(auto) or ONNX Runtime",
        )
        p.add_argument(
            "--calib-data",
            metavar="DIR",
            help="int8: the images to calibrate on, a dataset folder (its train split) or a folder of images "
            "(default: validate's --data; predict and demo: the packaged photos)",
        )
        p.add_argument(
            "--calib-size", type=_positive_int, default=256, help="int8: images drawn at random (default: 256)"
        )

    def add(name: str, help: str, json_flag: str = "--output") -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument(json_flag, metavar="FILE.json", help="also write the results as JSON")
        return p

    p = add("list", "table of models: params, MACs, resolution, published top-1, weights")
    p.add_argument("pattern", nargs="?", help="shell-style pattern, e.g. 'ghostnet*'")
    p.add_argument("--pretrained", action="store_true", help="only models with released weights")

    p = add("info", "everything known about one model")
    p.add_argument("model")

    p = add("predict", "top-k ImageNet classes for image files or folders")
    p.add_argument("model", help="model name, or name.tag for specific weights")
    p.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--topk", type=_positive_int, default=5)
    p.add_argument(
        "--checkpoint", metavar="PATH|URL|hf-hub:ID", help="weights to use instead of the model's released ones"
    )
    p.add_argument(
        "--use-ema",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="take the EMA weights of a checkpoint that has both",
    )
    p.add_argument("--batch-size", type=_positive_int, default=16)
    p.add_argument("--device", default="cpu")
    add_backend(p)

    p = add("demo", "offline demo: the packaged Imagenette photos, top-3 each, and accuracy")
    p.add_argument(
        "model",
        nargs="?",
        default="ghostnet_100.imagenette",
        help="default: ghostnet_100.imagenette, trained by ghostzoo and shipped in the package",
    )
    p.add_argument("--images", help="another folder of <WordNet id>/<image> files")
    p.add_argument("--checkpoint", metavar="PATH|URL|hf-hub:ID")
    add_backend(p)

    p = add("validate", "top-1 / top-5, loss and per-class accuracy on a labelled dataset")
    p.add_argument("model")
    p.add_argument(
        "--data", "--data-dir", required=True, help="ImageFolder, ILSVRC2012-val (val.txt) or Oxford-IIIT Pet folder"
    )
    p.add_argument("--split", default="val", help="split folder / split name (default: val)")
    p.add_argument("--labels", help="ground-truth file of '<file> <index>' lines (ILSVRC2012 val layout)")
    p.add_argument("--checkpoint", metavar="PATH|URL|hf-hub:ID")
    p.add_argument("--use-ema", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--batch-size", "-b", type=_positive_int, default=64)
    p.add_argument("--workers", "-j", type=_non_negative_int, default=2)
    p.add_argument("--amp", "--amp-dtype", type=_amp_dtype, metavar="DTYPE", help=AMP_HELP)
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--device", default="cpu")
    add_backend(p)

    p = add("train", "train or fine-tune on a labelled dataset (single process or torchrun)")
    p.add_argument("model")
    p.add_argument("--data", "--data-dir", required=True, help="dataset folder with train and val splits")
    p.add_argument(
        "--recipe",
        default="ghostnet",
        help="ghostnet (SGD, the GhostNet paper's), deit (AdamW, RandAugment, mixup/cutmix, erasing, EMA) "
        "or short (SGD, RandAugment, for tens of epochs from scratch); every knob below overrides it",
    )
    p.add_argument("--output-dir", help="where checkpoints and summary.json go (default: runs/MODEL)")
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--batch-size", "-b", type=_positive_int)
    p.add_argument("--lr", type=_positive_float, help="default: the recipe's, scaled to the global batch size")
    p.add_argument("--min-lr", type=float)
    p.add_argument("--opt", help="any timm optimizer name (sgd, adamw, lamb, ...)")
    p.add_argument("--momentum", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--warmup-epochs", type=float)
    p.add_argument("--smoothing", type=float, help="label smoothing")
    p.add_argument("--drop-rate", "--drop", type=float, help="dropout before the classifier")
    p.add_argument("--drop-path-rate", "--drop-path", type=float)
    p.add_argument("--color-jitter", type=float)
    p.add_argument("--auto-augment", "--aa", help="timm auto-augment policy, e.g. rand-m9-mstd0.5-inc1")
    p.add_argument("--re-prob", "--reprob", type=float, help="random erasing probability")
    p.add_argument("--mixup", type=float, help="mixup alpha (0 disables)")
    p.add_argument("--cutmix", type=float, help="cutmix alpha (0 disables)")
    p.add_argument(
        "--ema", "--model-ema", action=argparse.BooleanOptionalAction, default=None, help="keep an EMA of the weights"
    )
    p.add_argument("--ema-decay", "--model-ema-decay", type=float)
    p.add_argument("--img-size", type=_positive_int, help="training resolution (default: the model's)")
    p.add_argument(
        "--img-size-start",
        type=_positive_int,
        metavar="PX",
        help="progressive resizing: train the first epoch at PX, growing to --img-size by 3/4 of the run",
    )
    p.add_argument(
        "--val-img-size", type=_positive_int, help="evaluation resolution, kept with the weights (default: --img-size)"
    )
    p.add_argument("--val-crop-pct", type=float, help="evaluation center-crop fraction (default: the model's)")
    p.add_argument(
        "--crop-scale", type=float, nargs=2, metavar=("LOW", "HIGH"), help="area range of the random-resized crops"
    )
    p.add_argument(
        "--checkpoint",
        "--initial-checkpoint",
        metavar="PATH|URL|hf-hub:ID",
        help="start from these weights (fine-tuning)",
    )
    p.add_argument("--num-classes", type=_positive_int, help="re-head to this many classes (default: the data's)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --output-dir from its last epoch (a flag: unlike timm's --resume PATH, "
        "the run's own folder says where)",
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", "-j", type=_non_negative_int)
    p.add_argument(
        "--amp",
        "--amp-dtype",
        type=_amp_dtype,
        metavar="DTYPE",
        help=AMP_HELP + " (unlike timm's --amp switch, ghostzoo's names the dtype)",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="channels-last memory format (default: on; faster than NCHW for these nets on CPU)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="torch.compile the training step: faster steps after a one-off compile of minutes, "
        "and BatchNorm statistics by a Welford reduction (eager channels-last on CPU sums them "
        "naively)",
    )
    p.add_argument("--device")
    p.add_argument("--train-split")
    p.add_argument("--val-split")
    p.add_argument("--steps-per-epoch", type=_positive_int, help="cap on optimizer steps per epoch")
    p.add_argument("--deterministic", action="store_true", default=None)
    p.add_argument(
        "--log-interval",
        type=_positive_int,
        help="steps between reads of the loss from the device for the progress bar (default: 50)",
    )

    p = add("push-to-hub", "upload a model to the Hugging Face hub as timm lays a repository out")
    p.add_argument("model", help="model name, name.tag, or the architecture of --checkpoint")
    p.add_argument("repo_id", help="org/name on the hub")
    p.add_argument("--checkpoint", metavar="PATH|URL|hf-hub:ID", help="the weights (default: the released ones)")
    p.add_argument("--metrics", metavar="FILE.json", help="a `ghostzoo validate --output` file, for the card")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--output-dir", metavar="DIR", help="write the repository's files here instead of uploading them")

    p = add(
        "convert",
        "any weight file ghostzoo reads (.pdparams, TF bundle, MindSpore .ckpt, .pth) as a ghostzoo .safetensors",
        json_flag="--report",
    )
    p.add_argument("source", help="the file (a TensorFlow bundle by its prefix or .index); a URL or hf-hub:ID")
    p.add_argument("--model", required=True, help="the model the weights are for: name, or name.tag")
    p.add_argument("--output", required=True, metavar="FILE", help="the file to write: .safetensors, or a torch file")
    p.add_argument("--use-ema", action=argparse.BooleanOptionalAction, default=None)

    p = add(
        "export",
        "a deployable file (ONNX, OpenVINO IR, TorchScript, pt2) of the deploy-form model, checked against PyTorch",
        json_flag="--report",
    )
    p.add_argument("model", help="model name, or name.tag for specific weights")
    p.add_argument("--format", required=True, choices=list(FORMATS))
    p.add_argument(
        "--output",
        required=True,
        metavar="FILE",
        help="the file to write: .onnx, .xml (its .bin beside it), .pt (TorchScript) or .pt2",
    )
    p.add_argument("--checkpoint", metavar="PATH|URL|hf-hub:ID", help="weights (default: the released ones)")
    p.add_argument("--use-ema", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--random-weights", action="store_true", help="export freshly initialised weights (speed tests)")
    p.add_argument(
        "--int8",
        metavar="FILE.onnx",
        help="carry this int8 ONNX file from `ghostzoo quantize` "
        "to --format (onnx: checked and copied; openvino: converted)",
    )
    p.add_argument("--input-size", type=_positive_int, help="square input side (default: the model's)")
    p.add_argument("--batch-size", type=_positive_int, default=1, help="batch traced and checked (default: 1)")
    p.add_argument("--dynamic-batch", action="store_true", help="leave the batch dimension free")
    p.add_argument("--opset", type=_int_at_least(17), help="ONNX opset (default: 17; 18 with --exporter dynamo)")
    _add_exporter(p)

    p = add("benchmark", "latency and throughput per backend; writes CSV, Markdown and a PNG plot")
    p.add_argument("models", nargs="*", metavar="MODEL", help="names or shell patterns ('*' = the whole zoo)")
    p.add_argument(
        "--backends",
        type=_backends,
        default=",".join(DEFAULT_BACKENDS),
        help=f"comma-separated from {', '.join(BACKENDS)}, or all (default: all but compile, "
        "which takes minutes per model to compile on a CPU)",
    )
    p.add_argument("--batch-sizes", type=_batch_sizes, default=[1], help="comma-separated, e.g. 1,32 (default: 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i] (on CUDA: the PyTorch backends)")
    p.add_argument("--input-size", type=_positive_int, help="square input side (default: each model's)")
    p.add_argument(
        "--checkpoint",
        metavar="PATH|FILE.onnx",
        help="weights for the one model named, or an exported / int8 file to time as is",
    )
    p.add_argument("--threads", type=_positive_int, help="threads for every backend (default: torch's)")
    p.add_argument("--warmup", type=_non_negative_int, default=3, help="untimed runs first (default: 3)")
    p.add_argument("--min-iters", type=_positive_int, default=10, help="timed runs, at least (default: 10)")
    p.add_argument("--min-time", type=float, default=2.0, metavar="S", help="seconds of timed runs, at least (2)")
    p.add_argument(
        "--max-time",
        type=_positive_float,
        default=5.0,
        metavar="S",
        help="cap on the timed runs of one measurement, seconds (default: 5)",
    )
    p.add_argument("--max-iters", type=_positive_int, default=1000, help="cap on timed runs (default: 1000)")
    p.add_argument(
        "--batched-max-gmacs",
        type=_positive_float,
        metavar="G",
        help="batch sizes above 1 only for models of at most G GMACs per image (the small ones)",
    )
    p.add_argument("--calib-data", metavar="DIR", help="images for int8 calibration (default: the packaged photos)")
    p.add_argument(
        "--reparameterize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the PyTorch backends on the deploy form, as the exporters do (default: yes)",
    )
    p.add_argument("--output-dir", required=True, help="where NAME.csv, NAME.md and NAME.png go")
    p.add_argument("--name", type=_file_stem, default="benchmark", help="file name stem (default: benchmark)")
    p.add_argument("--notes", metavar="FILE.md", help="Markdown put under the title of NAME.md")
    p.add_argument(
        "--update",
        action="store_true",
        help="measure again only what this run names: the other rows of an existing NAME.csv stay, "
        "and NAME.md lists its earlier commands before this one",
    )

    p = add(
        "quantize",
        "int8: post-training quantization, optionally quantization-aware "
        "fine-tuning, into an ONNX file that validate / predict / benchmark accept",
        json_flag="--report",
    )
    p.add_argument(
        "model", help="a CNN: GhostNet v1/v2/v3, Ghost-ResNet, G-Ghost RegNet, TinyNet, LegoNet, Versatile filters"
    )
    p.add_argument(
        "--output", required=True, metavar="MODEL_INT8.onnx|.xml", help="the int8 file: ONNX, or an OpenVINO IR"
    )
    p.add_argument("--format", choices=["onnx", "openvino"], help="default: by the --output suffix")
    _add_exporter(p)
    p.add_argument("--checkpoint", metavar="PATH|URL|hf-hub:ID", help="float weights (default: the released ones)")
    p.add_argument("--use-ema", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument(
        "--calib-data",
        required=True,
        metavar="DIR",
        help="calibration images: a dataset folder in any layout validate reads, or a folder of images",
    )
    p.add_argument("--calib-split", default="train", help="split of --calib-data to calibrate on (default: train)")
    p.add_argument("--calib-size", type=_positive_int, default=256, help="images drawn at random (default: 256)")
    p.add_argument(
        "--observer",
        choices=sorted(OBSERVERS),
        default="minmax",
        help="activation ranges: min-max, 99.99th percentile, or least squared error (default: minmax)",
    )
    p.add_argument(
        "--keep-float",
        action="append",
        default=[],
        metavar="PATTERN",
        help="leave the modules matching this pattern (fnmatch, repeatable) in float, e.g. 'conv_stem'",
    )
    p.add_argument(
        "--qat-epochs",
        type=_non_negative_int,
        default=0,
        help="quantization-aware fine-tuning epochs after calibration (default: 0, PTQ only)",
    )
    p.add_argument("--train-data", metavar="DIR", help="dataset to fine-tune on (needed with --qat-epochs)")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val", help="split the QAT epochs are validated on")
    p.add_argument("--lr", type=_positive_float, help="QAT learning rate (default: 1/100 of the training recipe's)")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--qat-dir", metavar="DIR", help="keep the QAT checkpoints here (default: a temporary folder)")
    p.add_argument(
        "--check-split",
        default="val",
        help="split of --calib-data on which float and int8 are compared; 'none': agreement on the calibration images",
    )
    p.add_argument("--check-size", type=_positive_int, help="images of --check-split to compare on (default: all)")
    p.add_argument("--workers", type=_non_negative_int, default=2)
    p.add_argument("--seed", type=int, default=0, help="draws the calibration and check images, seeds QAT")

    p = add("profile", "parameters and MACs, in total and per stage")
    p.add_argument("model")
    p.add_argument("--input-size", type=_positive_int, help="square input side (default: the model's)")
    return parser
