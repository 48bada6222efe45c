"""Preprocessing, class names and image reading."""

from .classes import imagenet_class_names, imagenet_wnids
from .images import IMAGE_EXTENSIONS, find_images, read_image
from .transforms import create_transform

__all__ = ["create_transform", "imagenet_class_names", "imagenet_wnids", "find_images", "read_image",
           "IMAGE_EXTENSIONS"]
