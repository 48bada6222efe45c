"""ghostzoo: Huawei Noah's Ark efficient vision backbones behind one PyTorch API."""

from . import data, deploy, models
from .checkpoints import load_checkpoint, save_checkpoint
from .errors import CheckpointError, GhostzooError, ImageError, UnknownModelError
from .factory import create_model
from .hub import push_to_hub
from .inference import Predictor, topk_labels
from .profile import count_params, profile_model
from .registry import PretrainedCfg, Published, get_pretrained_cfg, list_models, list_pretrained, register_model
from .timm_registry import register_in_timm

register_in_timm()  # every model is also timm's ``ghostzoo_<name>``

__version__ = "0.1.0"

__all__ = [
    "create_model",
    "push_to_hub",
    "list_models",
    "list_pretrained",
    "get_pretrained_cfg",
    "register_model",
    "PretrainedCfg",
    "Published",
    "load_checkpoint",
    "save_checkpoint",
    "Predictor",
    "topk_labels",
    "profile_model",
    "count_params",
    "GhostzooError",
    "UnknownModelError",
    "CheckpointError",
    "ImageError",
    "data",
    "deploy",
    "models",
    "__version__",
]
