"""The encode and generate stages cut into batches that run anywhere, and the merges that join them (issue 17).

Plain functions (no Prefect) that the ``pipeline`` flow maps over batches when it runs with
``batches > 1``, e.g. on a Ray cluster. Every batch writes its output to the run directory (the
storage every worker reaches), never to a worker's memory, and returns a path:

- :func:`encode_items_batch`: batch ``b`` of ``n`` of the catalogue (contiguous ``item_idx``
  ranges) through the encoder, into ``<run_dir>/batches/encode-<b>/``, an embedding cache holding
  only that batch's items that the run's cache lacks.
- :func:`merge_item_batches`: those caches added to the run's embedding cache in one atomic write.
- :func:`generate_batch`: batch ``b`` of ``n`` of the recommended users (contiguous in the
  recommendations table's user order): :func:`genrec.pipelines.run.generate` on their rows into
  ``<run_dir>/batches/generate-<b>/``, reading the run's embedding cache.
- :func:`merge_generated_batches`: the batches' PNGs moved into ``<run_dir>/images/``, their image
  and description tables concatenated in batch order, their grounding reports summed, the
  ``generate`` section of config.json written; then the batch directories are removed. The run
  directory then holds what one :func:`~genrec.pipelines.run.generate` call writes.

Image noise seeds depend on (item, seed) only and descriptions on (generator, item, profile), so
cutting the users into batches changes no image and no text.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genrec.config import ConfigError
from genrec.data import Dataset
from genrec.encoders import EmbeddingCache, Encoder, create_encoder
from genrec.encoders.base import ItemParts
from genrec.encoders.catalogue import encode_parts
from genrec.encoders.items import content_keys, image_paths, item_texts
from genrec.io import read_json, write_json
from genrec.pipelines import run as gr

BATCHES_DIR = "batches"  # inside the run directory; removed by the merges
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


def run_cache_dir(run_dir: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The embedding cache the run's stages read: ``cache_dir``, else ``<run_dir>/cache``."""
    return Path(cache_dir) if cache_dir is not None else Path(run_dir) / gr.CACHE_DIR


def encode_items_batch(
    dataset: str | Path | Dataset,
    encoder: str,
    run_dir: str | Path,
    batch: int,
    n_batches: int,
    images: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Encode batch ``batch`` of ``n_batches`` of the catalogue's items that the run's cache lacks.

    Writes an embedding cache of those items to ``<run_dir>/batches/encode-<batch>/`` and returns
    that directory (empty of vectors when the run's cache already holds them all).
    """
    gr.check_names(encoder=encoder)
    run_dir = gr.check_run_dir(run_dir)
    with _ONE_BATCH_PER_PROCESS:
        return _encode_items_batch(
            gr._load(dataset, images), create_encoder(encoder), run_dir, batch, n_batches, cache_dir
        )


def _encode_items_batch(
    loaded: Dataset, model: Encoder, run_dir: Path, batch: int, n_batches: int, cache_dir: str | Path | None
) -> Path:
    rows = batch_rows(loaded.n_items, batch, n_batches)
    items = loaded.items.iloc[rows]
    texts = item_texts(items)
    paths = image_paths(items) if model.supports_images else [None] * len(texts)
    keys = content_keys(texts, paths)  # [n, 16]
    known = EmbeddingCache(run_cache_dir(run_dir, cache_dir), model.identity, model.dim).lookup(keys)
    todo = np.flatnonzero(known < 0)
    out = run_dir / BATCHES_DIR / f"encode-{batch:05d}"
    shutil.rmtree(out, ignore_errors=True)  # a batch is rewritten whole
    part = EmbeddingCache(out, model.identity, model.dim)
    if len(todo):
        labels = [f"item {item_id!r}" for item_id in items["item_id"].to_numpy()[todo].tolist()]
        fresh = encode_parts(model, [texts[i] for i in todo], [paths[i] for i in todo], labels)
        part.store(keys[todo], fresh)
    out.mkdir(parents=True, exist_ok=True)
    return out


def merge_item_batches(
    encoder: str, run_dir: str | Path, batch_dirs: list[str | Path], cache_dir: str | Path | None = None
) -> Path:
    """Add the batches' vectors to the run's embedding cache (one atomic write); remove them; return the cache dir."""
    model = create_encoder(encoder)
    target = run_cache_dir(run_dir, cache_dir)
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
    _remove_if_empty(Path(run_dir) / BATCHES_DIR)
    return target


def generate_batch(
    recommendations: str | Path,
    dataset: str | Path | Dataset,
    run_dir: str | Path,
    image_generator: str,
    text_generator: str,
    encoder: str,
    batch: int,
    n_batches: int,
    seed: int = 0,
    images: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    text_generator_overrides: dict[str, Any] | None = None,
) -> Path:
    """:func:`~genrec.pipelines.run.generate` for batch ``batch`` of ``n_batches`` of the recommended users.

    Writes into ``<run_dir>/batches/generate-<batch>/`` (its recommendations rows, images/, the
    image and description tables and reports) and returns that directory.
    """
    run_dir = gr.check_run_dir(run_dir)
    table = gr._read_recommendations(recommendations)
    users = table["user_id"].unique()
    chosen = users[batch_rows(len(users), batch, n_batches)]
    out = run_dir / BATCHES_DIR / f"generate-{batch:05d}"
    out.mkdir(parents=True, exist_ok=True)
    rows = gr._write_table(table[table["user_id"].isin(chosen)], out / gr.RECOMMENDATIONS_TABLE)
    cache = run_cache_dir(run_dir, cache_dir)
    with _ONE_BATCH_PER_PROCESS:
        gr.generate(
            rows,
            dataset,
            out,
            image_generator,
            text_generator,
            encoder,
            seed,
            images,
            progress,
            cache,
            text_generator_overrides,
        )
    return out


def merge_generated_batches(
    recommendations: str | Path, run_dir: str | Path, batch_dirs: list[str | Path]
) -> gr.GeneratedOutputs:
    """Join the :func:`generate_batch` outputs into the run directory, as one ``generate`` call writes them."""
    from genrec.grounding.guard import GroundingReport
    from genrec.pipelines.describe import BASELINE_REPORT, BASELINE_TABLE, DESCRIPTIONS_REPORT, DESCRIPTIONS_TABLE
    from genrec.pipelines.images import BASELINE_IMAGES_TABLE, IMAGES_TABLE

    run_dir = gr.check_run_dir(run_dir)
    batch_dirs = [Path(directory) for directory in batch_dirs]
    if not batch_dirs:
        raise ConfigError(f"{run_dir}: no generate batch to merge")
    for directory in batch_dirs:
        if not (directory / DESCRIPTIONS_REPORT).is_file():
            raise ConfigError(f"{directory}: not a finished generate batch (no {DESCRIPTIONS_REPORT})")
    for name in (IMAGES_TABLE, BASELINE_IMAGES_TABLE):
        tables = []
        for directory in batch_dirs:
            table = pd.read_parquet(directory / name)
            table["path"] = [_move_image(Path(path), directory, run_dir) for path in table["path"]]
            tables.append(table)
        gr._write_table(pd.concat(tables, ignore_index=True), run_dir / name)
    for name in (DESCRIPTIONS_TABLE, BASELINE_TABLE):
        gr._write_table(pd.concat([pd.read_parquet(d / name) for d in batch_dirs], ignore_index=True), run_dir / name)
    counted = {field.name for field in fields(GroundingReport)}
    for name in (DESCRIPTIONS_REPORT, BASELINE_REPORT):
        payloads = [read_json(directory / name) for directory in batch_dirs]
        report = GroundingReport()
        for payload in payloads:
            report.merge(GroundingReport(**{key: value for key, value in payload.items() if key in counted}))
        head = {"generator": payloads[0]["generator"], "personalized": payloads[0]["personalized"]}
        write_json(run_dir / name, head | report.to_dict())
    section = gr.read_run_config(batch_dirs[0])["generate"] | {"recommendations": str(recommendations)}
    gr.update_run_config(run_dir, "generate", section)
    for directory in batch_dirs:
        shutil.rmtree(directory, ignore_errors=True)
    _remove_if_empty(run_dir / BATCHES_DIR)
    return gr.GeneratedOutputs(
        images_dir=run_dir / "images",
        images=run_dir / IMAGES_TABLE,
        baseline_images=run_dir / BASELINE_IMAGES_TABLE,
        descriptions=run_dir / DESCRIPTIONS_TABLE,
        descriptions_report=run_dir / DESCRIPTIONS_REPORT,
    )


def _move_image(path: Path, batch_dir: Path, run_dir: Path) -> str:
    """Move a batch PNG to its place under the run directory (idempotent); return its path as generate writes it."""
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
