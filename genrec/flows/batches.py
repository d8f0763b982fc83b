"""The encode and generate stages as mapped tasks: one per batch of items / of users, then a merge (issue 17).

Each task wraps one function of :mod:`genrec.pipelines.batches`; a batch writes into the run
directory and returns a path, so on Ray (:mod:`genrec.flows.runners`) the batches run on any
worker and the merges read what they wrote from the shared run directory. Results persist and
are cached like the stage tasks (:func:`genrec.flows.tasks.stage_cache`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import Task, task, unmapped
from prefect.futures import PrefectFuture

from genrec.flows.tasks import (
    GENERATION_RETRIES,
    GENERATION_RETRY_DELAYS,
    GPU_TAG,
    generation_task,
    gpu_tags,
    log,
    result_storage,
    stage_cache,
)
from genrec.pipelines import batches as gb
from genrec.pipelines.run import GeneratedOutputs


@task(name="encode-items-batch", tags=[GPU_TAG], persist_result=True, cache_policy=stage_cache("dataset", "images"))
def encode_items_batch_task(
    dataset: str, encoder: str, run_dir: str, batch: int, n_batches: int, images: str | None
) -> Path:
    out = gb.encode_items_batch(dataset, encoder, run_dir, batch, n_batches, images)
    log(f"encode-items-batch {batch + 1}/{n_batches}: {out}")
    return out


@task(name="merge-item-batches", persist_result=True, cache_policy=stage_cache())
def merge_item_batches_task(encoder: str, run_dir: str, batch_dirs: list[Path]) -> Path:
    cache = gb.merge_item_batches(encoder, run_dir, batch_dirs)
    log(f"merge-item-batches: {len(batch_dirs)} batches into {cache}")
    return cache


@generation_task("generate-batch")
def generate_batch_task(
    recommendations: Path,
    dataset: str,
    run_dir: str,
    image_generator: str,
    text_generator: str,
    encoder: str,
    batch: int,
    n_batches: int,
    seed: int,
    images: str | None,
    text_generator_overrides: dict[str, Any] | None = None,
) -> Path:
    out = gb.generate_batch(
        recommendations,
        dataset,
        run_dir,
        image_generator,
        text_generator,
        encoder,
        batch,
        n_batches,
        seed,
        images,
        text_generator_overrides=text_generator_overrides,
    )
    log(f"generate-batch {batch + 1}/{n_batches}: {out}")
    return out


@task(name="merge-generated-batches", persist_result=True, cache_policy=stage_cache("recommendations"))
def merge_generated_batches_task(recommendations: Path, run_dir: str, batch_dirs: list[Path]) -> GeneratedOutputs:
    outputs = gb.merge_generated_batches(recommendations, run_dir, batch_dirs)
    log(f"merge-generated-batches: {len(batch_dirs)} batches into {outputs.images_dir.parent}")
    return outputs


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


def generate_in_batches(
    recommendations: PrefectFuture | Path,
    dataset: str,
    run_dir: str,
    image_generator: str,
    text_generator: str,
    encoder: str,
    seed: int,
    images: str | None,
    batches: int,
    text_generator_overrides: dict[str, Any] | None = None,
) -> PrefectFuture:
    """Submit the generate stage as ``batches`` encode tasks, a merge, ``batches`` generate tasks and a merge.

    Returns the future of the last merge (its result: :class:`~genrec.pipelines.run.GeneratedOutputs`).
    """
    tasks = batch_tasks(run_dir)
    numbers = list(range(batches))
    # After the ranking, never beside it: in threads of one process a random-weight encoder's
    # initialisation draws from torch's global generator, which a training task draws from too.
    after = [recommendations] if isinstance(recommendations, PrefectFuture) else []
    encoded = tasks.encode_items.map(dataset, encoder, run_dir, numbers, unmapped(batches), images, wait_for=after)
    cache = tasks.merge_items.submit(encoder, run_dir, encoded)
    parts = tasks.generate.map(
        recommendations,
        dataset,
        run_dir,
        image_generator,
        text_generator,
        encoder,
        numbers,
        unmapped(batches),
        seed,
        images,
        unmapped(text_generator_overrides),
        wait_for=[cache],
    )
    return tasks.merge_generated.submit(recommendations, run_dir, parts)
