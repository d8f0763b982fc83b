"""The encode, images and describe stages as mapped tasks: one per batch of items / of users, then a merge.

Each task wraps one function of :mod:`genrec.pipelines.batches`; a batch writes into the run
directory and returns a path, so on Ray (:mod:`genrec.flows.runners`) the batches run on any
worker and the merges read what they wrote from the shared run directory. Results persist and
are cached like the stage tasks (:func:`genrec.flows.tasks.stage_cache`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import Task, task, unmapped
from prefect.futures import PrefectFuture

from genrec.flows.tasks import (
    GENERATION_RETRIES,
    GENERATION_RETRY_DELAYS,
    GPU_TAG,
    gpu_tags,
    log,
    result_storage,
    retryable,
    stage_cache,
)
from genrec.pipelines import batches as gb
from genrec.pipelines.settings import RunSettings
from genrec.run_directory import RunDirectory


@task(name="encode-items-batch", tags=[GPU_TAG], persist_result=True, cache_policy=stage_cache())
def encode_items_batch_task(run_dir: str, settings: RunSettings, batch: int, n_batches: int) -> Path:
    out = gb.encode_items_batch(run_dir, settings, batch, n_batches)
    log(f"encode-items-batch {batch + 1}/{n_batches}: {out}")
    return out


@task(name="merge-item-batches", persist_result=True, cache_policy=stage_cache())
def merge_item_batches_task(run_dir: str, settings: RunSettings, batch_dirs: list[Path]) -> Path:
    cache = gb.merge_item_batches(run_dir, settings, batch_dirs)
    log(f"merge-item-batches: {len(batch_dirs)} batches into {cache}")
    return cache


@task(
    name="generate-batch",
    tags=[GPU_TAG],
    persist_result=True,
    cache_policy=stage_cache(RunDirectory.RECOMMENDATIONS),
    retries=GENERATION_RETRIES,
    retry_delay_seconds=GENERATION_RETRY_DELAYS,
    retry_condition_fn=retryable,
)
def generate_batch_task(run_dir: str, settings: RunSettings, batch: int, n_batches: int) -> Path:
    out = gb.generate_batch(run_dir, settings, batch, n_batches)
    log(f"generate-batch {batch + 1}/{n_batches}: {out}")
    return out


@task(name="merge-generated-batches", persist_result=True, cache_policy=stage_cache(RunDirectory.RECOMMENDATIONS))
def merge_generated_batches_task(run_dir: str, settings: RunSettings, batch_dirs: list[Path]) -> Path:
    path = gb.merge_generated_batches(run_dir, settings, batch_dirs)
    log(f"merge-generated-batches: {len(batch_dirs)} batches into {run_dir}")
    return path


@dataclass(frozen=True)
class BatchTasks:
    """The batch tasks bound to one run directory's result storage."""

    encode_items: Task
    merge_items: Task
    generate: Task
    merge_generated: Task


def batch_tasks(run_dir: str | Path) -> BatchTasks:
    storage = result_storage(run_dir)
    return BatchTasks(
        encode_items=encode_items_batch_task.with_options(**storage, **gpu_tags(encode_items_batch_task)),
        merge_items=merge_item_batches_task.with_options(**storage),
        generate=generate_batch_task.with_options(
            retries=GENERATION_RETRIES,
            retry_delay_seconds=GENERATION_RETRY_DELAYS,
            **storage,
            **gpu_tags(generate_batch_task),
        ),
        merge_generated=merge_generated_batches_task.with_options(**storage),
    )


def encode_in_batches(run_dir: str, settings: RunSettings, batches: int, after: list[PrefectFuture]) -> PrefectFuture:
    """Submit the encode stage as ``batches`` mapped tasks and their merge; returns the merge's future."""
    tasks = batch_tasks(run_dir)
    numbers = list(range(batches))
    encoded = tasks.encode_items.map(unmapped(run_dir), unmapped(settings), numbers, unmapped(batches), wait_for=after)
    return tasks.merge_items.submit(run_dir, settings, encoded)


def generate_in_batches(run_dir: str, settings: RunSettings, batches: int, after: list[PrefectFuture]) -> PrefectFuture:
    """Submit the images and describe stages as ``batches`` mapped tasks and their merge; returns the merge's future."""
    tasks = batch_tasks(run_dir)
    numbers = list(range(batches))
    parts = tasks.generate.map(unmapped(run_dir), unmapped(settings), numbers, unmapped(batches), wait_for=after)
    return tasks.merge_generated.submit(run_dir, settings, parts)
