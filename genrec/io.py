"""Atomic file writes, run-directory containment and JSON helpers shared by every stage that writes outputs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STEM_CHARS = 40  # the readable part of a file name derived from an id; a hash keeps it unique


class UnsafePathError(ValueError):
    """A path that would land outside the directory a stage is allowed to write into."""


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
    ``path`` must lie inside it (:func:`path_within`).
    """
    path = Path(path) if root is None else path_within(root, path)
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
