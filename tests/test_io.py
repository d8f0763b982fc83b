"""genrec.io: atomic writes honour the umask, and writes cannot leave the run directory."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from genrec.io import UnsafePathError, atomic_path, path_within, safe_stem, write_json


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
