"""torch.hub entry points: every ghostzoo model, by its ghostzoo name.

    model = torch.hub.load("<owner>/ghostzoo", "ghostnet_100", pretrained=True)
    model = torch.hub.load("<owner>/ghostzoo", "ghostnet_100", pretrained=True, tag="imagenette")
    print(torch.hub.help("<owner>/ghostzoo", "vig_ti_224_gelu"))

Each entry point takes ``create_model``'s arguments (``num_classes``, ``features_only``,
``checkpoint_path``, ...); ``tag`` picks one of the model's weights (``ghostzoo info NAME`` lists them).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

import ghostzoo  # noqa: E402

dependencies = ["torch", "torchvision", "timm", "safetensors"]


def _entry_point(name):
    def load(pretrained=False, tag="", **kwargs):
        return ghostzoo.create_model(f"{name}.{tag}" if tag else name, pretrained=pretrained, **kwargs)

    cfg = ghostzoo.get_pretrained_cfg(name)
    weights = ", ".join(f"{c.tag} ({c.published.top1}% top-1)" if c.published.top1 else c.tag for c in _weights(name))
    load.__name__ = load.__qualname__ = name
    summary = (ghostzoo.registry.get_model_entry(name).builder.__doc__ or name).strip().splitlines()[0]
    load.__doc__ = (
        f"{name}: {summary} ({cfg.paper})\n\n"
        f"pretrained=True loads the default weights ({cfg.tag}); tag= picks another set: {weights or 'none'}.\n"
        f"Other keyword arguments go to ghostzoo.create_model (num_classes, features_only, checkpoint_path, ...)."
    )
    return load


def _weights(name):
    return [c for c in ghostzoo.registry.get_model_entry(name).cfgs.values() if c.has_weights]


for _name in ghostzoo.list_models():
    globals()[_name] = _entry_point(_name)
