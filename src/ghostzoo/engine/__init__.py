"""Evaluation and training loops."""

from .evaluate import EvalResult, evaluate, validate
from .train import TrainConfig, recipe_defaults, train

__all__ = ["evaluate", "validate", "EvalResult", "train", "TrainConfig", "recipe_defaults"]
