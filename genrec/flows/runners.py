"""The flows' task runner, chosen by a config: Prefect's default (threads in the flow's process) or Ray.

Ray goes through prefect-ray's ``RayTaskRunner``: either a local Ray cluster started for the run
(``workers`` CPUs, so that many tasks at once) or an existing cluster (``address``: ``auto``, a
``ray://<head>:10001`` client address or a ``<head>:6379`` GCS address). Every task submitted to
Ray runs in a Ray worker process, possibly on another node, so tasks pass paths and write their
outputs to the run directory, and Prefect persists their results there too
(:func:`genrec.flows.tasks.stage_tasks`): on a multi-node cluster the run directory must be
storage every node reaches (a shared file system), or ``PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK``
must name a remote storage block. Tasks tagged ``gpu`` (train, generate, evaluate and the
generate batches) request ``gpus_per_task`` GPUs through Ray's remote options. Each task takes one
CPU (Ray's default) and one torch thread (:data:`RAY_WORKER_RUNTIME_ENV`).

API::

    TaskRunnerConfig(kind="default" | "ray", address=None, workers=None, gpus_per_task=0)
    create_task_runner(config) -> TaskRunner
    with_task_runner(flow, config) -> Flow          # e.g. with_task_runner(pipeline_flow, cfg)(batches=4)

``prefect-ray`` (and ``ray``) are the ``ray`` extra of genrec; only ``kind="ray"`` imports them.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import Flow, Task
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from pydantic import Field, model_validator

from genrec.config import ConfigError, StrictModel
from genrec.flows.tasks import GPU_TAG

# Ray sets OMP_NUM_THREADS in its workers only where the driver's environment lacks it, and torch
# follows an inherited MKL_NUM_THREADS too: a driver started with 2 threads gave every one-CPU worker
# 2 torch threads, so 2 workers on 2 cores ran 4 threads and were slower than 1 (benchmarks/RESULTS.md).
RAY_WORKER_RUNTIME_ENV: dict[str, Any] = {"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}


class TaskRunnerConfig(StrictModel):
    """Where the flows' submitted tasks run."""

    kind: Literal["default", "ray"] = Field("default", description="default: Prefect's thread pool; ray: Ray tasks")
    address: str | None = Field(
        None,
        description="an existing Ray cluster ('auto', 'ray://<head>:10001', '<head>:6379'); "
        "empty: a local cluster started for the run",
    )
    workers: int | None = Field(None, ge=1, description="CPUs of the local cluster (tasks at once); empty: all")
    gpus_per_task: float = Field(0.0, ge=0, description="GPUs (num_gpus) each gpu-tagged task requests from Ray")

    @model_validator(mode="after")
    def _fields_of_kind(self) -> TaskRunnerConfig:
        if self.kind == "default":
            given = [name for name in ("address", "workers") if getattr(self, name) is not None]
            given += ["gpus_per_task"] if self.gpus_per_task else []
            if given:
                raise ValueError(f"{', '.join(given)}: Ray settings; set kind = 'ray' to use them")
        if self.address is not None and self.workers is not None:
            raise ValueError("workers sizes a local cluster; an existing cluster (address) has its own")
        return self


def ray_remote_options(task: Task, gpus_per_task: float) -> dict[str, Any]:
    """Ray remote options of one task: ``num_gpus`` for a ``gpu``-tagged task when GPUs are requested."""
    return {"num_gpus": gpus_per_task} if gpus_per_task and GPU_TAG in task.tags else {}


def create_task_runner(config: TaskRunnerConfig | None = None) -> TaskRunner:
    """The task runner the config names (Prefect's ``ThreadPoolTaskRunner`` by default)."""
    config = config or TaskRunnerConfig()
    if config.kind == "default":
        return ThreadPoolTaskRunner()
    try:
        from prefect_ray import RayTaskRunner
        from prefect_ray.context import remote_options
    except ImportError as err:
        raise ConfigError(f"task runner 'ray' needs prefect-ray: pip install 'genrec[ray]' ({err})") from None

    class GenrecRayTaskRunner(RayTaskRunner):
        """prefect-ray's runner; a ``gpu``-tagged task asks Ray for ``gpus_per_task`` GPUs."""

        def __init__(self, address: str | None, init_kwargs: dict[str, Any], gpus_per_task: float):
            super().__init__(address=address, init_kwargs=init_kwargs)
            self.gpus_per_task = gpus_per_task

        def duplicate(self) -> GenrecRayTaskRunner:
            return type(self)(self.address, self.init_kwargs, self.gpus_per_task)

        def __eq__(self, other: object) -> bool:
            return super().__eq__(other) and self.gpus_per_task == getattr(other, "gpus_per_task", None)

        __hash__ = None  # type: ignore[assignment]

        def submit(self, task, parameters, wait_for=None, dependencies=None):  # type: ignore[override]
            # Futures among the parameters are Ray dependencies: Ray starts the task after them.
            # `wait_for` futures are waited for inside the worker, and a task blocked there gives its
            # CPU back to Ray, so every mapped task would start on a one-CPU cluster and then all
            # would run at once. Waiting here keeps "tasks at once = the cluster's CPUs".
            for upstream in wait_for or ():
                upstream.wait()
            with remote_options(**ray_remote_options(task, self.gpus_per_task)):
                return super().submit(task, parameters, wait_for, dependencies)

    init_kwargs: dict[str, Any] = {"runtime_env": RAY_WORKER_RUNTIME_ENV}
    if config.address is None:  # a local cluster, sized here; an existing cluster takes no sizing arguments
        init_kwargs["include_dashboard"] = False
        if config.workers is not None:
            init_kwargs["num_cpus"] = config.workers
    return GenrecRayTaskRunner(config.address, init_kwargs, config.gpus_per_task)


def with_task_runner(flow: Flow, config: TaskRunnerConfig | None = None) -> Flow:
    """``flow`` whose submitted tasks run on the runner ``config`` names."""
    return flow.with_options(task_runner=create_task_runner(config))
