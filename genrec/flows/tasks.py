"""Prefect tasks, one per function of :mod:`genrec.pipelines.run`; they pass paths and small values only.

Every task persists its result and is cached (:func:`stage_cache`) on its inputs, the task's
source, and the size and modification time of the files its path inputs name (the data set,
the saved model, the recommendations table, the run directory a stage reads). Rerunning a
finished flow therefore runs no task; rerunning a crashed one runs only what did not finish,
and a changed input file runs what depends on it. Results live in ``<run_dir>/.prefect``
(:func:`stage_tasks`), so deleting a run directory also forgets its cache, unless Prefect's
``PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK`` names another location. A stage output deleted by
hand is not noticed by the cache: delete ``<run_dir>/.prefect`` with it. The ``progress`` input
(bars on a terminal, lines elsewhere) is left out of the cache key: it changes no output.

The GPU-heavy tasks (train, generate, evaluate, and the batches of :mod:`genrec.flows.batches`) are
declared with the tag ``gpu``, so that ``prefect concurrency-limit create gpu 1`` serialises GPU work
across flow runs. A run keeps the tag only where a task can reach a GPU (:func:`gpu_tags`): torch sees
a CUDA device in the flow's process, or the task runner gives tasks GPUs (Ray with
``gpus_per_task``). On a CPU-only machine the tag is dropped, because Prefect asks the server for
the tag's concurrency slots before every tagged task (about 2 s inside a flow run here, and Prefect
caches "no such limit" for 5 s only), a cost with nothing to serialise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import Task, get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy
from prefect.context import FlowRunContext, TaskRunContext
from prefect.settings import get_current_settings
from prefect.tasks import exponential_backoff
from prefect.utilities.hashing import hash_objects

from genrec.data import load_dataset
from genrec.evaluation.report import ASSETS_DIR, write_report
from genrec.io import read_json
from genrec.pipelines import run as gr
from genrec.pipelines.run import GeneratedOutputs, UserId

RESULTS_DIR = ".prefect"  # inside the run directory: persisted task results and cache records
GPU_TAG = "gpu"  # `prefect concurrency-limit create gpu 1` serialises the tagged tasks
# Outputs a stage writes into the run directory it also reads: left out of its input fingerprint.
NOT_INPUTS = frozenset({RESULTS_DIR, gr.CACHE_DIR, gr.METRICS_FILE, gr.REPORT_FILE, ASSETS_DIR})
GENERATION_RETRIES = 2
GENERATION_RETRY_DELAYS = exponential_backoff(backoff_factor=10)(GENERATION_RETRIES)  # seconds: 10, 20


def files_fingerprint(path: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of a file or of every file under a directory, sorted.

    In a directory, the top-level entries of :data:`NOT_INPUTS` (a run directory's own results,
    cache, metrics and report) are left out.
    """
    if path.is_file():
        stat = path.stat()
        return [(path.name, stat.st_size, stat.st_mtime_ns)]
    rows = []
    for root, dirs, files in os.walk(path):
        top = Path(root) == path
        dirs[:] = sorted(d for d in dirs if not (top and d in NOT_INPUTS))
        for name in sorted(files):
            if top and name in NOT_INPUTS:
                continue
            stat = (Path(root) / name).stat()
            rows.append((str((Path(root) / name).relative_to(path)), stat.st_size, stat.st_mtime_ns))
    return rows


def local_path(value: Any) -> Path | None:
    """The existing file or directory a parameter names (``FORMAT:PATH`` too), else None (e.g. a bundled name)."""
    if not isinstance(value, str | Path) or not str(value):
        return None
    text = str(value)
    candidates = [Path(text), *([Path(text.split(":", 1)[1])] if ":" in text else [])]
    return next((candidate for candidate in candidates if candidate.exists()), None)


@dataclass
class InputFiles(CachePolicy):
    """Cache key part: the size and mtime of the files that the named path parameters point at."""

    parameters: tuple[str, ...] = field(default_factory=tuple)

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        files = {}
        for name in self.parameters:
            path = local_path(inputs.get(name))
            files[name] = None if path is None else files_fingerprint(path)
        return hash_objects(files, raise_on_failure=True)


def stage_cache(*path_parameters: str) -> CachePolicy:
    return (INPUTS - "progress") + TASK_SOURCE + InputFiles(parameters=path_parameters)


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


@task(name="select-users", persist_result=True, cache_policy=stage_cache("dataset"))
def select_users_task(
    dataset: str, mode: str, users: list[UserId], sample: int, active_within_days: float, seed: int
) -> list[UserId]:
    """:func:`genrec.pipelines.run.select_users` for one :class:`~genrec.flows.params.UserMode`."""
    if mode == "ids":
        chosen = gr.select_users(dataset, users=users)
    elif mode == "all":
        chosen = gr.select_users(dataset, all_users=True)
    elif mode == "sample":
        chosen = gr.select_users(dataset, sample=sample, seed=seed)
    else:  # "active": counted back from the newest interaction (for a live log, now)
        loaded = load_dataset(dataset)
        newest = int(loaded.interactions["timestamp"].max())
        chosen = gr.select_users(loaded, active_since=newest - round(active_within_days * 86400))
    shown = ", ".join(map(str, chosen[:10])) + (", ..." if len(chosen) > 10 else "")
    log(f"select-users ({mode}): {len(chosen)} users: {shown}")
    return chosen


@task(name="train", tags=[GPU_TAG], persist_result=True, cache_policy=stage_cache("dataset", "config"))
def train_task(
    dataset: str,
    ranker: str,
    run_dir: str,
    config: str | None,
    overrides: dict[str, Any],
    seed: int,
    progress: bool = True,
) -> Path:
    model_dir = gr.train(dataset, ranker, run_dir, config, overrides, seed, progress)
    fit = read_json(model_dir / gr.TRAIN_RECORD)["fit"]
    best = fit["best_valid_ndcg10"]
    log(
        f"train: {ranker} in {model_dir}: {fit['epochs']} epochs, {fit['fit_seconds']:.1f} s"
        + ("" if best is None else f", best valid NDCG@10 {best:.4f} at epoch {fit['best_epoch']}")
    )
    return model_dir


@task(name="recommend", persist_result=True, cache_policy=stage_cache("dataset", "model_dir"))
def recommend_task(model_dir: Path, dataset: str, run_dir: str, users: list[UserId], k: int) -> Path:
    path = gr.recommend(model_dir, dataset, run_dir, users, k)
    log(f"recommend: top {k} for {len(users)} users in {path}")
    return path


def generation_task(name: str) -> Any:
    """The decorator of a task that generates images and descriptions: gpu-tagged, cached on its
    input files, retried with backoff (one whole generate, or one batch of it)."""
    return task(
        name=name,
        tags=[GPU_TAG],
        persist_result=True,
        cache_policy=stage_cache("dataset", "recommendations", "images"),
        retries=GENERATION_RETRIES,
        retry_delay_seconds=GENERATION_RETRY_DELAYS,
    )


@task(name="recommend-items", persist_result=True, cache_policy=stage_cache("dataset"))
def recommend_items_task(dataset: str, run_dir: str, users: list[UserId], items: list[UserId]) -> Path:
    path = gr.recommend_items(dataset, run_dir, users, items)
    log(f"recommend-items: {len(items)} given items for {len(users)} users in {path}")
    return path


@generation_task("generate")
def generate_task(
    recommendations: Path,
    dataset: str,
    run_dir: str,
    image_generator: str,
    text_generator: str,
    encoder: str,
    seed: int,
    images: str | None,
    text_generator_overrides: dict[str, Any] | None = None,
    progress: bool = True,
) -> GeneratedOutputs:
    outputs = gr.generate(
        recommendations,
        dataset,
        run_dir,
        image_generator,
        text_generator,
        encoder,
        seed,
        images,
        progress,
        text_generator_overrides=text_generator_overrides,
    )
    table = pd.read_parquet(outputs.images, columns=["reused", "flagged"])
    log(
        f"generate: {len(table)} images ({int((~table['reused']).sum())} new, {int(table['reused'].sum())} reused, "
        f"{int(table['flagged'].sum())} flagged) with {image_generator}; descriptions with {text_generator}"
    )
    return outputs


@task(name="evaluate", tags=[GPU_TAG], persist_result=True, cache_policy=stage_cache("dataset", "run_dir", "images"))
def evaluate_task(run_dir: str, dataset: str, encoder: str | None, images: str | None, progress: bool = True) -> Path:
    path = gr.evaluate(run_dir, dataset, encoder, images, progress=progress)
    metrics = read_json(path)
    parts = []
    if "ranking" in metrics:
        parts.append(f"test NDCG@10 {metrics['ranking']['metrics']['NDCG@10']:.4f}")
    if metrics.get("images", {}).get("clip_score") is not None:
        parts.append(f"CLIP score {metrics['images']['clip_score']:.4f}")
    if metrics.get("descriptions", {}).get("grounding_rate") is not None:
        parts.append(f"grounding rate {metrics['descriptions']['grounding_rate']:.3f}")
    log(f"evaluate: {path}" + (": " + ", ".join(parts) if parts else ""))
    return path


@task(name="report", persist_result=True, cache_policy=stage_cache("run_dir", "metrics"))
def report_task(run_dir: str, metrics: Path) -> Path:
    """report.html from what the run directory holds (``metrics``: the metrics.json it renders)."""
    path = write_report(run_dir)
    log(f"report: {path}")
    return path


@dataclass(frozen=True)
class StageTasks:
    """The stage tasks bound to one run directory's result storage."""

    select_users: Task
    train: Task
    recommend: Task
    recommend_items: Task
    generate: Task
    evaluate: Task
    report: Task


def result_storage(run_dir: str | Path) -> dict[str, Path]:
    """Task options storing results in ``<run_dir>/.prefect``, unless a default storage block is configured."""
    configured = get_current_settings().results.default_storage_block
    return {} if configured else {"result_storage": Path(run_dir).resolve() / RESULTS_DIR}


def stage_tasks(run_dir: str | Path) -> StageTasks:
    """Every stage task with results stored in ``<run_dir>/.prefect`` (or the configured default storage),
    tagged ``gpu`` where it reaches a GPU (:func:`gpu_tags`)."""
    storage = result_storage(run_dir)
    return StageTasks(
        select_users=select_users_task.with_options(**storage),
        train=train_task.with_options(**storage, **gpu_tags(train_task)),
        recommend=recommend_task.with_options(**storage),
        recommend_items=recommend_items_task.with_options(**storage),
        generate=generate_task.with_options(
            retries=GENERATION_RETRIES,
            retry_delay_seconds=GENERATION_RETRY_DELAYS,
            **storage,
            **gpu_tags(generate_task),
        ),
        evaluate=evaluate_task.with_options(**storage, **gpu_tags(evaluate_task)),
        report=report_task.with_options(**storage),
    )
