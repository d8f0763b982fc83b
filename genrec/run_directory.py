"""The run directory: one object that owns every file name of a run and its atomic reads and writes.

The stages of a run talk through one directory, never through objects in memory, so a Prefect
task passes paths only and a killed run resumes. Every writer (the stages in
:mod:`genrec.pipelines.stages`, the image and description stages, the batch merges) and every
reader (the report, :mod:`genrec.evaluation.run_contents`) names files through this class::

    config.json                    the run's settings and each stage's record (e.g. the ranker's reuse key)
    users.json                     the selected users
    model/ (+ train.json)          the saved ranker and its fit record
    recommendations.parquet        user_id, rank, item_id, item_idx, score, title
    request.json                   the run's request as the recommend stage read it (genrec.requests.ParsedRequest)
    images/ + images.parquet       personalised PNGs; images_baseline.parquet: the non-personalised baseline
    descriptions.parquet           descriptions (+ descriptions_report.json); the baseline's beside them
    metrics.json                   ranking (test), image and description metrics
    report.html, report_assets/    the offline report
    cache/                         the embedding cache (unless the run names another)
    batches/                       mapped batches of a flow run, removed by their merges
    .prefect/                      a flow run's persisted task results
    .genrec-run.lock               the one-writer lock of the run in progress (:meth:`RunDirectory.writing`)

Writes are atomic (a temporary file, then a rename) and stay inside the directory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genrec.config import ConfigError
from genrec.io import atomic_path, probe_writable, read_json, write_json
from genrec.run_lock import LOCK_FILE, RunLock


def json_ready(value: Any) -> Any:
    """NaN -> None (strict JSON), numpy scalars -> Python, recursively."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


class RunDirectory:
    """A run directory: its file names and their atomic reads and writes.

    Constructing one checks only that ``path`` is not an existing file; nothing is created
    until the first write.
    """

    CONFIG = "config.json"
    USERS = "users.json"
    MODEL = "model"
    TRAIN_RECORD = "train.json"  # in MODEL: the reuse key and the fit report of the saved ranker
    RECOMMENDATIONS = "recommendations.parquet"
    REQUEST = "request.json"  # the request the recommendations answer, parsed; absent: none
    IMAGES_DIR = "images"
    BLOCKED_DIR = "blocked"  # under IMAGES_DIR: flagged images, kept for audit apart from the publishable ones
    IMAGES = "images.parquet"
    BASELINE_IMAGES = "images_baseline.parquet"
    DESCRIPTIONS = "descriptions.parquet"
    DESCRIPTIONS_REPORT = "descriptions_report.json"
    BASELINE_DESCRIPTIONS = "descriptions_baseline.parquet"
    BASELINE_DESCRIPTIONS_REPORT = "descriptions_baseline_report.json"
    METRICS = "metrics.json"
    REPORT = "report.html"
    REPORT_ASSETS = "report_assets"
    CACHE = "cache"
    BATCHES = "batches"
    RESULTS = ".prefect"  # a flow run's persisted task results and cache records
    # Left out of the input fingerprint of a stage that reads the whole directory (genrec.flows.tasks):
    # outputs no stage computes from, and config.json, which every stage rewrites with the settings it ran under.
    NOT_INPUTS = frozenset({RESULTS, CACHE, CONFIG, METRICS, REPORT, REPORT_ASSETS, LOCK_FILE})

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"{self.path}: the run directory is an existing file; give a directory (new or a run's)")

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @contextmanager
    def writing(self) -> Iterator[RunLock]:
        """Hold the run's one-writer lock (:class:`~genrec.run_lock.RunLock`) for a whole run, after a probe write.

        A directory that cannot be written (read-only, under a file, no permission) fails here, in
        the first second, with one line naming it; a second run into a directory held by another
        process is refused at once, naming the holder. Re-entrant within the process that holds it
        (a flow's tasks run in its threads).
        """
        probe_writable(self.path)
        with RunLock(self.path) as lock:
            yield lock

    # -- paths --------------------------------------------------------------------------------

    @property
    def model_dir(self) -> Path:
        return self.path / self.MODEL

    @property
    def train_record(self) -> Path:
        return self.model_dir / self.TRAIN_RECORD

    @property
    def images_dir(self) -> Path:
        return self.path / self.IMAGES_DIR

    @property
    def recommendations(self) -> Path:
        return self.path / self.RECOMMENDATIONS

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def report(self) -> Path:
        return self.path / self.REPORT

    def cache_dir(self, cache_dir: str | Path | None = None) -> Path:
        """The embedding cache the run's stages read: ``cache_dir`` when given, else ``cache/`` inside the run."""
        return Path(cache_dir) if cache_dir is not None else self.path / self.CACHE

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    def has_model(self) -> bool:
        """Whether ``model/`` holds a saved ranker (its manifest and weights)."""
        return (self.model_dir / "config.json").is_file() and (self.model_dir / "model.safetensors").is_file()

    # -- JSON ---------------------------------------------------------------------------------

    def read_json(self, name: str, default: Any = None) -> Any:
        path = self.path / name
        return read_json(path) if path.is_file() else default

    def write_json(self, name: str, value: Any) -> Path:
        path = self.path / name
        write_json(path, json_ready(value))
        return path

    def read_config(self) -> dict[str, Any]:
        """The run's config.json (``{}`` before any stage wrote it)."""
        return self.read_json(self.CONFIG, {})

    def update_config(self, section: str, values: Any) -> None:
        """Replace one section of config.json (``settings``, or a stage's record): atomic read-modify-write."""
        self.write_json(self.CONFIG, {**self.read_config(), section: values})

    def read_train_record(self) -> dict[str, Any]:
        return read_json(self.train_record) if self.train_record.is_file() else {}

    def write_users(self, users: list[Any]) -> Path:
        return self.write_json(self.USERS, json_ready(list(users)))

    def read_users(self) -> list[Any]:
        if not self.has(self.USERS):
            raise ConfigError(f"{self.path / self.USERS}: no selected users; run the select-users stage first")
        return self.read_json(self.USERS)

    # -- tables -------------------------------------------------------------------------------

    def write_table(self, name: str, table: pd.DataFrame) -> Path:
        with atomic_path(name, root=self.path) as temporary:  # name: relative to the run directory
            table.to_parquet(temporary, index=False)
        return self.path / name

    def read_table(self, name: str, required: tuple[str, ...] = (), stage: str | None = None) -> pd.DataFrame:
        """A table of the run; a missing file or column is a ConfigError naming the file (and the stage to run)."""
        path = self.path / name
        if not path.is_file():
            hint = f"; run the {stage} stage first" if stage else ""
            raise ConfigError(f"{path}: not found{hint}")
        table = pd.read_parquet(path)
        missing = [column for column in required if column not in table.columns]
        if missing:
            raise ConfigError(f"{path}: missing column(s) {missing}; expected at least {', '.join(required)}")
        return table

    def write_request(self, parsed: dict[str, Any] | None) -> Path:
        """request.json: the run's request as read (``dataclasses.asdict`` of a ParsedRequest); None removes it,
        so a rerun without a request leaves no stale one for describe and the report."""
        if parsed is None:
            (self.path / self.REQUEST).unlink(missing_ok=True)
            return self.path / self.REQUEST
        return self.write_json(self.REQUEST, parsed)

    def read_request(self) -> dict[str, Any] | None:
        """The request the recommendations answer (text, named_items, want_genres, avoid_genres, years, rest,
        notes), or None when the run has none."""
        return self.read_json(self.REQUEST)

    def read_recommendations(self) -> pd.DataFrame:
        return self.read_table(self.RECOMMENDATIONS, ("user_id", "item_id"), stage="recommend")
