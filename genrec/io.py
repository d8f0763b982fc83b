"""Atomic file writes, write checks, run-directory containment and JSON helpers shared by every stage that writes.

Every write through :func:`atomic_path` (and so :func:`write_json`) turns a full disk, a read-only
file system, missing permissions or a path under a file into one :class:`UnwritablePathError`
line naming the path and what to do (:func:`io_errors`); :func:`probe_writable` finds those
before any work starts.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from genrec.config import ConfigError

STEM_CHARS = 40  # the readable part of a file name derived from an id; a hash keeps it unique


class UnsafePathError(ValueError):
    """A path that would land outside the directory a stage is allowed to write into."""


class UnwritablePathError(ConfigError):
    """A path genrec cannot write (full disk, read-only file system, permissions, a file in the way)."""


# errno -> (what is wrong, what to do). Only errors that say "this place cannot be written" are
# translated: any other OSError (a network error, a missing input) keeps its own type and message.
WRITE_ERRORS = {
    errno.ENOSPC: ("no space left on the device", "free some space and rerun (finished outputs are kept and reused)"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space and rerun (finished outputs are kept and reused)"),
    errno.EFBIG: ("the file is too large for this file system", "write to another file system"),
    errno.EROFS: ("the file system is read-only", "give a directory on a writable file system"),
    errno.EACCES: ("permission denied", "make it writable for this user, or give another directory"),
    errno.EPERM: ("operation not permitted", "make it writable for this user, or give another directory"),
    errno.ENOTDIR: ("a file is in the way", "give a path whose parents are directories"),
    errno.EEXIST: ("a file is in the way", "give a path whose parents are directories"),
    errno.EISDIR: ("it is a directory", "remove it or give another path"),
}
# How Rust-backed libraries (safetensors, tokenizers) print an OSError inside their own exception type.
RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _errno(err: BaseException) -> int | None:
    if isinstance(err, OSError):
        return err.errno
    found = RUST_OS_ERROR.search(str(err))
    return int(found.group(1)) if found else None


def _concerns(err: BaseException, path: Path) -> bool:
    """Whether ``err`` is about writing ``path``: it names no file, or ``path``, a parent, a file inside it or
    its :func:`atomic_path` temporary (an error about reading another file is not a write error)."""
    name = getattr(err, "filename", None)
    if name is None:
        return True
    named = Path(os.fsdecode(name))
    temporary = named.parent == path.parent and named.name.startswith(f".{path.name}.")
    return named == path or named in path.parents or path in named.parents or temporary


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest of ``path`` and its parents that exists and is not a directory."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


@contextmanager
def io_errors(path: str | Path) -> Iterator[None]:
    """Turn an error writing ``path`` into one :class:`UnwritablePathError` line naming it and what to do.

    Covers OSErrors (ENOSPC, EDQUOT, EROFS, EACCES, EPERM, ENOTDIR, ...) and the same errors inside a
    Rust-backed library's exception (safetensors' ``... (os error 28)``). Errors about another file, and
    other errnos, pass unchanged.
    """
    path = Path(path)
    try:
        yield
    except UnwritablePathError:
        raise
    except Exception as err:
        code = _errno(err)
        if code not in WRITE_ERRORS or not _concerns(err, path):
            raise
        problem, remedy = WRITE_ERRORS[code]
        if code in (errno.ENOTDIR, errno.EEXIST):
            blocking = _file_in_the_way(path)
            if blocking is None:  # EEXIST from something else than a file where a directory belongs
                raise
            problem = f"{blocking} is a file, not a directory"
        raise UnwritablePathError(f"cannot write {path}: {problem}; {remedy}") from err


def probe_writable(directory: str | Path) -> Path:
    """Create ``directory`` (and its parents) if needed, then write, fsync and remove a probe file in it.

    Run before any work (training, generation), so a path that cannot be written fails in the first
    second, not after the fit. Returns the directory.

    Raises:
        UnwritablePathError: read-only file system, missing permissions, a file where a directory
            belongs, a full disk; the message names the path and what to do.
    """
    directory = Path(directory)
    probe = directory / f".genrec-probe-{secrets.token_hex(4)}"
    with io_errors(directory):
        directory.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, b"genrec write probe\n")
            os.fsync(descriptor)  # a disk that takes the bytes into the page cache but cannot store them fails here
        finally:
            os.close(descriptor)
            os.unlink(probe)
    return directory


def path_within(root: str | Path, path: str | Path) -> Path:
    """``path`` (absolute, or relative to ``root``) resolved; raises :class:`UnsafePathError` if it escapes ``root``.

    Both sides are resolved (``..`` and symbolic links followed), so neither ``../x`` in a name
    nor a link inside the run directory can carry a write elsewhere.
    """
    base = Path(root).resolve()
    resolved = (base / path).resolve()
    if not resolved.is_relative_to(base):
        raise UnsafePathError(f"refusing to write {resolved}: it lies outside the run directory {base}")
    return resolved


def safe_stem(value: Any, max_chars: int = STEM_CHARS) -> str:
    """A file-name stem for an id from the data: its safe characters (capped) plus a short hash of the raw id.

    ``../../x`` becomes ``x-<hash>``, a URL ``https-example.com-a-b-<hash>``: only letters, digits,
    ``.``, ``_`` and ``-``, never a leading dot, at most ``max_chars + 9`` characters. The hash is
    of the id's type and value, so ids that sanitise alike (``a/b`` and ``a_b``; ``1`` and ``"1"``)
    still get different names.
    """
    value = value.item() if hasattr(value, "item") and not isinstance(value, str | bytes) else value  # numpy scalars
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", str(value)).strip(".-")[:max_chars].rstrip(".-")
    digest = hashlib.blake2b(f"{type(value).__name__}:{value}".encode(), digest_size=4).hexdigest()
    return f"{text}-{digest}" if text else digest


@contextmanager
def atomic_path(path: str | Path, root: str | Path | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    A crash mid-write leaves the previous file (or nothing), never half a file. The file is
    created with mode 0666 less the process umask, like any ``open(path, "w")``. With ``root``,
    ``path`` must lie inside it (:func:`path_within`). A write error (disk full, read-only, ...)
    in the block or the rename is an :class:`UnwritablePathError` naming ``path`` (:func:`io_errors`).
    """
    path = Path(path) if root is None else path_within(root, path)
    with io_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
            try:
                os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies
                break
            except FileExistsError:
                continue
        try:
            yield temporary
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
