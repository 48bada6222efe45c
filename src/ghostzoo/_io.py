"""Small file helpers shared by the CLI, the engine and the benchmarks."""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List

from .errors import GhostzooError


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): libraries raise
    errors of many lines, and the user gets one."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def check_writable_folder(path: str | os.PathLike, option: str) -> None:
    """Refuse an output folder that could not be created or written, before the work that fills it (an
    hour of timing, an epoch of training) rather than after; creates nothing, so a refused run leaves
    nothing behind."""
    _check_folder(Path(path).absolute(), option, path)


def check_writable_file(path: str | os.PathLike, option: str) -> None:
    """Refuse an output file that could not be written (a folder by that name, a parent that is a file
    or read-only), before the work whose result it holds; creates nothing."""
    if Path(path).is_dir():
        raise GhostzooError(f"{option} {path} is a folder: name a file to write")
    _check_folder(Path(path).absolute().parent, option, path)


def _check_folder(target: Path, option: str, shown: str | os.PathLike) -> None:
    existing = next(p for p in [target, *target.parents] if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise GhostzooError(f"{option} {shown}: {existing} is not a writable folder")


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to a temp file beside ``path`` and rename it, so readers never see half a file."""
    with atomic_paths(path) as (tmp,):
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """The bytes counterpart of :func:`write_text_atomic`."""
    with atomic_paths(path) as (tmp,):
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


@contextmanager
def atomic_paths(*paths: str | os.PathLike) -> Iterator[List[Path]]:
    """Temp paths for files that must appear together (an OpenVINO ``.xml`` + ``.bin``) or not at all.

    Yields one temp path per target, with the target's file name, in a hidden folder beside the
    first target (writers that derive one file's name from another's, as OpenVINO does, keep
    working). When the block succeeds the files are renamed onto the targets in the given order
    (put the file readers open first last); on any error nothing is left behind.
    """
    targets = [Path(p) for p in paths]
    parent, prefix = targets[0].parent, f".{targets[0].name}."
    parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(parent, prefix)
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", suffix=".tmp", dir=parent))
    try:
        temps = [folder / t.name for t in targets]
        yield temps
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _remove_orphans(parent: Path, prefix: str) -> None:
    """Delete the temp folders that writers of the same target left when they were killed outright
    (SIGKILL, power loss): their names carry a process id that no longer runs."""
    for old in parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = old.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(old, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextmanager
def console_silenced() -> Iterator[None]:
    """Send the process's stdout / stderr to /dev/null meanwhile: torch's ONNX exporter prints whole
    graphs there from C++ when it fails (its log switch is always on), and the user gets one line instead."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
        yield
    finally:
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
