"""The encode, images and describe stages cut into batches that run anywhere, and the merges that join them.

Plain functions (no Prefect) that the ``pipeline`` flow maps over batches when it runs with
``batches > 1``, e.g. on a Ray cluster. Every batch writes its output to the run directory (the
storage every worker reaches), never to a worker's memory, and returns a path:

- :func:`encode_items_batch`: batch ``b`` of ``n`` of the catalogue (contiguous ``item_idx``
  ranges) through the encoder, into ``<run_dir>/batches/encode-<b>/``, an embedding cache holding
  only that batch's items that the run's cache lacks.
- :func:`merge_item_batches`: those caches added to the run's embedding cache in one atomic write.
- :func:`generate_batch`: batch ``b`` of ``n`` of the recommended users (contiguous in the
  recommendations table's user order): the images and describe stages on their rows, in
  ``<run_dir>/batches/generate-<b>/``, reading the run's embedding cache.
- :func:`merge_generated_batches`: the batches' PNGs moved into ``<run_dir>/images/``, their image
  and description tables concatenated in batch order, their grounding reports summed, their
  stage records written to config.json; then the batch directories are removed. The run
  directory then holds what the two stages write in one process.

Image noise seeds depend on (item, seed) only and descriptions on (generator, item, profile), so
cutting the users into batches changes no image and no text.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.config import ConfigError
from genrec.encoders import EmbeddingCache, create_encoder
from genrec.encoders.base import ItemParts
from genrec.encoders.catalogue import encode_parts
from genrec.encoders.items import content_keys, image_paths, item_texts
from genrec.pipelines import stages
from genrec.pipelines.settings import RunSettings
from genrec.run_directory import RunDirectory

GENERATED = (
    RunDirectory.IMAGES,
    RunDirectory.BASELINE_IMAGES,
    RunDirectory.DESCRIPTIONS,
    RunDirectory.BASELINE_DESCRIPTIONS,
)
GENERATED_REPORTS = (RunDirectory.DESCRIPTIONS_REPORT, RunDirectory.BASELINE_DESCRIPTIONS_REPORT)
# Batches in threads of one process (Prefect's default task runner) run one at a time: building
# models is not thread-safe (accelerate's empty-weight init patches torch.nn globally, and a
# concurrent build fails with "Cannot copy out of meta tensor"). On Ray each batch has its own process.
_ONE_BATCH_PER_PROCESS = threading.Lock()


def batch_rows(n: int, batch: int, n_batches: int) -> np.ndarray:
    """Positions ``0..n-1`` of batch ``batch`` of ``n_batches`` contiguous, near-equal batches."""
    if n_batches < 1:
        raise ConfigError(f"n_batches must be >= 1, got {n_batches}")
    if not 0 <= batch < n_batches:
        raise ConfigError(f"batch must be in 0..{n_batches - 1}, got {batch}")
    return np.array_split(np.arange(n), n_batches)[batch]


def encode_items_batch(run_dir: str | Path, settings: RunSettings, batch: int, n_batches: int) -> Path:
    """Encode batch ``batch`` of ``n_batches`` of the catalogue's items that the run's cache lacks.

    Writes an embedding cache of those items to ``<run_dir>/batches/encode-<batch>/`` and returns
    that directory (empty of vectors when the run's cache already holds them all).
    """
    run = RunDirectory(run_dir)
    with _ONE_BATCH_PER_PROCESS:
        dataset, model = stages.load_run_dataset(settings), create_encoder(settings.generation.encoder)
        items = dataset.items.iloc[batch_rows(dataset.n_items, batch, n_batches)]
        texts = item_texts(items)
        paths = image_paths(items) if model.supports_images else [None] * len(texts)
        keys = content_keys(texts, paths)  # [n, 16]
        cache = run.cache_dir(settings.generation.cache_dir)
        known = EmbeddingCache(cache, model.identity, model.dim).lookup(keys)
        todo = np.flatnonzero(known < 0)
        out = run / RunDirectory.BATCHES / f"encode-{batch:05d}"
        shutil.rmtree(out, ignore_errors=True)  # a batch is rewritten whole
        part = EmbeddingCache(out, model.identity, model.dim)
        if len(todo):
            labels = [f"item {item_id!r}" for item_id in items["item_id"].to_numpy()[todo].tolist()]
            fresh = encode_parts(model, [texts[i] for i in todo], [paths[i] for i in todo], labels)
            part.store(keys[todo], fresh)
        out.mkdir(parents=True, exist_ok=True)
        return out


def merge_item_batches(run_dir: str | Path, settings: RunSettings, batch_dirs: list[str | Path]) -> Path:
    """Add the batches' vectors to the run's embedding cache (one atomic write); remove them; return the cache dir."""
    run = RunDirectory(run_dir)
    model = create_encoder(settings.generation.encoder)
    target = run.cache_dir(settings.generation.cache_dir)
    cache = EmbeddingCache(target, model.identity, model.dim)
    parts = [EmbeddingCache(directory, model.identity, model.dim) for directory in batch_dirs]
    if any(len(part) for part in parts):
        cache.store(
            np.concatenate([part.keys for part in parts]),
            ItemParts(
                np.concatenate([part.text for part in parts]),
                np.concatenate([part.image for part in parts]),
                np.concatenate([part.status for part in parts]),
            ),
        )
    for directory in batch_dirs:
        shutil.rmtree(directory, ignore_errors=True)
    _remove_if_empty(run / RunDirectory.BATCHES)
    return target


def generate_batch(run_dir: str | Path, settings: RunSettings, batch: int, n_batches: int) -> Path:
    """The images and describe stages for batch ``batch`` of ``n_batches`` of the recommended users.

    Writes into ``<run_dir>/batches/generate-<batch>/`` (its recommendations rows and the run's request, images/, the
    image and description tables and reports) and returns that directory.
    """
    run = RunDirectory(run_dir)
    table = run.read_recommendations()
    users = table["user_id"].unique()
    chosen = users[batch_rows(len(users), batch, n_batches)]
    out = RunDirectory(run / RunDirectory.BATCHES / f"generate-{batch:05d}")
    out.write_table(RunDirectory.RECOMMENDATIONS, table[table["user_id"].isin(chosen)])
    out.write_request(run.read_request())  # the descriptions answer the run's request
    # The batch reads the run's embedding cache, not one of its own.
    shared = settings.with_values({"generation": {"cache_dir": str(run.cache_dir(settings.generation.cache_dir))}})
    with _ONE_BATCH_PER_PROCESS:
        stages.generate_images(out.path, shared, False)
        stages.describe(out.path, shared, False)
    return out.path


def merge_generated_batches(run_dir: str | Path, settings: RunSettings, batch_dirs: list[str | Path]) -> Path:
    """Join the :func:`generate_batch` outputs into the run directory as the two stages write them in one
    process; returns the descriptions table."""
    from genrec.grounding.guard import GroundingReport

    run = RunDirectory(run_dir)
    batches = [RunDirectory(directory) for directory in batch_dirs]
    if not batches:
        raise ConfigError(f"{run.path}: no generate batch to merge")
    for batch in batches:
        if not batch.has(RunDirectory.DESCRIPTIONS_REPORT):
            raise ConfigError(f"{batch.path}: not a finished generate batch (no {RunDirectory.DESCRIPTIONS_REPORT})")
    for name in GENERATED:
        tables = [batch.read_table(name) for batch in batches]
        if name in (RunDirectory.IMAGES, RunDirectory.BASELINE_IMAGES):
            for batch, table in zip(batches, tables, strict=True):
                table["path"] = [_move_image(Path(path), batch.path, run.path) for path in table["path"]]
        run.write_table(name, pd.concat(tables, ignore_index=True))
    counted = {field.name for field in fields(GroundingReport)}
    for name in GENERATED_REPORTS:
        payloads = [batch.read_json(name) for batch in batches]
        report = GroundingReport()
        for payload in payloads:
            report.merge(GroundingReport(**{key: value for key, value in payload.items() if key in counted}))
        head = {"generator": payloads[0]["generator"], "personalized": payloads[0]["personalized"]}
        run.write_json(name, head | report.to_dict())
    recorded = batches[0].read_config()
    run.update_config("settings", settings.model_dump(mode="json"))
    for stage in ("images", "describe"):
        run.update_config(stage, recorded[stage])
    for batch in batches:
        shutil.rmtree(batch.path, ignore_errors=True)
    _remove_if_empty(run / RunDirectory.BATCHES)
    return run / RunDirectory.DESCRIPTIONS


def _move_image(path: Path, batch_dir: Path, run_dir: Path) -> str:
    """Move a batch PNG to its place under the run directory (idempotent); return its path as the stage writes it."""
    target = run_dir / path.relative_to(batch_dir)
    if path.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        path.replace(target)
    elif not target.is_file():
        raise ConfigError(f"{path}: image of a generate batch is missing (and not yet at {target})")
    return str(target)


def _remove_if_empty(directory: Path) -> None:
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
