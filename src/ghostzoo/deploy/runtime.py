"""Exported files that behave like ghostzoo models.

An exported ONNX file carries the model's pretrained cfg (architecture, classes, input size, eval
preprocessing) in its ``metadata_props`` under the key ``ghostzoo``, so ``validate``, ``predict``
and ``benchmark`` can use the file alone, with the same preprocessing and class names as the
PyTorch model it came from. :class:`OnnxRuntimeModel` wraps an ONNX Runtime session as an
``nn.Module`` that takes and returns torch tensors, so the evaluation and prediction code paths
are the same for eager, exported and int8 models.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..registry import PretrainedCfg, Published

METADATA_KEY = "ghostzoo"
EXPORTED_SUFFIXES = (".onnx",)


def cfg_to_metadata(cfg: PretrainedCfg, **extra: Any) -> str:
    """The JSON string stored in an exported file: the cfg, plus ``extra`` facts (e.g. int8 scheme)."""
    return json.dumps({"cfg": dataclasses.asdict(cfg), **extra}, default=str)


def cfg_from_metadata(text: str) -> tuple[PretrainedCfg, dict[str, Any]]:
    """Inverse of :func:`cfg_to_metadata`: the cfg and the extra facts."""
    data = json.loads(text)
    raw = dict(data.pop("cfg"))
    known = {f.name for f in dataclasses.fields(PretrainedCfg)}
    raw = {k: v for k, v in raw.items() if k in known}
    raw["published"] = Published(**raw.get("published") or {})
    for key in ("input_size", "mean", "std", "class_names"):
        if key in raw:
            raw[key] = tuple(raw[key])
    return PretrainedCfg(**raw), data


def is_exported(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(EXPORTED_SUFFIXES)


def write_onnx_metadata(model_proto: Any, cfg: PretrainedCfg, **extra: Any) -> None:
    """Set the ``ghostzoo`` metadata entry of an ``onnx.ModelProto`` (in memory)."""
    for prop in list(model_proto.metadata_props):
        if prop.key == METADATA_KEY:
            model_proto.metadata_props.remove(prop)
    entry = model_proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, cfg_to_metadata(cfg, **extra)


class OnnxRuntimeModel(nn.Module):
    """An ONNX file run by ONNX Runtime on the CPU, used like the PyTorch model it was exported from.

    ``pretrained_cfg`` and ``num_classes`` come from the file's metadata; ``extra`` holds the other
    facts stored there (for an int8 file, its quantization scheme). Inputs may be any float tensor
    layout (channels-last included); outputs are float32 CPU tensors.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        super().__init__()
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"exported model not found: {self.path}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=list(providers))
        except Exception as e:  # noqa: BLE001 -- ORT raises its own types, with multi-line messages
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"{self.path} is not a runnable ONNX model: {first}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise CheckpointError(f"{self.path} was not exported by ghostzoo (no '{METADATA_KEY}' metadata)")
        self.pretrained_cfg, self.extra = cfg_from_metadata(meta[METADATA_KEY])
        self.num_classes = self.pretrained_cfg.num_classes
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        (out,) = self.session.run(None, {self.input_name: array})
        return torch.from_numpy(out)


def load_exported(path: str | os.PathLike, architecture: str | None = None, **kwargs: Any) -> nn.Module:
    """Open an exported file; with ``architecture``, check that the file holds that model."""
    if not is_exported(path):
        raise CheckpointError(f"{path}: not an exported model (expected one of {', '.join(EXPORTED_SUFFIXES)})")
    model = OnnxRuntimeModel(path, **kwargs)
    stored = model.pretrained_cfg.architecture
    if architecture is not None and stored and architecture.split(".")[0] != stored:
        raise CheckpointError(f"{path} holds {stored}, not {architecture.split('.')[0]}")
    return model
