"""TensorFlow V2 checkpoint bundles (``PREFIX.index`` + ``PREFIX.data-00000-of-00001``), read without TensorFlow.

``tf.train.Saver`` (``write_version=V2``) writes the tensors' raw little-endian bytes back to back
in the ``.data`` shard and a table of contents in ``.index``: a LevelDB-format SSTable whose keys
are the variable names (sorted; the empty key holds the bundle header) and whose values are
``BundleEntryProto`` messages (dtype, shape, shard, offset, size, checksum). Both formats are small
and stable, so they are parsed here directly: a table reader, a protobuf varint decoder, and numpy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import numpy as np
import torch

from ..errors import CheckpointError
from ._protobuf import fields, varint

_MAGIC = bytes.fromhex("57fb808b247547db")
_FOOTER = 48
_BLOCK_TRAILER = 5  # compression type byte + masked CRC32C
# tensorflow/core/framework/types.proto DataType -> numpy
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 10: np.bool_, 19: np.float16}


def _block_entries(table: bytes, offset: int, size: int) -> Iterator[Tuple[bytes, bytes]]:
    """The (key, value) entries of one SSTable block; keys are prefix-compressed against the previous one."""
    if table[offset + size] != 0:
        raise ValueError("compressed SSTable blocks are not written by tf.train.Saver")
    block = table[offset : offset + size]
    restarts = int.from_bytes(block[-4:], "little")
    end, pos, key = len(block) - 4 * (restarts + 1), 0, b""
    while pos < end:
        shared, pos = varint(block, pos)
        unshared, pos = varint(block, pos)
        value_len, pos = varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        yield key, block[pos : pos + value_len]
        pos += value_len


def _handle(buf: bytes, pos: int = 0) -> Tuple[int, int, int]:
    offset, pos = varint(buf, pos)
    size, pos = varint(buf, pos)
    return offset, size, pos


def _index_entries(index: bytes) -> Iterator[Tuple[str, bytes]]:
    if len(index) < _FOOTER or index[-8:] != _MAGIC:
        raise ValueError("no SSTable footer (not a TensorFlow .index file)")
    footer = index[-_FOOTER:]
    _, _, pos = _handle(footer)  # the metaindex block: empty in checkpoint bundles
    offset, size, _ = _handle(footer, pos)
    for _, block_handle in _block_entries(index, offset, size):
        data_offset, data_size, _ = _handle(block_handle)
        for key, value in _block_entries(index, data_offset, data_size):
            yield key.decode("utf-8"), value


def _entry(value: bytes) -> Tuple[int, List[int], int, int, int]:
    """dtype, shape, shard, offset and size of a BundleEntryProto."""
    dtype, shape, shard, offset, size = 0, [], 0, 0, 0
    for number, _, field in fields(value):
        if number == 1:
            dtype = field
        elif number == 2:  # TensorShapeProto: repeated Dim dim = 2 { int64 size = 1 }
            shape = [dict((n, v) for n, _, v in fields(dim)).get(1, 0) for n, _, dim in fields(field) if n == 2]
        elif number == 3:
            shard = field
        elif number == 4:
            offset = field
        elif number == 5:
            size = field
        elif number == 7:
            raise ValueError("partitioned variables (slices) are not supported")
    return dtype, shape, shard, offset, size


def bundle_prefix(path: Path) -> Path | None:
    """The bundle prefix of ``path`` when it names a V2 bundle (``PREFIX``, ``PREFIX.index`` or its data shard)."""
    text = str(path)
    for suffix in (".index", ".data-00000-of-00001"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    prefix = Path(text)
    if Path(f"{prefix}.index").is_file() and Path(f"{prefix}.data-00000-of-00001").is_file():
        return prefix
    return None


def read_tf_bundle(prefix: Path) -> Dict[str, torch.Tensor]:
    """Every variable of a single-shard V2 bundle, by name, in TensorFlow's layout (HWIO kernels)."""
    index_path, data_path = Path(f"{prefix}.index"), Path(f"{prefix}.data-00000-of-00001")
    try:
        index = index_path.read_bytes()
        entries = {k: _entry(v) for k, v in _index_entries(index) if k}  # the empty key is the header
        data_size = data_path.stat().st_size
        out = {}
        with open(data_path, "rb") as data:
            for name, (dtype, shape, shard, offset, size) in entries.items():
                out[name] = _tensor(data, data_size, name, dtype, shape, shard, offset, size)
    except (ValueError, OSError, IndexError) as e:
        raise CheckpointError(f"cannot read TensorFlow checkpoint {prefix}: {e}") from None
    return out


def _tensor(data, data_size: int, name: str, dtype: int, shape: List[int], shard: int, offset: int, size: int):
    if dtype not in _DTYPES:
        raise ValueError(f"{name}: TensorFlow dtype {dtype} is not supported")
    if shard != 0:
        raise ValueError(f"{name} is in shard {shard}; only single-shard bundles are supported")
    np_dtype = np.dtype(_DTYPES[dtype]).newbyteorder("<")
    if size != int(np.prod(shape, dtype=np.int64)) * np_dtype.itemsize or offset + size > data_size:
        raise ValueError(f"{name}: {size} bytes at {offset} do not hold a {shape} {np_dtype} tensor")
    data.seek(offset)
    array = np.frombuffer(data.read(size), dtype=np_dtype).reshape(shape)
    return torch.from_numpy(array.astype(np_dtype.newbyteorder("="), copy=True))
