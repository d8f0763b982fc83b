"""Comparing what two run directories hold, their own paths aside (the scale-out tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.numpy import load_file

RESULTS_DIR = ".prefect"  # Prefect's task results: keyed by inputs that name the run directory
# Encoding the catalogue in batches changes the encoder's batch shapes, and with them the last
# bit of some vectors (measured: 6e-8 on the tiny CLIP); every other file is compared exactly.
EMBEDDING_ATOL = 1e-6


def run_files(run_dir: str | Path) -> dict[str, Any]:
    """Relative path -> content of every file under ``run_dir`` but Prefect's results.

    Parquet tables become JSON records and JSON files text, with the run directory's own path
    read as ``<run>``; safetensors files become their arrays; other files (PNGs) stay bytes.
    """
    run_dir = Path(run_dir)
    files: dict[str, Any] = {}
    for path in sorted(run_dir.rglob("*")):
        relative = path.relative_to(run_dir)
        if not path.is_file() or relative.parts[0] == RESULTS_DIR:
            continue
        if path.suffix == ".parquet":
            text = pd.read_parquet(path).to_json(orient="records", default_handler=str)
            files[str(relative)] = text.replace(str(run_dir).replace("/", "\\/"), "<run>")
        elif path.suffix == ".json":
            files[str(relative)] = path.read_text().replace(str(run_dir), "<run>")
        elif path.suffix == ".safetensors":
            files[str(relative)] = load_file(path)
        else:
            files[str(relative)] = path.read_bytes()
    return files


def assert_same_run_files(expected_dir: str | Path, got_dir: str | Path) -> None:
    """The same file names; the same contents (vectors within :data:`EMBEDDING_ATOL`)."""
    expected, got = run_files(expected_dir), run_files(got_dir)
    assert sorted(got) == sorted(expected)
    for name, content in expected.items():
        if isinstance(content, dict):
            assert sorted(got[name]) == sorted(content), name
            for key, array in content.items():
                assert got[name][key].dtype == array.dtype and got[name][key].shape == array.shape, (name, key)
                np.testing.assert_allclose(got[name][key], array, rtol=0, atol=EMBEDDING_ATOL, err_msg=name)
        else:
            assert got[name] == content, name
