"""The Hugging Face hub both ways, offline: a folder laid out as timm lays out a repository, read back
through ``local-dir:`` and, placed in the hub client's cache, through ``hf-hub:`` (ghostzoo and timm)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import pytest
import timm
import torch

import ghostzoo
from ghostzoo.data import create_transform
from ghostzoo.errors import GhostzooError
from ghostzoo.hub import push_to_hub, save_for_hub

BREEDS = tuple(f"breed {i}" for i in range(37))


@pytest.fixture(scope="module")
def pets_model() -> torch.nn.Module:
    """A 37-class fine-tuned model, as `ghostzoo train` leaves one: its class names and evaluation size in its cfg."""
    torch.manual_seed(0)
    model = ghostzoo.create_model("ghostnet_050", num_classes=37).eval()
    model.pretrained_cfg = dataclasses.replace(
        model.pretrained_cfg, num_classes=37, class_names=BREEDS, label_names="", input_size=(3, 160, 160), crop_pct=1.0
    )
    return model


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert b.pretrained_cfg.class_names == BREEDS and b.num_classes == 37
    assert str(create_transform(b.pretrained_cfg)) == str(create_transform(a.pretrained_cfg))


def test_a_saved_folder_is_timms_layout_and_comes_back_whole(pets_model, tmp_path):
    folder = save_for_hub(pets_model, tmp_path / "repo", "me/pets", metrics={"top-1 (%)": 81.5})
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "ghostzoo_ghostnet_050" and config["num_classes"] == 37
    assert config["label_names"] == list(BREEDS)
    assert config["pretrained_cfg"]["input_size"] == [3, 160, 160] and config["pretrained_cfg"]["crop_pct"] == 1.0
    card = (folder / "README.md").read_text()
    assert "| top-1 (%) | 81.5 |" in card and 'create_model("hf-hub:me/pets", pretrained=True)' in card
    _same(pets_model, ghostzoo.create_model(f"local-dir:{folder}", pretrained=True))


def test_hf_hub_repository_loads_in_ghostzoo_and_timm(pets_model, tmp_path, monkeypatch):
    """The repository as the hub client keeps it in its cache (refs/main -> snapshots/<commit>)."""
    cache, commit = tmp_path / "hub", "0" * 40
    snapshot = cache / "models--me--pets" / "snapshots" / commit
    save_for_hub(pets_model, snapshot, "me/pets")
    (cache / "models--me--pets" / "refs").mkdir()
    (cache / "models--me--pets" / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    _same(pets_model, ghostzoo.create_model("hf-hub:me/pets", pretrained=True))
    _same(pets_model, timm.create_model("hf-hub:me/pets", pretrained=True))


def test_push_to_hub_uploads_the_saved_folder(pets_model, monkeypatch):
    uploaded = {}

    class FakeApi:  # the hub client's calls, recorded instead of sent
        def __init__(self, token=None):
            uploaded["token"] = token

        def create_repo(self, repo_id, private=False, exist_ok=False):
            uploaded["repo"] = (repo_id, private, exist_ok)

        def upload_folder(self, repo_id, folder_path, commit_message):
            uploaded["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            return type("Commit", (), {"repo_url": f"https://huggingface.co/{repo_id}"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = push_to_hub(pets_model, "me/pets", private=True, token="t")
    assert url == "https://huggingface.co/me/pets"
    assert uploaded["repo"] == ("me/pets", True, True) and uploaded["token"] == "t"
    assert uploaded["files"] == ["README.md", "config.json", "model.safetensors"]


def test_a_folder_that_is_not_a_model_is_refused_in_one_line(tmp_path):
    with pytest.raises(GhostzooError, match="no config.json"):
        ghostzoo.create_model(f"local-dir:{tmp_path}", pretrained=True)
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "resnet9000"}))
    with pytest.raises(GhostzooError, match="unknown model 'resnet9000'"):
        ghostzoo.create_model(f"local-dir:{tmp_path}")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(GhostzooError, match="config.json is not a timm model config"):
        ghostzoo.create_model(f"local-dir:{tmp_path}")


def test_the_command_writes_the_repository_with_measured_numbers(tmp_path, capsys):
    from ghostzoo.cli import main

    val = tmp_path / "val.json"  # as `ghostzoo validate --output` writes it
    result = {"model": "m", "data": "/data/imagenette-160", "images": 3925, "top1": 83.0812, "top5": 98.0}
    val.write_text(json.dumps(result))
    out = tmp_path / "repo"
    args = ["push-to-hub", "ghostnet_100.imagenette", "me/gn", "--metrics", str(val), "--output-dir", str(out)]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert "| top-1 (%) | 83.08 |" in (out / "README.md").read_text()
    assert main(["push-to-hub", "ghostnet_100.imagenette", "me/gn", "--metrics", str(out / "config.json")]) == 1
    assert "not a `ghostzoo validate --output` file" in capsys.readouterr().err
