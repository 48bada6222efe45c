"""PaddlePaddle ``.pdparams`` files, read without PaddlePaddle.

``paddle.save(model.state_dict(), path)`` writes a plain pickle (protocol 2 to 4) of a dict from
structured names (``conv1._conv.weight``) to numpy arrays in Paddle's layout, plus bookkeeping
entries whose keys end in ``@@`` (``StructuredToParameterName@@`` maps each structured name to its
``ParamAttr`` name). Such a file references three numpy globals and nothing else (protocol 2 adds
``_codecs.encode``, its way of storing bytes), so it is read by an unpickler that admits exactly
those (under numpy 1.x and 2.x module names) and refuses any other global without calling it: a
pickle can run code when loaded, and a weights file has no reason to.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from ..errors import CheckpointError

PICKLE_PROTOCOLS = (2, 3, 4)
BOOKKEEPING_SUFFIX = "@@"


def _reconstruct() -> Any:
    """numpy's array-unpickling helper, wherever this numpy keeps it."""
    try:
        from numpy._core.multiarray import _reconstruct as reconstruct  # numpy 2
    except ImportError:  # numpy 1
        from numpy.core.multiarray import _reconstruct as reconstruct
    return reconstruct


class _NumpyOnly(pickle.Unpickler):
    """An unpickler that builds numpy arrays and refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in (("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")):
            return _reconstruct()
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if (module, name) == ("_codecs", "encode"):  # how protocol 2 stores bytes: str -> bytes, no code
            return codecs.encode
        raise pickle.UnpicklingError(f"it references {module}.{name}, which a .pdparams file never holds")


def is_pdparams(path: Path) -> bool:
    """A pickle of a protocol paddle.save writes, named as Paddle names its weight files."""
    with open(path, "rb") as f:
        head = f.read(2)
    return path.suffix == ".pdparams" and len(head) == 2 and head[0] == 0x80 and head[1] in PICKLE_PROTOCOLS


def read_pdparams(path: Path) -> Dict[str, torch.Tensor]:
    """The arrays of a ``.pdparams`` file as tensors, by structured name (bookkeeping entries dropped)."""
    try:
        with open(path, "rb") as f:
            obj = _NumpyOnly(f, encoding="latin1").load()  # latin1: as paddle.load reads numpy 1.x pickles
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"cannot read {path} as a .pdparams file: {e}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not the dict paddle.save writes")
    arrays = {k: v for k, v in obj.items() if isinstance(k, str) and not k.endswith(BOOKKEEPING_SUFFIX)}
    foreign = [k for k, v in arrays.items() if not isinstance(v, np.ndarray)]
    if foreign:
        raise CheckpointError(f"{path}: entry {foreign[0]!r} is a {type(arrays[foreign[0]]).__name__}, not an array")
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
