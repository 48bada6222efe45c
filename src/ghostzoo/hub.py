"""The Hugging Face hub both ways: save or push a model as timm lays a repository out, and read one back.

A repository holds ``config.json`` (timm's: architecture, num_classes, class names and the
``pretrained_cfg`` preprocessing), ``model.safetensors`` (ghostzoo's file, whose metadata carries
the same) and ``README.md`` (a model card with the model's numbers). Its architecture is timm's name
of the model, ``ghostzoo_<name>`` (:mod:`.timm_registry`), so timm builds it after ``import
ghostzoo``; ``create_model("hf-hub:org/name")`` and ``create_model("local-dir:PATH")`` build it back
with its class names and preprocessing, and read repositories timm wrote for the models both have.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch.nn as nn

from ._io import atomic_paths, check_writable_folder, write_json_atomic, write_text_atomic
from .checkpoints import HF_PREFIX, download_hf_hub, save_checkpoint
from .errors import CheckpointError
from .registry import PretrainedCfg, get_model_entry

TIMM_PREFIX = "ghostzoo_"  # ghostzoo's models in timm's registry
LOCAL_PREFIX = "local-dir:"
CONFIG, WEIGHTS, CARD = "config.json", "model.safetensors", "README.md"
PREPROCESSING = ("input_size", "interpolation", "crop_pct", "mean", "std")


def timm_name(name: str) -> str:
    """The name of ghostzoo's model ``name`` (with or without a tag) in timm's registry."""
    return TIMM_PREFIX + name


def is_hub_model(name: str) -> bool:
    """Whether ``name`` names a repository (``hf-hub:org/name``) or a folder (``local-dir:PATH``)."""
    return name.startswith((HF_PREFIX, LOCAL_PREFIX))


# ----------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------


def hub_config(model: nn.Module) -> Dict[str, Any]:
    """timm's ``config.json`` of ``model``: what ``timm.create_model("hf-hub:...")`` and ghostzoo rebuild it from."""
    cfg: PretrainedCfg = model.pretrained_cfg
    return {
        "architecture": timm_name(cfg.architecture),
        "num_classes": model.num_classes,
        "num_features": model.num_features,
        "label_names": list(cfg.class_names) or None,
        "pretrained_cfg": {
            **{key: cfg[key] for key in PREPROCESSING},
            "crop_mode": "center",
            "num_classes": model.num_classes,
            "first_conv": cfg.first_conv,
            "classifier": cfg.classifier,
            "license": cfg.license,
        },
    }


def model_card(model: nn.Module, repo_id: str, metrics: Optional[Mapping[str, Any]] = None) -> str:
    """README.md: what the model is, its numbers (``metrics`` as measured, else the published ones,
    with their source) and how to load it with ghostzoo or timm."""
    cfg: PretrainedCfg = model.pretrained_cfg
    if metrics:
        rows = [f"| {k} | {v} |" for k, v in metrics.items()]
        source = "measured"
    else:
        published = (("top-1 (%)", cfg.published.top1), ("top-5 (%)", cfg.published.top5))
        rows = [f"| {k} | {v} |" for k, v in published if v]
        source = cfg.published.source or "published"
    classes = f"{model.num_classes} classes" + (f": {', '.join(cfg.class_names[:10])}" if cfg.class_names else "")
    license_id = cfg.license.split(" ")[0] if cfg.license else "other"
    table = ("| metric | value |\n|---|---|\n" + "\n".join(rows) + f"\n\nSource: {source}.\n") if rows else ""
    return (
        f"---\nlibrary_name: timm\nlicense: {license_id}\ntags:\n- image-classification\n- ghostzoo\n- timm\n---\n\n"
        f"# {repo_id}\n\n`{cfg.architecture}` ({cfg.paper}), {classes}{'...' if len(cfg.class_names) > 10 else ''}. "
        f"Input {cfg.input_size[-1]} px, crop {cfg.crop_pct}, {cfg.interpolation} resize.\n\n{table}\n"
        "## Use\n\n```python\nimport ghostzoo\n\n"
        f'model = ghostzoo.create_model("hf-hub:{repo_id}", pretrained=True)\n```\n\n'
        "or, with timm (ghostzoo registers its models there when imported):\n\n```python\nimport ghostzoo, timm\n\n"
        f'model = timm.create_model("hf-hub:{repo_id}", pretrained=True)\n```\n'
    )


def save_for_hub(
    model: nn.Module, folder: str | os.PathLike, repo_id: str = "", metrics: Optional[Mapping[str, Any]] = None
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``README.md`` of ``model`` into ``folder``, all or none."""
    check_writable_folder(folder, "folder")
    folder = Path(folder)
    cfg: PretrainedCfg = model.pretrained_cfg
    extra = {
        "num_classes": model.num_classes,
        "class_names": list(cfg.class_names),
        "img_size": cfg.input_size[-1],
        "crop_pct": cfg.crop_pct,
    }
    with atomic_paths(folder / CONFIG, folder / CARD, folder / WEIGHTS) as (config, card, weights):
        write_json_atomic(config, hub_config(model))
        write_text_atomic(card, model_card(model, repo_id or folder.name, metrics))
        save_checkpoint(weights, model, cfg.architecture, extra)
    return folder


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    metrics: Optional[Mapping[str, Any]] = None,
    private: bool = False,
    token: Optional[str] = None,
    commit_message: str = "ghostzoo model",
) -> str:
    """Upload ``model`` to the Hugging Face hub repository ``repo_id`` (created if needed); its URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as tmp:
        save_for_hub(model, tmp, repo_id, metrics)
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message)
    return str(getattr(commit, "repo_url", f"https://huggingface.co/{repo_id}"))


# ----------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------


@dataclass
class HubModel:
    """A repository's model: the ghostzoo architecture, its weights and its config's changes to the cfg."""

    name: str
    weights: str
    cfg_changes: Dict[str, Any]


def read_hub_model(source: str) -> HubModel:
    """Read ``config.json`` of ``hf-hub:org/name[@revision]`` or ``local-dir:PATH``."""
    if source.startswith(LOCAL_PREFIX):
        folder = Path(source[len(LOCAL_PREFIX) :]).expanduser()
        config_path, weights = folder / CONFIG, str(folder / WEIGHTS)
        if not config_path.is_file():
            raise CheckpointError(f"{source}: no {CONFIG} in {folder}")
    else:
        repo = source[len(HF_PREFIX) :]
        config_path, weights = download_hf_hub(f"{repo}:{CONFIG}"), source
    try:
        config = json.loads(Path(config_path).read_text(encoding="utf-8"))
        architecture = str(config["architecture"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{source}: {CONFIG} is not a timm model config ({type(e).__name__}: {e})") from None
    name = architecture[len(TIMM_PREFIX) :] if architecture.startswith(TIMM_PREFIX) else architecture
    get_model_entry(name)  # an unknown architecture is a one-line error naming it
    return HubModel(name, weights, _cfg_changes(config))


def _cfg_changes(config: Mapping[str, Any]) -> Dict[str, Any]:
    """What a ``config.json`` says about preprocessing and classes, as :class:`PretrainedCfg` fields."""
    pretrained = config.get("pretrained_cfg") or {}
    changes: Dict[str, Any] = {
        key: tuple(pretrained[key]) if isinstance(pretrained[key], list) else pretrained[key]
        for key in PREPROCESSING
        if pretrained.get(key) is not None
    }
    num_classes = config.get("num_classes") or pretrained.get("num_classes")
    if num_classes:
        changes["num_classes"] = int(num_classes)
    labels = config.get("label_names") or pretrained.get("label_names")
    if labels and len(labels) == num_classes:
        changes.update(class_names=tuple(labels), label_names="")
    return changes
