"""The flows ``train``, ``recommend``, ``generate``, ``evaluate`` and ``pipeline`` (all four chained).

Each flow only wires the tasks of :mod:`genrec.flows.tasks` (one per pipeline function) over one
run directory. Parameters are flat typed fields: registry names are enums (dropdowns in the
Prefect UI), numbers are bounded, and Prefect rejects a bad value when the run is created.
Checks that span fields (a ranker's config and overrides) run before the first task. Every
``pipeline`` and ``evaluate`` run publishes its artifacts (:mod:`genrec.flows.artifacts`).
The GPU-heavy tasks (train, generate, evaluate) carry the ``gpu`` tag, for a Prefect tag
concurrency limit to serialise, only where they can reach a GPU (a CUDA device in the flow's
process, or a task runner that gives tasks GPUs): see :func:`genrec.flows.tasks.gpu_tags`.
"""

# No `from __future__ import annotations` here: the flows' parameter types must be objects, not
# strings, in the functions themselves. `genrec serve` hands Prefect's runner the flow objects,
# which reach each run's subprocess pickled by value (the module name `pipeline_flow` is the Flow,
# not its function), and Prefect validates the parameters there from those annotations.
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture

from genrec.config import Seed
from genrec.flows.artifacts import publish_run_artifacts
from genrec.flows.batches import generate_in_batches
from genrec.flows.logs import send_genrec_logs_to_prefect
from genrec.flows.params import (
    DEFAULT_ENCODER,
    DEFAULT_IMAGE_GENERATOR,
    DEFAULT_RANKER,
    DEFAULT_TEXT_GENERATOR,
    Batches,
    DatasetSource,
    Days,
    EncoderName,
    ImageGeneratorName,
    RankerName,
    SampleSize,
    TextGeneratorName,
    TopK,
    UserId,
    UserMode,
)
from genrec.flows.tasks import StageTasks, stage_tasks
from genrec.pipelines.run import MODEL_DIR, RECOMMENDATIONS_TABLE, check_run_dir, check_text_generator_overrides
from genrec.rankers import resolve_ranker_config

DEFAULT_DATASET = "movielens-latest-small"


def start(
    run_dir: str,
    ranker: str | None = None,
    ranker_config: str | None = None,
    overrides: dict[str, Any] | None = None,
    seed: int = 0,
    text_generator: str | None = None,
    text_generator_overrides: dict[str, Any] | None = None,
) -> StageTasks:
    """Checks before any task (run directory, ranker config and overrides, text generator overrides);
    the tasks bound to ``run_dir``."""
    send_genrec_logs_to_prefect()
    check_run_dir(run_dir)
    if ranker is not None:
        resolve_ranker_config(ranker, ranker_config, {**(overrides or {}), "seed": seed})
    if text_generator is not None:
        check_text_generator_overrides(text_generator, text_generator_overrides)
    return stage_tasks(run_dir)


def publish(run_dir: str, metrics: Path) -> dict[str, str]:
    """Publish the run's artifacts; the flow's result."""
    artifacts = publish_run_artifacts(run_dir)
    get_run_logger().info(f"artifacts: {', '.join(artifacts)}")
    return {"run_dir": run_dir, "metrics": str(metrics)}


@flow(name="train")
def train_flow(
    dataset: DatasetSource = DEFAULT_DATASET,
    ranker: RankerName = DEFAULT_RANKER,
    run_dir: str = "runs/pipeline",
    ranker_config: str | None = None,
    overrides: dict[str, Any] | None = None,
    seed: Seed = 0,
) -> dict[str, str]:
    """Fit a ranker on the leave-one-out training split and save it to <run_dir>/model.

    A rerun with the same data, ranker config and seed reuses the saved model.

    Args:
        dataset: a bundled name (movielens-latest-small), a path, or FORMAT:PATH
        ranker: registered ranker
        run_dir: run directory (created; finished outputs are reused)
        ranker_config: a named ranker config or a JSON config file; empty = the ranker's default
        overrides: ranker config fields to override, e.g. {"epochs": 20}
        seed: seeds the ranker
    """
    tasks = start(run_dir, ranker, ranker_config, overrides, seed)
    model_dir = tasks.train(dataset, ranker, run_dir, ranker_config, overrides or {}, seed)
    return {"run_dir": run_dir, "model_dir": str(model_dir)}


@flow(name="recommend")
def recommend_flow(
    dataset: DatasetSource = DEFAULT_DATASET,
    run_dir: str = "runs/pipeline",
    user_mode: UserMode = UserMode.sample,
    users: list[UserId] | None = None,
    sample: SampleSize = 5,
    active_within_days: Days = 1.0,
    seed: Seed = 0,
    k: TopK = 10,
    model_dir: str | None = None,
) -> dict[str, str]:
    """Recommend the saved ranker's top-k items (seen items excluded) to the chosen users.

    Args:
        dataset: a bundled name (movielens-latest-small), a path, or FORMAT:PATH
        run_dir: run directory; recommendations.parquet is written here
        user_mode: ids (the users field), sample (a seeded sample of `sample` users),
            active (users with an interaction in the last `active_within_days` days of the log), or all
        users: user ids, for user_mode ids
        sample: how many users, for user_mode sample
        active_within_days: days back from the newest interaction, for user_mode active
        seed: seeds the user sample
        k: recommended items per user
        model_dir: the saved ranker; empty = <run_dir>/model
    """
    tasks = start(run_dir)
    chosen = tasks.select_users(dataset, user_mode, users or [], sample, active_within_days, seed)
    model = Path(model_dir) if model_dir else Path(run_dir) / MODEL_DIR
    recommendations = tasks.recommend(model, dataset, run_dir, chosen, k)
    return {"run_dir": run_dir, "recommendations": str(recommendations)}


@flow(name="generate")
def generate_flow(
    dataset: DatasetSource = DEFAULT_DATASET,
    run_dir: str = "runs/pipeline",
    image_generator: ImageGeneratorName = DEFAULT_IMAGE_GENERATOR,
    text_generator: TextGeneratorName = DEFAULT_TEXT_GENERATOR,
    encoder: EncoderName = DEFAULT_ENCODER,
    seed: Seed = 0,
    images: str | None = None,
    recommendations: str | None = None,
    text_generator_overrides: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Generate a personalised image (and its non-personalised baseline) and a description per recommendation.

    Args:
        dataset: a bundled name (movielens-latest-small), a path, or FORMAT:PATH
        run_dir: run directory; images/, images.parquet and descriptions.parquet are written here
        image_generator: registered image generator
        text_generator: registered description generator
        encoder: CLIP encoder of the user profiles and the image safety check
        seed: seeds the image noise and the language model's sampling
        images: directory of <item_id>.<ext> history images (posters); empty = text-only items
        recommendations: the recommendations table; empty = <run_dir>/recommendations.parquet
        text_generator_overrides: text generator config fields over its preset's, e.g.
            {"grounding": {"max_retries": 1}}
    """
    tasks = start(run_dir, text_generator=text_generator, text_generator_overrides=text_generator_overrides)
    table = Path(recommendations) if recommendations else Path(run_dir) / RECOMMENDATIONS_TABLE
    outputs = tasks.generate(
        table, dataset, run_dir, image_generator, text_generator, encoder, seed, images, text_generator_overrides
    )
    return {"run_dir": run_dir, **{name: str(path) for name, path in outputs.model_dump().items()}}


@flow(name="evaluate")
def evaluate_flow(
    run_dir: str = "runs/pipeline",
    dataset: DatasetSource = DEFAULT_DATASET,
    encoder: EncoderName | None = None,
    images: str | None = None,
    ranker: RankerName | None = None,
    ranker_config: str | None = None,
    overrides: dict[str, Any] | None = None,
    seed: Seed = 0,
) -> dict[str, str]:
    """Score what the run directory holds (ranking, images, descriptions) into metrics.json; publish artifacts.

    With a ranker, first trains it into the run directory (reusing a saved one with the same
    data, config and seed): the old evaluate-ranker flow.

    Args:
        run_dir: run directory to evaluate; metrics.json is written here
        dataset: a bundled name (movielens-latest-small), a path, or FORMAT:PATH
        encoder: CLIP encoder to score images and descriptions with; empty = the one generate used
        images: directory of <item_id>.<ext> history images; empty = the one generate used
        ranker: if set, train this ranker first
        ranker_config: a named ranker config or a JSON config file, with ranker
        overrides: ranker config fields to override, with ranker
        seed: seeds the ranker, with ranker
    """
    tasks = start(run_dir, ranker, ranker_config, overrides, seed)
    if ranker is not None:
        tasks.train(dataset, ranker, run_dir, ranker_config, overrides or {}, seed)
    metrics = tasks.evaluate(run_dir, dataset, encoder, images)
    return publish(run_dir, metrics)


@flow(name="pipeline")
def pipeline_flow(
    dataset: DatasetSource = DEFAULT_DATASET,
    run_dir: str = "runs/pipeline",
    ranker: RankerName = DEFAULT_RANKER,
    ranker_config: str | None = None,
    overrides: dict[str, Any] | None = None,
    user_mode: UserMode = UserMode.sample,
    users: list[UserId] | None = None,
    sample: SampleSize = 5,
    active_within_days: Days = 1.0,
    k: TopK = 3,
    items: list[UserId] | None = None,
    image_generator: ImageGeneratorName = DEFAULT_IMAGE_GENERATOR,
    text_generator: TextGeneratorName = DEFAULT_TEXT_GENERATOR,
    encoder: EncoderName = DEFAULT_ENCODER,
    seed: Seed = 0,
    images: str | None = None,
    batches: Batches = 1,
    text_generator_overrides: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, str]:
    """The whole run: select users -> train -> recommend -> generate -> evaluate -> report.html, then publish artifacts.

    Rerunning a finished run does no work; rerunning a crashed one does only what is missing.
    Returns the run directory, the metrics file and ``cached``: the stages whose task this run
    found cached (comma-separated; empty when every stage ran).

    Args:
        dataset: a bundled name (movielens-latest-small), a path, or FORMAT:PATH
        run_dir: run directory (created; finished outputs are reused)
        ranker: registered ranker (ID-driven or LLM)
        ranker_config: a named ranker config or a JSON config file; empty = the ranker's default
        overrides: ranker config fields to override, e.g. {"epochs": 20}
        user_mode: ids (the users field), sample (a seeded sample of `sample` users),
            active (users with an interaction in the last `active_within_days` days of the log), or all
        users: user ids, for user_mode ids
        sample: how many users, for user_mode sample
        active_within_days: days back from the newest interaction, for user_mode active
        k: recommended items per user
        items: item ids to use instead of ranking (no ranker is trained)
        image_generator: registered image generator
        text_generator: registered description generator
        encoder: CLIP encoder of the user profiles, the image safety check and the metrics
        seed: seeds the ranker, the user sample, the image noise and the language model's sampling
        images: directory of <item_id>.<ext> history images (posters); empty = text-only items
        batches: 1 = one generate task; N > 1 = the catalogue encoded in N mapped tasks and the users'
            images and descriptions generated in N mapped tasks (run in parallel by a Ray task runner)
        text_generator_overrides: text generator config fields over its preset's, e.g.
            {"grounding": {"max_retries": 1}}
        progress: progress bars on a terminal, periodic progress lines elsewhere; false: neither
            (not part of any task's cache key)
    """
    tasks = start(
        run_dir, None if items else ranker, ranker_config, overrides, seed, text_generator, text_generator_overrides
    )
    # Submitted, not called: on Ray (genrec.flows.runners) every task runs on a worker.
    stages: dict[str, PrefectFuture] = {}
    chosen = stages["select-users"] = tasks.select_users.submit(
        dataset, user_mode, users or [], sample, active_within_days, seed
    )
    if items:
        recommendations = stages["recommend"] = tasks.recommend_items.submit(dataset, run_dir, chosen, items)
    else:
        model_dir = stages["train"] = tasks.train.submit(
            dataset, ranker, run_dir, ranker_config, overrides or {}, seed, progress
        )
        recommendations = stages["recommend"] = tasks.recommend.submit(model_dir, dataset, run_dir, chosen, k)
    generation = (image_generator, text_generator, encoder, seed, images)
    if batches == 1:
        generated = tasks.generate.submit(
            recommendations, dataset, run_dir, *generation, text_generator_overrides, progress
        )
    else:
        generated = generate_in_batches(
            recommendations, dataset, run_dir, *generation, batches, text_generator_overrides
        )
    stages["generate"] = generated
    metrics = stages["evaluate"] = tasks.evaluate.submit(
        run_dir, dataset, encoder, images, progress, wait_for=[generated]
    )
    stages["report"] = tasks.report.submit(run_dir, metrics)
    stages["report"].result()
    cached = [name for name, future in stages.items() if future.state.name == "Cached"]
    return publish(run_dir, metrics.result()) | {"cached": ", ".join(cached)}


FLOWS = {
    "train": train_flow,
    "recommend": recommend_flow,
    "generate": generate_flow,
    "evaluate": evaluate_flow,
    "pipeline": pipeline_flow,
}
