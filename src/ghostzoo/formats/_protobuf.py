"""The two pieces of the protobuf wire format that checkpoint files need: varints and a field walker."""

from __future__ import annotations

from typing import Iterator, List, Tuple


def varint(buf: bytes, pos: int) -> Tuple[int, int]:
    """A base-128 varint at ``pos``: its value and the position after it."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("varint runs past the end")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def fields(msg: bytes) -> Iterator[Tuple[int, int, object]]:
    """(field number, wire type, value) of a protobuf message: ints for varint / fixed fields, bytes
    for length-delimited ones (wire types 0, 1, 2 and 5: all that checkpoint files use)."""
    pos = 0
    while pos < len(msg):
        tag, pos = varint(msg, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = varint(msg, pos)
        elif wire == 1:
            value, pos = int.from_bytes(msg[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            size, pos = varint(msg, pos)
            if pos + size > len(msg):
                raise ValueError("a field runs past the end of its message (a truncated file?)")
            value, pos = msg[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = int.from_bytes(msg[pos : pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"protobuf wire type {wire} is not used by checkpoint bundles")
        yield number, wire, value


def varints(buf: bytes) -> List[int]:
    """A packed repeated varint field's values."""
    out, pos = [], 0
    while pos < len(buf):
        value, pos = varint(buf, pos)
        out.append(value)
    return out
