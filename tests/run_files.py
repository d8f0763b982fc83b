"""Comparing what two run directories hold, their own paths and timings aside (the scale-out tests).

Running a stage in batches changes the shapes of the encoder's and the diffusion model's
batches, and with them the last bits of some floats: measured, 6e-8 in a few embedding
vectors and one channel of one pixel by one level in 1 of 20 tiny-model images, which moves
the CLIP score by 4e-5. So vectors are compared to :data:`VECTOR_ATOL`, PNG pixels to
:data:`PIXEL_ATOL` (their metadata exactly), other floats to :data:`FLOAT_ATOL`; everything
else (ids, ranks, prompts, texts, counts, file names) exactly. Timings and weight hashes are left out.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from safetensors.numpy import load_file

RESULTS_DIR = ".prefect"  # Prefect's task results: keyed by inputs that name the run directory
LOCK_FILE = ".genrec-run.lock"  # who holds (or last held) the run: a pid and a time
# The report is rendered from the files compared here (metrics.json, the tables) and shows the fit's timings.
REPORT = frozenset({"report.html", "report_assets"})
TIMINGS = frozenset({"seconds", "fit_seconds", "seconds_per_epoch"})  # wall-clock fields of the fit report
# A manifest's hash of a weight file: the weights themselves are compared, to VECTOR_ATOL (a fit on a Ray
# worker can differ in the last bits, which changes the hash).
LEFT_OUT = TIMINGS | {"sha256"}
VECTOR_ATOL = 1e-6
PIXEL_ATOL = 1
FLOAT_ATOL = 1e-4


def _comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _comparable(item) for key, item in value.items() if key not in LEFT_OUT}
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    return value


def run_files(run_dir: str | Path) -> dict[str, Any]:
    """Relative path -> content of every file under ``run_dir`` but Prefect's results and the report.

    Parquet tables become lists of records and JSON files objects, with the run directory's
    own path read as ``<run>`` and timings and weight hashes dropped; safetensors files become their arrays, PNGs
    (pixels, metadata); other files stay bytes.
    """
    run_dir = Path(run_dir)
    files: dict[str, Any] = {}
    for path in sorted(run_dir.rglob("*")):
        relative = path.relative_to(run_dir)
        if not path.is_file() or relative.parts[0] in (RESULTS_DIR, LOCK_FILE) or relative.parts[0] in REPORT:
            continue
        if path.suffix in (".parquet", ".json"):
            text = pd.read_parquet(path).to_json(orient="records") if path.suffix == ".parquet" else path.read_text()
            value = json.loads(text.replace(str(run_dir).replace("/", "\\/"), "<run>").replace(str(run_dir), "<run>"))
            files[str(relative)] = _comparable(value)
        elif path.suffix == ".safetensors":
            files[str(relative)] = load_file(path)
        elif path.suffix == ".png":
            with Image.open(path) as image:
                files[str(relative)] = (np.asarray(image).astype(np.int16), dict(image.text))
        else:
            files[str(relative)] = path.read_bytes()
    return files


def _assert_close(got: Any, expected: Any, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(expected), where
        for key in expected:
            _assert_close(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), where
        for index, (left, right) in enumerate(zip(got, expected, strict=True)):
            _assert_close(left, right, f"{where}[{index}]")
    elif isinstance(expected, float) and not isinstance(got, bool):
        assert isinstance(got, int | float) and math.isclose(got, expected, rel_tol=0, abs_tol=FLOAT_ATOL), (
            where,
            got,
            expected,
        )
    else:
        assert got == expected, (where, got, expected)


def assert_same_run_files(expected_dir: str | Path, got_dir: str | Path) -> None:
    """The same file names, and the same contents within the tolerances of this module."""
    expected, got = run_files(expected_dir), run_files(got_dir)
    assert sorted(got) == sorted(expected)
    for name, content in expected.items():
        if name.endswith(".safetensors"):
            assert sorted(got[name]) == sorted(content), name
            for key, array in content.items():
                assert got[name][key].dtype == array.dtype and got[name][key].shape == array.shape, (name, key)
                np.testing.assert_allclose(got[name][key], array, rtol=0, atol=VECTOR_ATOL, err_msg=name)
        elif name.endswith(".png"):
            (pixels, metadata), (expected_pixels, expected_metadata) = got[name], content
            assert metadata == expected_metadata, name
            assert pixels.shape == expected_pixels.shape and np.abs(pixels - expected_pixels).max() <= PIXEL_ATOL, name
        elif isinstance(content, bytes):
            assert got[name] == content, name
        else:
            _assert_close(got[name], content, name)
