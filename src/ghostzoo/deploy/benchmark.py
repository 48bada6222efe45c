"""``benchmark()``: latency and throughput of zoo models on each inference backend.

One measurement is one (model, backend, batch size). It is prepared from scratch (a backend that
exports does so at that batch size, static shapes, as a deployed model would be; only the int8 file,
whose batch dimension is free, is quantized once per model and shared), called once (the
"first call", which is where ``torch.compile`` compiles), warmed up, then timed run after run until
both a minimum count and a minimum time are reached, or a cap (iterations or seconds) is hit, so a
huge model cannot stall a zoo-wide run. Latency is reported as the median and 90th percentile of the
runs, throughput as ``batch / median``. On CUDA every timed run is bracketed by
``torch.cuda.synchronize`` so it measures the kernels, not their launch.

Backends:

- ``eager``: the PyTorch model, NCHW; ``channels_last``: the same in channels-last memory format;
  ``compile``: ``torch.compile`` (inductor, with weight freezing for inference) of the channels-last
  model. All three run the deploy form (``ghostzoo.deploy.reparameterize``) under
  ``torch.inference_mode()``, unless asked not to.
- ``onnxruntime`` / ``openvino``: the file written by ``ghostzoo.deploy.export.export_model``
  (reparameterized, parity-checked), run through ``ghostzoo.deploy.runtime.load_exported``.
- ``int8``: the int8 QDQ ONNX of ``ghostzoo.quantization.quantize_to_onnx``, calibrated on real
  images (by default the photos shipped with the package), run by ONNX Runtime;
  ``int8_openvino``: the same file converted by ``export_model(..., int8=...)``, run by OpenVINO.
- ``file``: a file the user exported or quantized (``checkpoint=``), run as it is.

Every backend gets the same number of threads (PyTorch intra-op threads, ONNX Runtime intra-op
threads, OpenVINO inference threads). A backend that cannot run a model gives a row whose status
says why (``unsupported: ...`` or ``error: ...``); it never stops the run. Weights are random unless
a checkpoint is given: speed does not depend on them.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import importlib.util
import inspect
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .._report import markdown_table, save_figure, write_csv
from .._io import first_line, write_text_atomic
from .._runtime import resolve_device
from ..errors import GhostzooError, ImageError
from ..factory import create_model
from ..registry import PretrainedCfg, get_pretrained_cfg, list_models
from .reparameterize import reparameterize as reparameterize_model
from .runtime import RUNTIMES, is_exported, load_exported

BACKENDS = ("eager", "channels_last", "compile", "onnxruntime", "openvino", "int8", "int8_openvino")
FILE_BACKEND = "file"
DEFAULT_BACKENDS = tuple(b for b in BACKENDS if b != "compile")  # compiling takes minutes per model on a CPU


class Unsupported(GhostzooError):
    """A backend that cannot run this model here (missing runtime, wrong device, unsupported layers)."""


@dataclass(frozen=True)
class TimingBudget:
    """How long one measurement may take.

    ``warmup`` untimed runs (cut short once they took ``max_time_s``), then timed runs until at least
    ``min_iters`` runs AND ``min_time_s`` seconds, or until ``max_iters`` runs or ``max_time_s``
    seconds (whichever comes first; at least one run is always timed).
    """

    warmup: int = 3
    min_iters: int = 10
    min_time_s: float = 2.0
    max_time_s: float = 5.0
    max_iters: int = 1000

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.min_iters < 1 or self.max_iters < 1:
            raise GhostzooError("warm-up must be >= 0 and the iteration counts >= 1")
        if self.min_time_s < 0 or self.max_time_s <= 0 or self.max_time_s < self.min_time_s:
            raise GhostzooError(f"need 0 <= min time ({self.min_time_s}) <= max time ({self.max_time_s}), max > 0")

    def describe(self) -> str:
        return (f"{self.warmup} warm-up runs, then at least {self.min_iters} runs and {self.min_time_s:g} s, "
                f"at most {self.max_iters} runs or {self.max_time_s:g} s per measurement")


@dataclass
class BenchmarkRow:
    """One (model, backend, batch) measurement; times in milliseconds, setup in seconds."""

    model: str
    backend: str
    batch: int
    input_size: int
    device: str
    threads: int
    weights: str = "random"
    status: str = "ok"
    median_ms: float | None = None
    p90_ms: float | None = None
    min_ms: float | None = None
    images_per_s: float | None = None
    iters: int = 0
    prepare_s: float | None = None  # export / quantization / model copy, before the first call
    first_call_s: float | None = None  # the first inference: includes torch.compile's compilation

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


COLUMNS = tuple(f.name for f in dataclasses.fields(BenchmarkRow))
#: what precedes the commands in a report's ``NAME.md``: written by write_report, read by report_commands
_COMMANDS_HEADING = "Generated by:\n\n```bash\n"


def time_runs(run: Callable[[], Any], budget: TimingBudget,
              sync: Callable[[], None] = lambda: None) -> list[float]:
    """Warm ``run`` up, then time it repeatedly within ``budget``; seconds per run.

    ``sync`` is called before starting and before stopping each timed run (``torch.cuda.synchronize``
    on CUDA, where calls return before the kernels finish).
    """
    start = time.perf_counter()
    for _ in range(budget.warmup):
        run()
        if time.perf_counter() - start >= budget.max_time_s:
            break
    times: list[float] = []
    start = time.perf_counter()
    while True:
        sync()
        t0 = time.perf_counter()
        run()
        sync()
        t1 = time.perf_counter()
        times.append(t1 - t0)
        elapsed = t1 - start
        if (len(times) >= budget.max_iters or elapsed >= budget.max_time_s
                or (len(times) >= budget.min_iters and elapsed >= budget.min_time_s)):
            return times


@dataclass
class _Subject:
    """One model under test: its PyTorch forms and what the backends need to rebuild it."""

    name: str
    model: nn.Module  # as built (training form); exporters reparameterize their own copy
    cfg: PretrainedCfg
    input_size: int
    weights: str
    deploy: nn.Module  # what the torch backends run
    file: Path | None = None  # the user's exported file, for the ``file`` backend
    workdir: Path | None = None  # a temporary folder that lives as long as the model's measurements
    int8: Path | None = None  # its int8 file, once quantized

    def input_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, self.cfg.input_size[0], self.input_size, self.input_size)


@dataclass(frozen=True)
class _Context:
    device: torch.device
    threads: int
    calib: Callable[[PretrainedCfg, int], torch.Tensor]  # (cfg, input size) -> calibration images


Prepared = tuple[Callable[[torch.Tensor], Any], bool]  # (runner, wants a channels-last input)
Prepare = Callable[["_Subject", int, "_Context", Path], Prepared]  # (subject, batch, context, temp folder)


def _cpu_only(backend: str, ctx: _Context) -> None:
    if ctx.device.type != "cpu":
        raise Unsupported(f"{backend} is timed on the CPU only (the ONNX Runtime / OpenVINO CPU runtimes)")


def _prepare_eager(s: _Subject, batch: int, ctx: _Context, tmp: Path) -> Prepared:
    return s.deploy.to(ctx.device), False


def _prepare_channels_last(s: _Subject, batch: int, ctx: _Context, tmp: Path) -> Prepared:
    return copy.deepcopy(s.deploy).to(ctx.device, memory_format=torch.channels_last), True


def _prepare_compile(s: _Subject, batch: int, ctx: _Context, tmp: Path) -> Prepared:
    model = copy.deepcopy(s.deploy).to(ctx.device, memory_format=torch.channels_last)
    # freezing turns the weights into constants, which lets inductor pre-pack them for oneDNN:
    # the setting PyTorch recommends for CPU inference
    return torch.compile(model, dynamic=False, options={"freezing": True}), True


def _prepare_onnxruntime(s: _Subject, batch: int, ctx: _Context, tmp: Path) -> Prepared:
    _cpu_only("onnxruntime", ctx)
    from .export import export_model

    path = tmp / f"{s.name}_b{batch}.onnx"
    export_model(s.model, "onnx", path, input_size=s.input_size, batch_size=batch)
    return load_exported(path, s.name, threads=ctx.threads), False


def _require_openvino(ctx: _Context) -> None:
    _cpu_only("openvino", ctx)
    if importlib.util.find_spec("openvino") is None:
        raise Unsupported("openvino is not installed (pip install openvino)")


def _prepare_openvino(s: _Subject, batch: int, ctx: _Context, tmp: Path) -> Prepared:
    _require_openvino(ctx)
    from .export import export_model

    path = tmp / f"{s.name}_b{batch}.xml"
    export_model(s.model, "openvino", path, input_size=s.input_size, batch_size=batch)
    return load_exported(path, s.name, threads=ctx.threads), False


def _int8_file(s: _Subject, ctx: _Context) -> Path:
    """The model's int8 file, quantized once for both int8 backends and every batch size: the file of
    ``quantize_to_onnx`` has a free batch dimension, and calibrating again would give the same file."""
    _cpu_only("int8", ctx)
    if s.int8 is None:
        from ..quantization import quantize_to_onnx

        s.int8 = quantize_to_onnx(s.model, ctx.calib(s.cfg, s.input_size), s.workdir / f"{s.name}_int8.onnx",
                                  input_size=s.input_size)
    return s.int8


def _prepare_int8(s: _Subject, batch: int, ctx: _Context, tmp: Path) -> Prepared:
    return load_exported(_int8_file(s, ctx), s.name, threads=ctx.threads), False


def _prepare_int8_openvino(s: _Subject, batch: int, ctx: _Context, tmp: Path) -> Prepared:
    _require_openvino(ctx)
    from .export import export_model

    path = tmp / f"{s.name}_int8_b{batch}.xml"
    export_model(s.model, "openvino", path, batch_size=batch, int8=_int8_file(s, ctx))
    return load_exported(path, s.name, threads=ctx.threads), False


def _prepare_file(s: _Subject, batch: int, ctx: _Context, tmp: Path) -> Prepared:
    _cpu_only("a file", ctx)
    # ONNX Runtime and OpenVINO take a thread count; TorchScript and pt2 run on torch's, already set
    takes_threads = "threads" in inspect.signature(RUNTIMES[s.file.suffix.lower()]).parameters
    return load_exported(s.file, s.name, **({"threads": ctx.threads} if takes_threads else {})), False


_PREPARE: dict[str, Prepare] = {
    "eager": _prepare_eager, "channels_last": _prepare_channels_last, "compile": _prepare_compile,
    "onnxruntime": _prepare_onnxruntime, "openvino": _prepare_openvino, "int8": _prepare_int8,
    "int8_openvino": _prepare_int8_openvino, FILE_BACKEND: _prepare_file,
}


def _measure(s: _Subject, backend: str, batch: int, ctx: _Context, budget: TimingBudget) -> BenchmarkRow:
    row = BenchmarkRow(s.name, backend, batch, s.input_size, str(ctx.device), ctx.threads, s.weights)
    runner = None
    sync = (lambda: torch.cuda.synchronize(ctx.device)) if ctx.device.type == "cuda" else (lambda: None)
    try:
        with torch.inference_mode(), tempfile.TemporaryDirectory(prefix="ghostzoo-bench-") as tmp:
            t0 = time.perf_counter()
            runner, channels_last = _PREPARE[backend](s, batch, ctx, Path(tmp))
            row.prepare_s = time.perf_counter() - t0
            x = torch.randn(s.input_shape(batch), generator=torch.Generator().manual_seed(0)).to(ctx.device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            sync()
            t0 = time.perf_counter()
            runner(x)
            sync()
            row.first_call_s = time.perf_counter() - t0
            times = np.asarray(time_runs(lambda: runner(x), budget, sync)) * 1e3
    except GhostzooError as e:
        row.status = f"unsupported: {first_line(e)}"
        return row
    except Exception as e:  # noqa: BLE001 -- any failure of one backend becomes its row, the run goes on
        row.status = f"error: {type(e).__name__}: {first_line(e)}"
        return row
    finally:
        runner = None  # release the session / compiled model before the next measurement
        if backend == "compile":
            torch._dynamo.reset()  # forget the compiled graphs: each model and batch compiles afresh
        gc.collect()
        if ctx.device.type == "cuda":
            torch.cuda.empty_cache()  # what a failed (e.g. out-of-memory) measurement held
    row.median_ms, row.p90_ms = (float(v) for v in np.percentile(times, [50, 90]))
    row.min_ms, row.iters = float(times.min()), len(times)
    row.images_per_s = batch / (row.median_ms / 1e3)
    return row


def resolve_models(patterns: Sequence[str]) -> list[str]:
    """Model names from names (``arch`` or ``arch.tag``) and shell patterns (``'ghostnet*'``, ``'*'``)."""
    names: list[str] = []
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            found = list_models(pattern)
            if not found:
                raise GhostzooError(f"no model matches {pattern!r}; see `ghostzoo list`")
        else:
            get_pretrained_cfg(pattern)  # unknown names and tags fail here, with the closest ones
            found = [pattern]
        names.extend(n for n in found if n not in names)
    if not names:
        raise GhostzooError("no model to benchmark")
    return names


def calibration_images(folder: str | os.PathLike | None = None,
                       limit: int = 16) -> Callable[[PretrainedCfg, int], torch.Tensor]:
    """Real images for int8 calibration, with each model's evaluation preprocessing at its input size.

    ``folder`` defaults to the photos shipped with the package, so the int8 backend works offline.
    """
    from ..data import create_transform, find_images, read_image
    from ..inference import demo_images

    source = Path(folder) if folder is not None else demo_images()
    pictures = []
    for path in find_images([source])[0]:
        if len(pictures) == limit:
            break
        try:
            pictures.append(read_image(path))
        except ImageError:
            continue  # an unreadable file among the calibration images is left out, as predict does
    if not pictures:
        raise GhostzooError(f"no readable image found in {source} for int8 calibration")

    def tensor(cfg: PretrainedCfg, size: int) -> torch.Tensor:
        transform = create_transform(cfg, input_size=size)
        return torch.stack([transform(p) for p in pictures])

    return tensor


def _build_subject(name: str, checkpoint: str | os.PathLike | None, input_size: int | None,
                   reparameterize: bool) -> _Subject:
    file = None
    if checkpoint is not None and is_exported(checkpoint):
        file = Path(checkpoint)
        exported = load_exported(file, name)  # fails early on a missing / foreign / corrupt file
        cfg = exported.pretrained_cfg
        del exported
        model = create_model(name, num_classes=cfg.num_classes)
    else:
        model = create_model(name, checkpoint_path=checkpoint)
        cfg = model.pretrained_cfg
    model.eval()
    deploy = reparameterize_model(copy.deepcopy(model)) if reparameterize else model
    return _Subject(name, model, cfg, input_size or cfg.input_size[-1],
                    "random" if checkpoint is None else str(checkpoint), deploy, file)


def _macs(s: _Subject) -> int:
    """MACs per image of the network the PyTorch backends time (the deploy form, by default)."""
    from ..profile import profile_model

    return profile_model(s.deploy, (s.cfg.input_size[0], s.input_size, s.input_size)).macs


def benchmark(
    models: Sequence[str],
    backends: Sequence[str] = DEFAULT_BACKENDS,
    batch_sizes: Sequence[int] = (1,),
    device: str | torch.device = "cpu",
    *,
    input_size: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    threads: int | None = None,
    budget: TimingBudget = TimingBudget(),
    calib_data: str | os.PathLike | None = None,
    batched_max_gmacs: float | None = None,
    reparameterize: bool = True,
    progress: bool = False,
) -> list[BenchmarkRow]:
    """Time every (model, backend, batch size) and return one row per measurement.

    Args:
        models: names (``ghostnet_100``, ``ghostnet_100.imagenette``) or shell patterns (``'*'``).
        backends: a subset of :data:`BACKENDS`; ``file`` is added when ``checkpoint`` is an exported file.
        device: ``cpu`` or ``cuda[:i]``; on CUDA only the PyTorch backends run (the others say so).
        input_size: square input side (default: each model's own).
        checkpoint: weights for the single model given (any checkpoint ``create_model`` reads), or an
            exported / int8 file (``.onnx``), which is then timed as the ``file`` backend next to the
            others, built at the file's classes and input size.
        threads: CPU threads for every backend (default: ``torch.get_num_threads()``).
        calib_data: image folder for int8 calibration (default: the photos shipped with the package).
        batched_max_gmacs: time batch sizes above 1 only for models of at most this many GMACs per image
            (the others get ``skipped`` rows there): large batches for the small models of a zoo-wide run.
        reparameterize: run the PyTorch backends on the deploy form (folded BatchNorm / branches), the
            network the exporters write; False times the model as built.
        progress: a tqdm bar on stderr over the measurements.
    """

    device = resolve_device(device)
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise GhostzooError(f"unknown backend(s) {', '.join(unknown) or '(none given)'}; "
                            f"choose from {', '.join(BACKENDS)}")
    if not batch_sizes or min(batch_sizes) < 1:
        raise GhostzooError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
    names = resolve_models(models)
    if checkpoint is not None and len(names) != 1:
        raise GhostzooError(f"a checkpoint belongs to one model; {len(names)} were given")
    backends = list(dict.fromkeys(backends))
    if checkpoint is not None and is_exported(checkpoint):
        backends.append(FILE_BACKEND)
    threads = threads or torch.get_num_threads()
    int8 = any(b.startswith("int8") for b in backends)
    ctx = _Context(device, threads, calibration_images(calib_data) if int8 else None)
    # the user's checkpoint is opened before anything is timed: a wrong file is an error, not a row
    given = {names[0]: _build_subject(names[0], checkpoint, input_size, reparameterize)} if checkpoint else {}

    rows: list[BenchmarkRow] = []
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tqdm(total=len(names) * len(backends) * len(batch_sizes), desc="benchmark", unit="run",
                  file=sys.stderr, disable=not progress, leave=False, dynamic_ncols=True) as bar:
            for name in names:
                rows.extend(_benchmark_model(name, given.pop(name, None), backends, batch_sizes, ctx, budget,
                                             input_size, batched_max_gmacs, reparameterize, bar))
    finally:
        torch.set_num_threads(previous_threads)
    return rows


def _benchmark_model(name: str, subject: _Subject | None, backends: Sequence[str], batch_sizes: Sequence[int],
                     ctx: _Context, budget: TimingBudget, input_size: int | None, batched_max_gmacs: float | None,
                     reparameterize: bool, bar: tqdm) -> list[BenchmarkRow]:
    """The rows of one model: every backend at every batch size, or one failure row each."""
    bar.set_postfix_str(f"{name} (building)")
    try:
        s = subject or _build_subject(name, None, input_size, reparameterize)
        gmacs = _macs(s) / 1e9 if batched_max_gmacs is not None else None
    except Exception as e:  # noqa: BLE001 -- a model that cannot be built or profiled gives failure rows
        status = f"unsupported: {first_line(e)}" if isinstance(e, GhostzooError) else \
            f"error: {type(e).__name__}: {first_line(e)}"
        bar.update(len(backends) * len(batch_sizes))
        return [BenchmarkRow(name, b, n, input_size or 0, str(ctx.device), ctx.threads, status=status)
                for b in backends for n in batch_sizes]
    rows = []
    with tempfile.TemporaryDirectory(prefix="ghostzoo-bench-") as workdir:
        s.workdir = Path(workdir)
        for backend in backends:
            for batch in batch_sizes:
                bar.set_postfix_str(f"{name} {backend} b{batch}")
                if batch > 1 and gmacs is not None and gmacs > batched_max_gmacs:
                    rows.append(BenchmarkRow(name, backend, batch, s.input_size, str(ctx.device), ctx.threads,
                                             s.weights, "skipped: batch sizes above 1 only for models of <= "
                                                        f"{batched_max_gmacs:g} GMACs"))
                else:
                    rows.append(_measure(s, backend, batch, ctx, budget))
                bar.update()
    return rows


def _version(module: str) -> str:
    if importlib.util.find_spec(module) is None:
        return "not installed"
    return getattr(__import__(module), "__version__", "unknown")


def processor_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str | torch.device, threads: int, budget: TimingBudget,
                reparameterize: bool = True) -> dict[str, str]:
    """The facts a reader needs to compare runs: hardware, threads, timing rule and library versions."""
    device = torch.device(device)
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"{processor_name()}, {os.cpu_count()} logical CPUs")
    return {
        "device": f"{device} ({hardware})",
        "threads": f"{threads} for every backend (torch.set_num_threads, ONNX Runtime intra-op threads, "
                   "OpenVINO inference threads; OpenVINO with its f32 precision, LATENCY hint and subnormals "
                   "flushed to zero)",
        "timing": budget.describe() + "; latency = median and p90 of the timed runs, throughput = batch / median",
        "pytorch backends": ("the deploy form (reparameterize: BatchNorm and branches folded)" if reparameterize
                             else "the model as built (not reparameterized)") +
                            " under torch.inference_mode(); compile = torch.compile (inductor, freezing) of the "
                            "channels-last model",
        "weights": "random unless a checkpoint is named in the rows (speed does not depend on the weights)",
        "versions": ", ".join(f"{m} {_version(m)}" for m in ("torch", "onnxruntime", "openvino")) +
                    f", Python {platform.python_version()}",
    }


def _status_kind(row: BenchmarkRow) -> str:
    return row.status.split(":", 1)[0]


def _per_batch_table(rows: Sequence[BenchmarkRow], batch: int, backends: Sequence[str]) -> str:
    cells: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.batch == batch:
            line = cells.setdefault(r.model, {"model": r.model, "px": r.input_size})
            line[r.backend] = r
    table = []
    for model, line in cells.items():
        runs = [line[b] for b in backends if b in line]
        if all(_status_kind(r) == "skipped" for r in runs):
            continue
        eager = line.get("eager")
        base = eager.median_ms if eager is not None and eager.ok else None
        out = {"model": model, "px": line["px"]}
        for r in runs:
            if not r.ok:
                out[r.backend] = _status_kind(r)
            elif base is None or r.backend == "eager":
                out[r.backend] = f"{r.median_ms:.2f}"
            else:
                out[r.backend] = f"{r.median_ms:.2f} ({base / r.median_ms:.2f}x)"
        table.append(out)
    return markdown_table(table, ["model", "px", *backends])


def _setup_table(rows: Sequence[BenchmarkRow], backends: Sequence[str]) -> str:
    table = []
    for backend in backends:
        done = [r for r in rows if r.backend == backend and r.ok]
        if not done:
            continue
        slowest = max(done, key=lambda r: r.prepare_s + r.first_call_s)
        table.append({
            "backend": backend, "measurements": len(done),
            "median prepare (s)": float(np.median([r.prepare_s for r in done])),
            "median first call (s)": float(np.median([r.first_call_s for r in done])),
            "total prepare + first call (s)": float(sum(r.prepare_s + r.first_call_s for r in done)),
            "slowest": f"{slowest.model} b{slowest.batch}: {slowest.prepare_s + slowest.first_call_s:.1f} s",
        })
    return markdown_table(table, ["backend", "measurements", "median prepare (s)", "median first call (s)",
                                  "total prepare + first call (s)", "slowest"])


def _not_measured_table(rows: Sequence[BenchmarkRow]) -> str:
    """One line per reason: the backends it hit and the (model, batch) measurements it hit on each."""
    per_backend: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        if not r.ok:
            per_backend.setdefault((r.status, r.backend), []).append(f"{r.model} b{r.batch}")
    merged: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (status, backend), hit in per_backend.items():
        merged.setdefault((status, tuple(hit)), []).append(backend)
    table = [{"status": status, "backends": ", ".join(backends), "measurements": ", ".join(hit)}
             for (status, hit), backends in merged.items()]
    return markdown_table(table, ["status", "backends", "measurements"])


def markdown_report(rows: Sequence[BenchmarkRow], settings: dict[str, str], title: str = "Benchmark",
                    command: str = "", notes: str = "", image: str = "") -> str:
    """The Markdown report: per batch size a models x backends table (median ms and speed-up over eager),
    setup times, what could not be measured and why, and every measurement in long form."""
    backends = list(dict.fromkeys(r.backend for r in rows))
    parts = [f"# {title}\n"]
    if command:
        parts.append(f"{_COMMANDS_HEADING}{command}\n```\n")
    if notes.strip():
        parts.append(notes.strip() + "\n")
    parts.append("\n".join(f"- {k}: {v}" for k, v in settings.items()) + "\n")
    parts.append("Cells: median latency in ms, and in brackets the speed-up over `eager` at the same batch "
                 "(eager median / this median). `unsupported`, `error`, `skipped`: see *Not measured*. "
                 "`prepare` is export / quantization / copying before the first call; the first call of "
                 "`compile` is its compilation. `int8` and `int8_openvino` share one int8 file per model "
                 "(quantized once; it has a free batch dimension): the first of their rows carries the "
                 "quantization in its `prepare`.\n")
    for batch in sorted({r.batch for r in rows}):
        parts.append(f"## Batch {batch}\n\n" + _per_batch_table(rows, batch, backends))
    if image:
        parts.append(f"![median latency per model and backend]({image})\n")
    parts.append("## Setup time\n\n" + _setup_table(rows, backends))
    if any(not r.ok for r in rows):
        parts.append("## Not measured\n\n" + _not_measured_table(rows))
    long_columns = ["model", "backend", "batch", "input_size", "status", "median_ms", "p90_ms", "min_ms",
                    "images_per_s", "iters", "prepare_s", "first_call_s"]
    parts.append("## All measurements\n\n(skipped ones are in the CSV only)\n\n" +
                 markdown_table([r.to_dict() for r in rows if _status_kind(r) != "skipped"], long_columns))
    return "\n".join(parts)


def plot_latency(rows: Sequence[BenchmarkRow], path: str | os.PathLike) -> Path:
    """Median latency per model and backend (log scale), one panel per batch size, models sorted by eager."""
    from matplotlib.figure import Figure

    backends = list(dict.fromkeys(r.backend for r in rows))
    batches = sorted({r.batch for r in rows if r.ok})
    if not batches:
        raise GhostzooError("nothing was measured: no plot to draw")
    per_batch = {}
    for batch in batches:
        ok = [r for r in rows if r.batch == batch and r.ok]
        key = {r.model: r.median_ms for r in ok if r.backend == "eager"}
        models = sorted({r.model for r in ok}, key=lambda m: (key.get(m, float("inf")), m))
        per_batch[batch] = (models, ok)
    heights = [max(2.0, 0.22 * len(m) + 1.0) for m, _ in per_batch.values()]
    fig = Figure(figsize=(9, sum(heights) + 0.5))
    axes = fig.subplots(len(batches), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    markers = "osD^v<>Xp*"
    for ax, (batch, (models, ok)) in zip(axes, per_batch.items(), strict=True):
        index = {m: i for i, m in enumerate(models)}
        for k, backend in enumerate(backends):
            mine = [r for r in ok if r.backend == backend]
            if mine:
                ax.scatter([r.median_ms for r in mine], [index[r.model] for r in mine], label=backend,
                           marker=markers[k % len(markers)], s=22, alpha=0.85)
        ax.set_xscale("log")
        ax.set_yticks(range(len(models)), models, fontsize=7)
        ax.set_ylim(-0.7, len(models) - 0.3)
        ax.invert_yaxis()
        ax.grid(True, which="both", axis="x", alpha=0.3)
        ax.set_xlabel(f"median latency, batch {batch} (ms, log scale)")
        ax.legend(fontsize=7, ncol=min(len(backends), 4), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    return save_figure(fig, path)


def read_rows(path: str | os.PathLike) -> list[BenchmarkRow]:
    """The rows of a ``NAME.csv`` written by :func:`write_report`."""
    import csv

    types = {f.name: f.type for f in dataclasses.fields(BenchmarkRow)}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            records = list(reader)
        if sorted(reader.fieldnames or []) != sorted(types):
            raise ValueError(f"columns {', '.join(reader.fieldnames or [])}")
        rows = []
        for record in records:
            values: dict[str, Any] = {}
            for key, text in record.items():
                kind = types[key]
                values[key] = (None if text == "" and "None" in kind else int(text) if kind == "int"
                               else float(text) if kind.startswith("float") else text)
            rows.append(BenchmarkRow(**values))
        return rows
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise GhostzooError(f"{path} is not a benchmark CSV of this version ({first_line(e)})") from None


def merge_rows(old: Sequence[BenchmarkRow], new: Sequence[BenchmarkRow]) -> list[BenchmarkRow]:
    """``old`` with every (model, backend, batch) that ``new`` measured again replaced in place; the
    rest of ``new`` after it."""
    key = lambda r: (r.model, r.backend, r.batch)  # noqa: E731
    fresh = {key(r): r for r in new}
    merged = [fresh.pop(key(r), r) for r in old]
    return merged + [r for r in new if key(r) in fresh]


def report_commands(path: str | os.PathLike) -> list[str]:
    """The commands listed under *Generated by* in a ``NAME.md`` of :func:`write_report` (none if absent)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    start = text.find(_COMMANDS_HEADING)
    if start < 0:
        return []
    block = text[start + len(_COMMANDS_HEADING):].split("\n```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def write_report(rows: Sequence[BenchmarkRow], output_dir: str | os.PathLike, name: str,
                 settings: dict[str, str], command: str = "", notes: str = "") -> dict[str, Path]:
    """Write ``NAME.csv``, ``NAME.md`` and ``NAME.png`` (when matplotlib is installed and a row is ok)
    under ``output_dir``, each atomically; returns the paths written."""
    out = Path(output_dir)
    plot = importlib.util.find_spec("matplotlib") is not None and any(r.ok for r in rows)
    written = {"csv": write_csv(out / f"{name}.csv", [r.to_dict() for r in rows], COLUMNS)}
    if plot:
        written["png"] = plot_latency(rows, out / f"{name}.png")
    written["md"] = write_text_atomic(out / f"{name}.md", markdown_report(
        rows, settings, f"Benchmark: {name}", command, notes, image=f"{name}.png" if plot else ""))
    return written
