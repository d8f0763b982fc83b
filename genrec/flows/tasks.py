"""Prefect tasks, one per stage of the plan (:data:`genrec.pipelines.stages.PLAN`); they pass paths and settings only.

Every task persists its result and is cached (:class:`StageInputs`) on the stage's name, its
inputs (the run directory and the :class:`~genrec.pipelines.settings.RunSettings`), the task's
source, and the size and modification time of the files the stage reads: the data set's, the item
images', and the run-directory entries the plan says it reads. Rerunning a finished flow therefore
runs no task; rerunning a crashed one runs only what did not finish, and a changed input file runs
what depends on it. Results live in ``<run_dir>/.prefect`` (:func:`result_storage`), so deleting a
run directory also forgets its cache, unless Prefect's ``PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK``
names another location. A stage output deleted by hand is not noticed by the cache: delete
``<run_dir>/.prefect`` with it. ``progress`` (bars on a terminal, lines elsewhere) is left out of
the cache key: it changes no output.

The stages the plan marks ``gpu`` (and the batches of :mod:`genrec.flows.batches`) are tagged
``gpu``, so that ``prefect concurrency-limit create gpu 1`` serialises GPU work across flow runs. A
run keeps the tag only where a task can reach a GPU (:func:`gpu_tags`): torch sees a CUDA device in
the flow's process, or the task runner gives tasks GPUs (Ray with ``gpus_per_task``). On a
CPU-only machine the tag is dropped, because Prefect asks the server for the tag's concurrency
slots before every tagged task (about 2 s inside a flow run here), a cost with nothing to serialise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import Task, get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy
from prefect.context import FlowRunContext, TaskRunContext
from prefect.settings import get_current_settings
from prefect.tasks import exponential_backoff
from prefect.utilities.hashing import hash_objects

from genrec.config import ConfigError
from genrec.pipelines.settings import RunSettings
from genrec.pipelines.stages import STAGES, Stage, files_fingerprint, local_path
from genrec.requests import request_line
from genrec.run_directory import RunDirectory

GPU_TAG = "gpu"  # `prefect concurrency-limit create gpu 1` serialises the tagged tasks
WHOLE_RUN = "*"  # a stage's `reads`: every entry of the run directory but RunDirectory.NOT_INPUTS
GENERATION_RETRIES = 2
GENERATION_RETRY_DELAYS = exponential_backoff(backoff_factor=10)(GENERATION_RETRIES)  # seconds: 10, 20
GENERATION_STAGES = ("images", "describe")  # retried (:func:`retryable`): an out-of-memory can pass next time


def read_files(run_dir: str | Path, settings: RunSettings, reads: tuple[str, ...]) -> dict[str, Any]:
    """The fingerprints of what a stage reads: the data set, the item images and its run-directory entries."""
    files: dict[str, Any] = {}
    for name, value in (("dataset", settings.dataset), ("images", settings.generation.images)):
        path = local_path(value)
        files[name] = None if path is None else files_fingerprint(path)
    for entry in reads:
        path = Path(run_dir) if entry == WHOLE_RUN else Path(run_dir) / entry
        files[entry] = files_fingerprint(path, skip=RunDirectory.NOT_INPUTS) if path.exists() else None
    return files


@dataclass
class StageInputs(CachePolicy):
    """Cache key part: the files the task's stage (or batch) reads (:func:`read_files`)."""

    reads: tuple[str, ...] = ()

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        settings = inputs["settings"]
        if not isinstance(settings, RunSettings):
            settings = RunSettings.model_validate(settings)
        return hash_objects(read_files(inputs["run_dir"], settings, self.reads), raise_on_failure=True)


def stage_cache(*reads: str) -> CachePolicy:
    return (INPUTS - "progress") + TASK_SOURCE + StageInputs(reads=reads)


def retryable(task: Task, task_run: Any, state: Any) -> bool:
    """Whether a failed generation task may pass on a retry: an out-of-memory or a flaky model load may;
    bad settings or a missing input (a ConfigError, a data or registry error) fail the same way again."""
    from genrec.data import DataValidationError
    from genrec.registry import UnknownNameError

    error = state.result(raise_on_failure=False)
    return not isinstance(error, ConfigError | DataValidationError | UnknownNameError)


def cuda_available() -> bool:
    """Whether torch sees a CUDA device in this process."""
    import torch

    return torch.cuda.is_available()


def gpu_tags(task: Task) -> dict[str, Any]:
    """``with_options`` arguments dropping the ``gpu`` tag of ``task`` when this flow run's tasks reach no GPU.

    Tasks reach a GPU when torch sees a CUDA device here, or when the flow run's task runner gives
    them GPUs (a runner with ``gpus_per_task > 0``: :mod:`genrec.flows.runners`).
    """
    context = FlowRunContext.get()
    if cuda_available() or getattr(getattr(context, "task_runner", None), "gpus_per_task", 0):
        return {}
    return {"tags": set(task.tags) - {GPU_TAG}}


def log(message: str) -> None:
    get_run_logger().info(message)


def _shown(ids: list[Any]) -> str:
    return ", ".join(map(str, ids[:10])) + (", ..." if len(ids) > 10 else "")


def _train_line(run: RunDirectory, settings: RunSettings, path: Path | None) -> str:
    if path is None:
        return "train: skipped (the run gives its items)"
    fit = run.read_train_record()["fit"]
    best = fit["best_valid_ndcg10"]
    return f"train: {settings.ranker} in {path}: {fit['epochs']} epochs, {fit['fit_seconds']:.1f} s" + (
        "" if best is None else f", best valid NDCG@10 {best:.4f} at epoch {fit['best_epoch']}"
    )


def _recommend_line(run: RunDirectory, settings: RunSettings, path: Path | None) -> str:
    line = f"recommend: {len(run.read_recommendations())} rows for {len(run.read_users())} users in {path}"
    request = run.read_request()
    if request is None:
        return line
    notes = "".join(f"; note: {note}" for note in request.get("notes", []))
    return f"{line}; request {request_line(request)}{notes}"


def _images_line(run: RunDirectory, settings: RunSettings, path: Path | None) -> str:
    table = pd.read_parquet(run / RunDirectory.IMAGES, columns=["reused", "flagged"])
    return (
        f"images: {len(table)} images ({int((~table['reused']).sum())} new, {int(table['reused'].sum())} reused, "
        f"{int(table['flagged'].sum())} flagged) with {settings.generation.image_generator}"
    )


def _describe_line(run: RunDirectory, settings: RunSettings, path: Path | None) -> str:
    sources = pd.read_parquet(run / RunDirectory.DESCRIPTIONS, columns=["source"])["source"].value_counts()
    counts = ", ".join(f"{count} {source}" for source, count in sources.items())
    return f"describe: {int(sources.sum())} descriptions with {settings.generation.text_generator} ({counts})"


def _evaluate_line(run: RunDirectory, settings: RunSettings, path: Path | None) -> str:
    metrics, parts = run.read_json(RunDirectory.METRICS), []
    if "ranking" in metrics:
        parts.append(f"test NDCG@10 {metrics['ranking']['metrics']['NDCG@10']:.4f}")
    if metrics.get("images", {}).get("clip_score") is not None:
        parts.append(f"CLIP score {metrics['images']['clip_score']:.4f}")
    if metrics.get("descriptions", {}).get("grounding_rate") is not None:
        parts.append(f"grounding rate {metrics['descriptions']['grounding_rate']:.3f}")
    return f"evaluate: {path}" + (": " + ", ".join(parts) if parts else "")


# stage -> its log line after it ran: what a reader of the flow run's logs needs to know
SUMMARIES: dict[str, Callable[[RunDirectory, RunSettings, Path | None], str]] = {
    "select-users": lambda run, settings, path: (
        f"select-users ({settings.users.mode}): {len(run.read_users())} users: {_shown(run.read_users())}"
    ),
    "encode": lambda run, settings, path: f"encode: the catalogue with {settings.generation.encoder} in {path}",
    "train": _train_line,
    "recommend": _recommend_line,
    "images": _images_line,
    "describe": _describe_line,
    "evaluate": _evaluate_line,
    "report": lambda run, settings, path: f"report: {path}",
}


def run_stage(stage: str, run_dir: str, settings: RunSettings, progress: bool = True) -> Path | None:
    """The plan's ``stage`` over ``run_dir``; logs what it did."""
    path = STAGES[stage].run(run_dir, settings, progress)
    log(SUMMARIES[stage](RunDirectory(run_dir), settings, path))
    return path


def result_storage(run_dir: str | Path) -> dict[str, Path]:
    """Task options storing results in ``<run_dir>/.prefect``, unless a default storage block is configured."""
    configured = get_current_settings().results.default_storage_block
    return {} if configured else {"result_storage": Path(run_dir).resolve() / RunDirectory.RESULTS}


def stage_task(stage: Stage, run_dir: str | Path) -> Task:
    """The task of one stage: named after it, cached on what it reads, results in the run directory,
    tagged ``gpu`` where it reaches a GPU (:func:`gpu_tags`), generation stages retried with backoff."""
    options: dict[str, Any] = {
        "name": stage.name,
        "tags": [GPU_TAG] if stage.gpu else [],
        "persist_result": True,
        "cache_policy": stage_cache(*stage.reads),
        **result_storage(run_dir),
    }
    if stage.name in GENERATION_STAGES:
        options |= {
            "retries": GENERATION_RETRIES,
            "retry_delay_seconds": GENERATION_RETRY_DELAYS,
            "retry_condition_fn": retryable,
        }
    tagged = task(run_stage).with_options(**options)
    return tagged.with_options(**gpu_tags(tagged))


def stage_tasks(run_dir: str | Path) -> dict[str, Task]:
    """Every stage task of the plan for ``run_dir``, by stage name."""
    return {name: stage_task(stage, run_dir) for name, stage in STAGES.items()}
