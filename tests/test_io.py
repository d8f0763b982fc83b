"""genrec.io: atomic writes honour the umask, cannot leave the run directory, and fail in one line naming the path."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from genrec.config import ConfigError
from genrec.io import (
    UnsafePathError,
    UnwritablePathError,
    atomic_path,
    io_errors,
    path_within,
    probe_writable,
    safe_stem,
    write_json,
)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_honour_the_umask(tmp_path: Path, umask: int, mode: int):
    previous = os.umask(umask)
    try:
        write_json(tmp_path / "metrics.json", {"a": 1})
        with atomic_path(tmp_path / "table.bin") as temporary:
            temporary.write_bytes(b"x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "table.bin").stat().st_mode) == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "table.bin"]


def test_a_failed_block_leaves_the_old_file_and_no_temporary(tmp_path: Path):
    write_json(tmp_path / "a.json", [1])
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.json") as temporary:
        temporary.write_text("half")
        raise RuntimeError
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"] and json.loads((tmp_path / "a.json").read_text()) == [1]


def test_paths_escaping_the_run_directory_are_refused(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    assert path_within(run, "images/a.png") == (run / "images" / "a.png").resolve()
    assert path_within(run, run / "x" / ".." / "y") == (run / "y").resolve()
    for escaping in ("../x", "images/../../x", tmp_path / "elsewhere", "/etc/passwd"):
        with pytest.raises(UnsafePathError, match="outside the run directory"):
            path_within(run, escaping)
    (run / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafePathError, match="outside the run directory"):
        path_within(run, "link/x")
    with pytest.raises(UnsafePathError), atomic_path(run / ".." / "x.json", root=run) as temporary:
        temporary.write_text("{}")
    assert not (tmp_path / "x.json").exists()


def test_safe_stems_are_plain_short_and_distinct():
    ids = ["../../../../x", "https://example.com/" + "a/" * 300, "a/b", "a_b", 1, "1", ".", "", "Amélie"]
    stems = [safe_stem(value) for value in ids]
    assert len(set(stems)) == len(ids)
    assert all(len(stem) <= 49 and stem == Path(stem).name and not stem.startswith(".") for stem in stems)
    assert all(set(stem) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") for stem in stems)
    assert stems[0].startswith("x-") and stems[1].startswith("https-example.com-a-a-")
    assert safe_stem(5) == safe_stem(5)  # stable, so a rerun finds its files


def test_probe_writable_creates_the_directory_and_leaves_nothing(tmp_path: Path):
    run = probe_writable(tmp_path / "a" / "run")
    assert run.is_dir() and list(run.iterdir()) == []
    assert probe_writable(run) == run  # an existing directory is fine too


def test_a_path_under_a_file_or_naming_a_file_is_refused_naming_the_file(tmp_path: Path):
    blocker = tmp_path / "FILE"
    blocker.write_text("x")
    for path in (blocker / "x", blocker / "x" / "y", blocker):
        with pytest.raises(UnwritablePathError) as err:
            probe_writable(path)
        assert str(err.value) == (
            f"cannot write {path}: {blocker} is a file, not a directory; give a path whose parents are directories"
        )
    with pytest.raises(UnwritablePathError, match=f"cannot write {blocker / 'x' / 'a.json'}: {blocker} is a file"):
        write_json(blocker / "x" / "a.json", {})


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (errno.ENOSPC, "no space left on the device; free some space and rerun (finished outputs are kept and reused)"),
        (errno.EROFS, "the file system is read-only; give a directory on a writable file system"),
        (errno.EACCES, "permission denied; make it writable for this user, or give another directory"),
    ],
)
def test_write_errors_become_one_line_naming_the_path(tmp_path: Path, monkeypatch, code: int, message: str):
    write_json(tmp_path / "metrics.json", {"kept": True})

    def failing(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", failing)
        with pytest.raises(UnwritablePathError) as err:
            write_json(tmp_path / "metrics.json", {"kept": False})
    assert str(err.value) == f"cannot write {tmp_path / 'metrics.json'}: {message}"
    assert isinstance(err.value, ConfigError) and "\n" not in str(err.value)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"kept": True}  # the finished file stays valid
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # and no temporary is left
    with monkeypatch.context() as patch:
        patch.setattr(os, "open", failing)
        with pytest.raises(UnwritablePathError, match=f"cannot write {tmp_path / 'new'}: {message.split(';')[0]}"):
            probe_writable(tmp_path / "new")


def test_a_library_error_carrying_an_os_error_is_translated_and_others_pass(tmp_path: Path):
    target = tmp_path / "model.safetensors"
    full = pytest.raises(UnwritablePathError, match=r"model\.safetensors: no space left on the device")
    with full, atomic_path(target):
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
    with pytest.raises(FileNotFoundError), atomic_path(target):
        (tmp_path / "an-input.csv").read_text()  # reading another file is no write error
    with pytest.raises(PermissionError), io_errors(target):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path.parent / "elsewhere"))
    with pytest.raises(ConnectionRefusedError), io_errors(target):
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
