"""Finding and decoding image files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, List, Tuple

from PIL import Image, UnidentifiedImageError

from .._io import first_line
from ..errors import ImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm")


def find_images(paths: Iterable[str | os.PathLike]) -> Tuple[List[Path], List[Tuple[Path, str]]]:
    """Expand files and folders (recursively, sorted) into image paths.

    Returns ``(images, problems)``: a folder contributes only files with an image extension; a path
    named explicitly is kept whatever its extension (it may still be an image), and a path that does
    not exist becomes a problem instead of an exception.
    """
    images: List[Path] = []
    problems: List[Tuple[Path, str]] = []
    for p in map(Path, paths):
        if p.is_dir():
            images.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS))
        elif p.is_file():
            images.append(p)
        else:
            problems.append((p, "no such file or directory"))
    return images, problems


def read_image(path: str | os.PathLike) -> Image.Image:
    """Decode ``path`` fully into an RGB PIL image, or raise :class:`ImageError` with the reason."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        reason = "not an image" if isinstance(e, UnidentifiedImageError) else first_line(e)
        raise ImageError(f"cannot read image {path}: {reason}") from None
