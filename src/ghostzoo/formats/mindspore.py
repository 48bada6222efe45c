"""MindSpore ``.ckpt`` files, read without MindSpore.

``mindspore.save_checkpoint`` writes one protobuf ``Checkpoint`` message per parameter (or per
512 MiB slice of one, split along dim 0), concatenated; concatenated messages parse as one. Each
holds a ``Value`` { tag = 1 (name), tensor = 2 { dims = 1 (repeated int64), tensor_type = 2
("Float32", ...), tensor_content = 3 (raw little-endian bytes) } }. Training scripts append extra
values (optimizer moments, ``global_step``, ``learning_rate``, strings): they are read too, and the
model's checkpoint filter keeps its own names. ``crc_check=True`` files end in ``b"crc_num"`` and a
10-byte checksum, which is dropped; encrypted files are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch

from ..errors import CheckpointError
from ._protobuf import fields, varints

_DTYPES = {
    "Float32": np.float32,
    "Float16": np.float16,
    "Float64": np.float64,
    "Int64": np.int64,
    "Int32": np.int32,
    "Int16": np.int16,
    "Int8": np.int8,
    "UInt8": np.uint8,
    "Bool": np.bool_,
}
_CRC_TAIL = b"crc_num"


def is_mindspore_ckpt(path: Path) -> bool:
    """A ``.ckpt`` file whose first bytes are a Checkpoint.value field (tag 0x0a): a torch file is a zip."""
    with open(path, "rb") as f:
        head = f.read(1)
    return path.suffix == ".ckpt" and head == b"\x0a"


def _tensor(msg: bytes) -> Tuple[List[int], str, bytes]:
    dims, dtype, content = [], "", b""
    for number, wire, value in fields(msg):
        if number == 1 and wire == 0:
            dims.append(value)
        elif number == 1:  # packed dims, should a writer pack them
            dims += varints(value)
        elif number == 2:
            dtype = value.decode("utf-8")
        elif number == 3:
            content = value
    return dims, dtype, content


def read_mindspore_ckpt(path: Path) -> Dict[str, torch.Tensor]:
    """The numeric tensors of a MindSpore checkpoint, by parameter name (slices joined)."""
    data = path.read_bytes()
    if data[-17:-10] == _CRC_TAIL:
        data = data[:-17]
    pieces: Dict[str, Tuple[List[int], str, List[bytes]]] = {}
    try:
        for number, _, value in fields(data):
            if number != 1:
                raise ValueError(f"unexpected field {number} (an encrypted or foreign file?)")
            tag, tensor = "", None
            for field, _, content in fields(value):
                if field == 1:
                    tag = content.decode("utf-8")
                elif field == 2:
                    tensor = _tensor(content)
            if tensor is None:
                continue  # a MapParameter: not model weights
            dims, dtype, content = tensor
            pieces.setdefault(tag, (dims, dtype, []))[2].append(content)
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"cannot read {path} as a MindSpore checkpoint: {e}") from None
    return {tag: _array(path, tag, *piece) for tag, piece in pieces.items() if piece[1] in _DTYPES}


def _array(path: Path, tag: str, dims: List[int], dtype: str, contents: List[bytes]) -> torch.Tensor:
    np_dtype = np.dtype(_DTYPES[dtype]).newbyteorder("<")
    content = b"".join(contents)
    shape = dims if len(dims) != 1 or dims[0] != 0 else []  # MindSpore reads dims [0] as a scalar
    if len(content) != int(np.prod(shape, dtype=np.int64)) * np_dtype.itemsize:
        raise CheckpointError(f"{path}: {tag} has {len(content)} bytes, not those of a {shape} {dtype} tensor")
    array = np.frombuffer(content, dtype=np_dtype).reshape(shape)
    return torch.from_numpy(array.astype(np_dtype.newbyteorder("="), copy=True))
