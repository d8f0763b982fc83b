"""The flows ``pipeline`` (the whole plan) and ``train``, ``recommend``, ``generate``, ``evaluate`` (parts of it).

Each flow submits stages of :data:`genrec.pipelines.stages.PLAN` as the tasks of
:mod:`genrec.flows.tasks`, in the plan's order, over one run directory: the same stages
:func:`genrec.pipelines.stages.run_pipeline` runs in-process. Their parameter is one
:class:`~genrec.pipelines.settings.RunSettings`: in the Prefect UI form every registry-backed
field is a dropdown, numbers are bounded, and every name and override is checked when the run is
created (a typo in the ranker's overrides is refused there, listing the valid fields). Every flow
publishes the run's artifacts (:mod:`genrec.flows.artifacts`) and persists its result (the run
directory, its metrics file and the stages found cached), so a client reads it back from the flow
run's final state.
"""

# No `from __future__ import annotations` here: the flows' parameter types must be objects, not
# strings, in the functions themselves. `genrec serve` hands Prefect's runner the flow objects,
# which reach each run's subprocess pickled by value, and Prefect validates the parameters there
# from those annotations.
from typing import Annotated

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture
from pydantic import Field

from genrec.flows.artifacts import publish_run_artifacts
from genrec.flows.batches import encode_in_batches, generate_in_batches
from genrec.flows.logs import send_genrec_logs_to_prefect
from genrec.flows.tasks import stage_tasks
from genrec.pipelines.settings import RunSettings, check_models_installed
from genrec.pipelines.stages import PLAN
from genrec.run_directory import RunDirectory

RunDir = Annotated[
    str,
    Field(
        min_length=1,
        description="run directory (created; finished outputs are reused); relative to the directory the flow runs in",
    ),
]
Batches = Annotated[
    int,
    Field(
        ge=1,
        le=10_000,
        description="1: one task per stage; N > 1: the catalogue encoded in N mapped tasks and the users' images "
        "and descriptions generated in N mapped tasks (run in parallel by a Ray task runner)",
    ),
]
Progress = Annotated[
    bool, Field(description="progress bars on a terminal, periodic lines elsewhere; not part of any cache key")
]
BATCHED = {"encode": encode_in_batches, "images": generate_in_batches}  # describe runs inside the generate batches


def run_stages(
    names: list[str], run_dir: str, settings: RunSettings, batches: int = 1, progress: bool = True
) -> dict[str, PrefectFuture]:
    """Submit the named stages in the plan's order, each after the one before; returns stage -> future.

    With ``batches > 1`` the encode stage and the images + describe stages run as mapped batches.
    """
    send_genrec_logs_to_prefect()
    if "describe" in names:
        check_models_installed(settings.generation)
    with RunDirectory(run_dir).writing():  # the flow's process writes; its tasks run in its threads or on Ray
        tasks = stage_tasks(run_dir)
        futures: dict[str, PrefectFuture] = {}
        previous: list[PrefectFuture] = []
        for stage in PLAN:
            if stage.name not in names or (batches > 1 and stage.name == "describe"):
                continue
            if batches > 1 and stage.name in BATCHED:
                future = BATCHED[stage.name](run_dir, settings, batches, previous)
            else:
                # Submitted, not called: on Ray (genrec.flows.runners) every task runs on a worker.
                future = tasks[stage.name].submit(stage.name, run_dir, settings, progress, wait_for=previous)
            futures[stage.name] = future
            previous = [future]
        for future in futures.values():
            future.result()  # in plan order: raises the first stage's failure
    return futures


def finish(run_dir: str, futures: dict[str, PrefectFuture]) -> dict[str, str]:
    """Publish the run's artifacts; the flow's result: the run directory, its metrics file and the cached stages."""
    artifacts = publish_run_artifacts(run_dir)
    get_run_logger().info(f"artifacts: {', '.join(artifacts)}")
    cached = [name for name, future in futures.items() if future.state.name == "Cached"]
    metrics = RunDirectory(run_dir).metrics
    return {"run_dir": run_dir, "metrics": str(metrics) if metrics.is_file() else "", "cached": ", ".join(cached)}


@flow(name="pipeline", persist_result=True)
def pipeline_flow(
    settings: RunSettings = RunSettings(),  # noqa: B008  # a frozen default: Prefect shows it in the form
    run_dir: RunDir = "runs/pipeline",
    batches: Batches = 1,
    progress: Progress = True,
) -> dict[str, str]:
    """The whole run: select users -> encode -> train -> recommend -> images -> describe -> evaluate -> report.

    Rerunning a finished run does no work; rerunning a crashed one does only what is missing.
    Returns the run directory, the metrics file and ``cached``: the stages whose task this run
    found cached (comma-separated; empty when every stage ran).
    """
    return finish(run_dir, run_stages([stage.name for stage in PLAN], run_dir, settings, batches, progress))


@flow(name="train", persist_result=True)
def train_flow(
    settings: RunSettings = RunSettings(),  # noqa: B008
    run_dir: RunDir = "runs/pipeline",
    progress: Progress = True,
) -> dict[str, str]:
    """Fit the run's ranker on the leave-one-out training split into <run_dir>/model.

    A rerun with the same data, ranker config and seed reuses the saved model.
    """
    return finish(run_dir, run_stages(["train"], run_dir, settings, progress=progress))


@flow(name="recommend", persist_result=True)
def recommend_flow(
    settings: RunSettings = RunSettings(),  # noqa: B008
    run_dir: RunDir = "runs/pipeline",
    progress: Progress = True,
) -> dict[str, str]:
    """Select the run's users and recommend the saved ranker's top-k items to them (seen items excluded)."""
    return finish(run_dir, run_stages(["select-users", "recommend"], run_dir, settings, progress=progress))


@flow(name="generate", persist_result=True)
def generate_flow(
    settings: RunSettings = RunSettings(),  # noqa: B008
    run_dir: RunDir = "runs/pipeline",
    progress: Progress = True,
) -> dict[str, str]:
    """A personalised image (and its baseline) and a description per recommendation of the run directory."""
    return finish(run_dir, run_stages(["encode", "images", "describe"], run_dir, settings, progress=progress))


@flow(name="evaluate", persist_result=True)
def evaluate_flow(
    settings: RunSettings = RunSettings(),  # noqa: B008
    run_dir: RunDir = "runs/pipeline",
    progress: Progress = True,
) -> dict[str, str]:
    """Score what the run directory holds (ranking, images, descriptions) into metrics.json and render the report."""
    return finish(run_dir, run_stages(["evaluate", "report"], run_dir, settings, progress=progress))


FLOWS = {
    "train": train_flow,
    "recommend": recommend_flow,
    "generate": generate_flow,
    "evaluate": evaluate_flow,
    "pipeline": pipeline_flow,
}
