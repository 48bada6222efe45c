"""Finding, reading and fitting checkpoints.

A checkpoint source is a local path, an ``http(s)://`` or ``file://`` URL (downloaded once into the
torch hub cache), or a Hugging Face hub id written ``hf-hub:org/name``. The file format and the
wrapper inside are detected from the content, never declared by the caller, so the official Huawei
releases, timm's files and ghostzoo's own load through the same call.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import urllib.error
import urllib.parse
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from ._io import atomic_paths, first_line
from .errors import CheckpointError
from .formats import bundle_prefix, is_mindspore_ckpt, is_pdparams, read_mindspore_ckpt, read_pdparams, read_tf_bundle
from .registry import CheckpointFilter, PretrainedCfg

HF_PREFIX = "hf-hub:"
GHOSTZOO_FORMAT = "ghostzoo/1"
# thop's profile() leaves these counters in every module's state_dict; official GhostNet files have them.
_THOP_SUFFIXES = ("total_ops", "total_params")
# Wrappers seen in the wild, in the order they are tried. EMA keys are handled separately.
_WRAPPER_KEYS = ("state_dict", "model", "module", "net", "params")
_EMA_KEYS = ("state_dict_ema", "model_ema", "ema")

StateDict = Dict[str, torch.Tensor]


# ----------------------------------------------------------------------------------------------
# where the bytes come from
# ----------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Downloads live where torch.hub keeps its checkpoints ($TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def download_url(url: str, progress: bool = True) -> Path:
    """Download ``url`` once into the cache and return the local path.

    torch.hub writes into a temporary file beside the destination and renames it when complete, so
    an interrupted download never leaves a truncated checkpoint in the cache.
    """
    filename = os.path.basename(urllib.parse.urlparse(url).path)
    if not filename:
        raise CheckpointError(f"cannot tell a file name from the URL {url!r}")
    dst = cache_dir() / filename
    if dst.is_file():
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(dst), progress=progress)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise CheckpointError(
            f"could not download {url} ({reason}); if this machine is offline, fetch the file "
            f"elsewhere and pass it with --checkpoint PATH"
        ) from None
    return dst


def download_hf_hub(hub_id: str) -> Path:
    """Resolve ``org/name[@revision][:filename]`` through the Hugging Face hub cache.

    The cache is tried first, then the hub, after a quick check that it can be reached at all: the
    hub client retries an unreachable host for most of a minute, logging every attempt.
    """
    from huggingface_hub import constants, hf_hub_download

    repo, _, filename = hub_id.partition(":")
    repo, _, revision = repo.partition("@")
    candidates = [filename] if filename else ["model.safetensors", "pytorch_model.bin"]
    for name in candidates:
        try:
            return Path(hf_hub_download(repo, name, revision=revision or None, local_files_only=True))
        except Exception:  # not in the cache
            pass
    unreachable = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else _unreachable(constants.ENDPOINT)
    if unreachable:
        raise CheckpointError(
            f"hf-hub:{hub_id} is not in the local cache and the hub cannot be reached ({unreachable}); "
            "fetch the file on a machine that is online and pass it with --checkpoint PATH"
        )
    last: Optional[BaseException] = None
    for name in candidates:
        try:
            return Path(hf_hub_download(repo, name, revision=revision or None))
        except Exception as e:  # the hub client raises many types; all mean "not here"
            last = e
    reason = first_line(last) if last is not None else "no candidate file"
    raise CheckpointError(f"could not fetch {candidates} from the Hugging Face hub repo {repo!r} ({reason})")


def _unreachable(endpoint: str, timeout: float = 5.0) -> str:
    """Why ``endpoint``'s host cannot be connected to, or "" when it can."""
    url = urllib.parse.urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as e:
        return f"{url.hostname}: {first_line(e)}"
    return ""


def resolve_source(source: str | os.PathLike, progress: bool = True) -> Path:
    """A local path for a checkpoint given as path, URL or ``hf-hub:`` id."""
    text = str(source)
    if text.startswith(HF_PREFIX):
        return download_hf_hub(text[len(HF_PREFIX) :])
    if re.match(r"^(https?|file)://", text):
        return download_url(text, progress=progress)
    path = Path(text).expanduser()
    prefix = bundle_prefix(path)
    if prefix is not None:  # a TensorFlow bundle, named by its prefix or one of its two files
        return Path(f"{prefix}.index")
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {text}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint is not a file: {text}")
    return path


def pretrained_source(cfg: PretrainedCfg) -> str:
    """Where a pretrained cfg's weights come from: the package itself, its URL, then its hub id."""
    if cfg.file:
        from importlib.resources import files

        return str(files("ghostzoo").joinpath(cfg.file))
    if cfg.url:
        return cfg.url
    if cfg.hf_hub_id:
        return HF_PREFIX + cfg.hf_hub_id + (f":{cfg.hf_hub_filename}" if cfg.hf_hub_filename else "")
    raise CheckpointError(f"no pretrained weights for {cfg.name}; pass checkpoint_path / --checkpoint")


# ----------------------------------------------------------------------------------------------
# what the bytes are
# ----------------------------------------------------------------------------------------------


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    header_len = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 0 < header_len < path.stat().st_size


def read_file(path: Path) -> Any:
    """Read a checkpoint file safely: safetensors, PaddlePaddle's ``.pdparams`` (numpy arrays only), a
    TensorFlow V2 bundle (its ``.index``), MindSpore's ``.ckpt``, or torch.load with ``weights_only=True``.

    A safetensors file written by ghostzoo comes back as ``{'state_dict': ..., **metadata}``, the
    same shape as ghostzoo's torch files.
    """
    if is_pdparams(path):
        return read_pdparams(path)
    if is_mindspore_ckpt(path):
        return read_mindspore_ckpt(path)
    prefix = bundle_prefix(path)
    if prefix is not None:
        return read_tf_bundle(prefix)
    try:
        if _is_safetensors(path):
            from safetensors import safe_open
            from safetensors.torch import load_file

            state_dict = load_file(str(path), device="cpu")
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            if meta.get("format") == GHOSTZOO_FORMAT:
                return {**json.loads(meta.get("ghostzoo", "{}")), "format": GHOSTZOO_FORMAT, "state_dict": state_dict}
            return state_dict
        # timm's training checkpoints carry their argparse.Namespace; it holds plain values only.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {_read_failure(e)}") from None


def _read_failure(e: Exception) -> str:
    """Why a file could not be read, in a clause: torch's refusal of a pickled global (its real reason
    sits on a later line of a long message) or the reader's first line."""
    marker = "WeightsUnpickler error:"
    text = str(e)
    if marker not in text:
        return f"not a valid PyTorch or safetensors file ({first_line(e)})"
    reason = next((line.strip() for line in text.split(marker, 1)[1].splitlines() if line.strip()), "")
    reason = reason.split(". ")[0].rstrip(".")
    if reason.startswith("Unsupported global"):
        return f"it holds pickled code, which ghostzoo never runs ({reason})"
    return f"not a valid PyTorch or safetensors file ({reason})"


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def extract_state_dict(obj: Any, use_ema: Optional[bool] = None) -> Tuple[StateDict, str]:
    """The model weights inside a loaded checkpoint, and which entry they came from.

    ``use_ema``: True takes the EMA weights (an error if there are none), False the raw ones, None
    the raw ones unless the file holds EMA weights only.
    """
    if _is_state_dict(obj):
        if use_ema:
            raise CheckpointError("use_ema was requested but the checkpoint is a bare state_dict without EMA weights")
        return dict(obj), "state_dict (bare)"
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint holds a {type(obj).__name__}, not a state_dict")
    ema_key = next((k for k in _EMA_KEYS if _is_state_dict(obj.get(k))), None)
    raw_key = next((k for k in _WRAPPER_KEYS if _is_state_dict(obj.get(k))), None)
    if use_ema and ema_key is None:
        raise CheckpointError(
            f"use_ema was requested but the checkpoint has no EMA weights (entries: {', '.join(map(str, obj))})"
        )
    key = ema_key if (use_ema or (raw_key is None and use_ema is None)) else raw_key
    if key is None:
        raise CheckpointError(f"no state_dict found in checkpoint (entries: {', '.join(map(str, list(obj)[:8]))})")
    return dict(obj[key]), key


def has_ema(obj: Any) -> bool:
    """Whether a loaded checkpoint holds EMA weights (beside or instead of the raw ones)."""
    return isinstance(obj, Mapping) and any(_is_state_dict(obj.get(k)) for k in _EMA_KEYS)


def clean_state_dict(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """Drop profiler counters and the ``module.`` prefix that DataParallel/DDP saves add."""
    out = {k: v for k, v in state_dict.items() if not k.endswith(_THOP_SUFFIXES)}
    if out and all(k.startswith("module.") for k in out):
        out = {k[len("module.") :]: v for k, v in out.items()}
    return out


# ----------------------------------------------------------------------------------------------
# fitting the weights to a model
# ----------------------------------------------------------------------------------------------


def _listing(keys: Iterable[str], limit: int = 5) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _adapt_first_conv(state_dict: StateDict, model_sd: Mapping[str, torch.Tensor], first_conv: str) -> None:
    key = f"{first_conv}.weight"
    if first_conv and key in state_dict and key in model_sd:
        w, target = state_dict[key], model_sd[key]
        if w.ndim == 4 and w.shape[1] != target.shape[1] and w.shape[0] == target.shape[0]:
            from timm.models import adapt_input_conv

            state_dict[key] = adapt_input_conv(target.shape[1], w)


def _mismatch(
    missing: List[str], unexpected: List[str], wrong: List[str], state_dict: StateDict, model_sd: StateDict
) -> str:
    """The keys of a checkpoint that does not fit, in one line: missing, unexpected, wrong shape."""
    parts = []
    if missing:
        parts.append(f"missing {len(missing)}: {_listing(missing)}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)}: {_listing(unexpected)}")
    if wrong:
        parts.append(
            "wrong shape: "
            + _listing(f"{k} {tuple(state_dict[k].shape)} vs model {tuple(model_sd[k].shape)}" for k in wrong)
        )
    return "; ".join(parts)


def fit_state_dict(model: nn.Module, state_dict: StateDict, cfg: PretrainedCfg) -> List[str]:
    """Load ``state_dict`` into ``model`` strictly, except for a classifier of another size.

    A head trained for a different number of classes is dropped (the model keeps its fresh head,
    with a warning), so fine-tuning starts from any checkpoint; every other difference is an
    error naming the missing, unexpected and wrong-shape keys. Returns the keys left at their
    initialisation.
    """
    model_sd = model.state_dict()
    _adapt_first_conv(state_dict, model_sd, cfg.first_conv)
    head = f"{cfg.classifier}." if cfg.classifier else None
    is_head = lambda k: head is not None and k.startswith(head)

    missing = [k for k in model_sd if k not in state_dict]
    unexpected = [k for k in state_dict if k not in model_sd]
    wrong = [k for k in state_dict if k in model_sd and state_dict[k].shape != model_sd[k].shape]
    if not all(is_head(k) for k in missing + unexpected + wrong):
        raise CheckpointError(
            f"checkpoint does not fit {cfg.architecture}: "
            + _mismatch(missing, unexpected, wrong, state_dict, model_sd)
        )
    reinit = sorted(set(missing) | set(wrong))
    for k in unexpected + wrong:
        state_dict.pop(k)
    if reinit:
        warnings.warn(
            f"checkpoint classifier does not match the model's ({_listing(reinit)}); "
            f"keeping the backbone and re-initialising the head",
            stacklevel=3,
        )
    model.load_state_dict(state_dict, strict=not reinit)
    return reinit


# What ghostzoo's own files carry besides weights; lets create_model rebuild a trained model as it was.
META_KEYS = ("architecture", "num_classes", "class_names", "img_size", "crop_pct")


@dataclass
class Checkpoint:
    """Weights read from a file, before they meet a model."""

    state_dict: StateDict
    path: Path
    entry: str
    meta: Dict[str, Any] = field(default_factory=dict)

    def num_classes(self, classifier: str) -> Optional[int]:
        """Classes of the stored head: ghostzoo's metadata, else the classifier weight's rows."""
        if self.meta.get("num_classes"):
            return int(self.meta["num_classes"])
        weight = self.state_dict.get(f"{classifier}.weight")
        return int(weight.shape[0]) if weight is not None and weight.ndim >= 2 else None


def read_checkpoint(
    source: str | os.PathLike, use_ema: Optional[bool] = None, progress: bool = True, prefer_ema: Optional[bool] = None
) -> Checkpoint:
    """Resolve, read and unwrap a checkpoint (any supported source and format).

    ``prefer_ema`` (a cfg's ``use_ema``) stands in for ``use_ema=None`` only in files that hold EMA
    weights, so a bare state_dict (timm's, or a ghostzoo save) still loads where the cfg prefers
    EMA weights; an explicit ``use_ema`` always wins.
    """
    path = resolve_source(source, progress=progress)
    obj = read_file(path)
    meta: Dict[str, Any] = {}
    if isinstance(obj, Mapping) and obj.get("format") == GHOSTZOO_FORMAT:
        meta = {k: obj[k] for k in META_KEYS if obj.get(k) is not None}
    if use_ema is None and has_ema(obj):
        use_ema = prefer_ema
    state_dict, entry = extract_state_dict(obj, use_ema=use_ema)
    return Checkpoint(clean_state_dict(state_dict), path, entry, meta)


def apply_checkpoint(
    model: nn.Module, ckpt: Checkpoint, cfg: PretrainedCfg, checkpoint_filter: Optional[CheckpointFilter] = None
) -> str:
    """Fit ``ckpt`` into ``model``; returns a short description of what was used."""
    arch = ckpt.meta.get("architecture")
    if arch and arch != cfg.architecture:
        raise CheckpointError(f"{ckpt.path} is a ghostzoo checkpoint of {arch}, not {cfg.architecture}")
    state_dict = dict(ckpt.state_dict)
    broken = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise CheckpointError(
            f"{ckpt.path} holds NaN or infinite weights in {len(broken)} tensor(s), {broken[0]} first: "
            "the run that wrote it diverged or the file is damaged"
        )
    if checkpoint_filter is not None:
        state_dict = checkpoint_filter(state_dict, model)
    fit_state_dict(model, state_dict, cfg)
    return f"{ckpt.path} [{ckpt.entry}]"


def load_checkpoint(
    model: nn.Module,
    source: str | os.PathLike,
    cfg: PretrainedCfg,
    checkpoint_filter: Optional[CheckpointFilter] = None,
    use_ema: Optional[bool] = None,
    progress: bool = True,
) -> str:
    """Load weights from ``source`` into ``model``; returns a short description of what was used."""
    ckpt = read_checkpoint(source, use_ema, progress, prefer_ema=cfg.use_ema)
    return apply_checkpoint(model, ckpt, cfg, checkpoint_filter)


def save_checkpoint(
    path: str | os.PathLike, model: nn.Module, architecture: str, extra: Optional[Mapping[str, Any]] = None
) -> Path:
    """Save ghostzoo's own format atomically (temp file in the same folder, then rename).

    ``.safetensors`` paths get a safetensors file with the architecture (and ``extra``'s
    ``num_classes`` / ``class_names`` / ``img_size`` / ``crop_pct``) in its metadata; anything else a torch file
    ``{'format', 'architecture', 'state_dict', **extra}``. Both load back through
    :func:`read_checkpoint`, which hands that metadata to ``create_model``.
    """
    path = Path(path)
    state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_paths(path) as (tmp,):
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            meta = {"architecture": architecture, **{k: v for k, v in (extra or {}).items() if k in META_KEYS}}
            save_file(state_dict, tmp, metadata={"format": GHOSTZOO_FORMAT, "ghostzoo": json.dumps(meta)})
        else:
            torch.save(
                {"format": GHOSTZOO_FORMAT, "architecture": architecture, "state_dict": state_dict, **(extra or {})},
                tmp,
            )
    return path
