"""Post-processing and the predict pipeline on real photos."""

from __future__ import annotations

import shutil

import pytest
import torch

import ghostzoo
from ghostzoo.data import create_transform, read_image
from ghostzoo.inference import Predictor, topk_labels

from golden import save_golden_checkpoint


def test_topk_labels_softmax_order_and_names():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    top = topk_labels(logits, 3, ["a", "b", "c", "d"])[0]
    assert [t["label"] for t in top] == ["b", "d", "c"]
    probs = torch.softmax(logits, -1)[0]
    assert [t["prob"] for t in top] == pytest.approx([probs[1].item(), probs[3].item(), probs[2].item()])
    assert len(topk_labels(logits, 10, list("abcd"))[0]) == 4  # k larger than the class count


@pytest.fixture(scope="module")
def model_050(tmp_path_factory):
    path = save_golden_checkpoint("ghostnet_050", tmp_path_factory.mktemp("w") / "ghostnet_050.pth")
    return path, ghostzoo.create_model("ghostnet_050", checkpoint_path=path).eval()


def test_predictor_matches_manual_pipeline_and_skips_bad_files(model_050, imagenet_val_images, tmp_path):
    _, model = model_050
    folder = tmp_path / "imgs"
    (folder / "nested").mkdir(parents=True)
    for p in imagenet_val_images[:3]:
        shutil.copy(p, folder / p.name)
    shutil.copy(imagenet_val_images[3], folder / "nested" / imagenet_val_images[3].name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (folder / "notes.txt").write_text("ignored: not an image extension")

    report = Predictor(model, batch_size=2).predict([folder, tmp_path / "missing.jpg"], topk=3)
    assert len(report.predictions) == 4
    assert {s["path"].split("/")[-1] for s in report.skipped} == {"broken.jpg", "missing.jpg"}

    transform = create_transform(model.pretrained_cfg)
    names = ghostzoo.data.imagenet_class_names()
    for pred in report.predictions:
        with torch.no_grad():
            probs = model(transform(read_image(pred["path"]))[None]).softmax(-1)[0]
        values, indices = probs.topk(3)
        assert [t["index"] for t in pred["topk"]] == indices.tolist()
        assert [t["label"] for t in pred["topk"]] == [names[i] for i in indices.tolist()]
        assert [t["prob"] for t in pred["topk"]] == pytest.approx(values.tolist(), rel=1e-5)
