"""Preprocessing, datasets, class names and image reading."""

from .classes import imagenet_class_names, imagenet_wnids
from .datasets import (
    LabelledImages,
    Skipped,
    build_dataset,
    collate_skipping,
    imagenet_target_map,
    readable_class_names,
)
from .images import IMAGE_EXTENSIONS, find_images, read_image
from .transforms import create_train_transform, create_transform

__all__ = [
    "create_transform",
    "create_train_transform",
    "imagenet_class_names",
    "imagenet_wnids",
    "find_images",
    "read_image",
    "IMAGE_EXTENSIONS",
    "build_dataset",
    "LabelledImages",
    "Skipped",
    "collate_skipping",
    "imagenet_target_map",
    "readable_class_names",
]
