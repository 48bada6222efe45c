"""ghostzoo._io: atomic writes leave nothing behind, and clean up after writers that were killed."""

from __future__ import annotations

import os
import signal
import stat

import pytest

from ghostzoo._io import atomic_paths, check_writable_file, write_text_atomic
from ghostzoo.errors import GhostzooError


def test_a_killed_writers_temp_folder_is_removed_by_the_next_write(tmp_path):
    """A SIGKILL between the temp file and the rename leaves a hidden folder; the next write of the same
    target removes it, and leaves a running writer's folder alone."""
    target = tmp_path / "model.onnx"
    pid = os.fork()  # a writer in another process, without the cost of importing ghostzoo again
    if pid == 0:
        try:
            with atomic_paths(target) as (tmp,):
                tmp.write_bytes(b"x" * 1000)
                os.kill(os.getpid(), signal.SIGKILL)
        finally:
            os._exit(1)  # the child never returns into pytest
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    orphans = list(tmp_path.glob(".model.onnx.*.tmp"))
    assert len(orphans) == 1 and not target.exists()
    with atomic_paths(tmp_path / "model.onnx") as (tmp,):
        live = tmp.parent  # this process's own folder, mid-write
        write_text_atomic(target, "done")  # another write of the same target meanwhile
        assert live.exists() and not orphans[0].exists()
        tmp.write_text("final")
    assert target.read_text() == "final" and not list(tmp_path.glob(".*.tmp"))


def test_written_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "r.json", "{}")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize(
    "name, message",
    [
        ("folder", "--output {path} is a folder: name a file to write"),
        ("file.txt/r.json", "--output {path}: {tmp}/file.txt is not a writable folder"),
        ("file.txt/deeper/r.json", "--output {path}: {tmp}/file.txt is not a writable folder"),
    ],
)
def test_unwritable_output_files_are_refused(tmp_path, name, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("")
    path = tmp_path / name
    with pytest.raises(GhostzooError) as refused:
        check_writable_file(path, "--output")
    assert str(refused.value) == message.format(path=path, tmp=tmp_path)


def test_a_new_file_in_a_new_folder_is_fine(tmp_path):
    check_writable_file(tmp_path / "new" / "deeper" / "r.json", "--output")
    assert list(tmp_path.iterdir()) == []  # checking creates nothing
