"""The pipeline flow with its generate stage in mapped batches, and on a local Ray cluster (issue 17)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from prefect import task
from prefect.task_runners import ThreadPoolTaskRunner

from genrec.config import ConfigError
from genrec.flows import pipeline_flow
from genrec.flows.runners import TaskRunnerConfig, create_task_runner, ray_remote_options, with_task_runner
from tests.conftest import write_posters
from tests.flows.prefect_api import task_runs
from tests.run_files import assert_same_run_files, run_files

SASREC = {"epochs": 2, "patience": 5, "hidden": 8, "inner": 16, "layers": 1, "heads": 1, "max_len": 8}


@pytest.fixture(scope="module")
def posters(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_posters(tmp_path_factory.mktemp("posters"), range(1, 11)))


def pipeline_params(toy_data: str, posters: str, run_dir: Path) -> dict:
    generation = {"image_generator": "tiny", "text_generator": "template", "encoder": "tiny", "images": posters}
    settings = {
        "dataset": toy_data,
        "ranker": "sasrec",
        "ranker_overrides": SASREC,
        "users": {"mode": "sample", "sample": 5},
        "k": 2,
        "generation": generation,
    }
    return {"settings": settings, "run_dir": str(run_dir)}


def test_task_runner_config_rejects_ray_settings_without_ray_and_sizes_only_local_clusters():
    with pytest.raises(ConfigError, match="address: Ray settings"):
        TaskRunnerConfig.from_dict({"address": "auto"}, source="runner")
    with pytest.raises(ConfigError, match="an existing cluster"):
        TaskRunnerConfig.from_dict({"kind": "ray", "address": "auto", "workers": 2}, source="runner")
    with pytest.raises(ConfigError, match="kindd"):
        TaskRunnerConfig.from_dict({"kindd": "ray"}, source="runner")
    assert isinstance(create_task_runner(), ThreadPoolTaskRunner)
    local = create_task_runner(TaskRunnerConfig(kind="ray", workers=2))
    assert local.address is None and local.init_kwargs["num_cpus"] == 2
    remote = create_task_runner(TaskRunnerConfig(kind="ray", address="ray://head:10001", gpus_per_task=1))
    assert remote.address == "ray://head:10001" and "num_cpus" not in remote.init_kwargs
    assert remote.duplicate() == remote and remote.duplicate().gpus_per_task == 1


def test_only_gpu_tagged_tasks_request_gpus_from_ray():
    @task(tags=["gpu"])
    def on_gpu() -> None: ...

    @task
    def on_cpu() -> None: ...

    assert ray_remote_options(on_gpu, 0.5) == {"num_gpus": 0.5}
    assert ray_remote_options(on_cpu, 0.5) == {}
    assert ray_remote_options(on_gpu, 0.0) == {}


def test_generate_in_mapped_batches_writes_what_one_generate_task_writes(toy_data: str, posters: str, tmp_path: Path):
    one = pipeline_flow(**pipeline_params(toy_data, posters, tmp_path / "one"), return_state=True)
    mapped = pipeline_flow(**pipeline_params(toy_data, posters, tmp_path / "mapped"), batches=3, return_state=True)
    assert one.is_completed() and mapped.is_completed()
    names = sorted(run.name.rsplit("-", 1)[0] for run in task_runs(mapped.state_details.flow_run_id))
    assert names.count("encode-items-batch") == 3 and names.count("generate-batch") == 3
    assert {"merge-item-batches", "merge-generated-batches", "evaluate"} <= set(names)
    assert_same_run_files(tmp_path / "one", tmp_path / "mapped")
    assert any(name.startswith("images/") and name.endswith(".png") for name in run_files(tmp_path / "mapped"))
    rerun = pipeline_flow(**pipeline_params(toy_data, posters, tmp_path / "mapped"), batches=3, return_state=True)
    assert {run.state.name for run in task_runs(rerun.state_details.flow_run_id)} == {"Cached"}


@pytest.mark.slow
def test_pipeline_on_a_local_ray_cluster_with_two_workers_writes_what_the_default_runner_writes(
    toy_data: str, posters: str, tmp_path: Path
):
    default = pipeline_flow(**pipeline_params(toy_data, posters, tmp_path / "default"), return_state=True)
    on_ray = with_task_runner(pipeline_flow, TaskRunnerConfig(kind="ray", workers=2))
    state = on_ray(**pipeline_params(toy_data, posters, tmp_path / "ray"), batches=2, return_state=True)
    assert default.is_completed() and state.is_completed()
    names = [run.name.rsplit("-", 1)[0] for run in task_runs(state.state_details.flow_run_id)]
    assert names.count("generate-batch") == 2 and "train" in names
    assert_same_run_files(tmp_path / "default", tmp_path / "ray")


@task
def busy_interval(index: int, log_dir: str) -> None:
    """Spin half a second; write this task's (start, end) wall-clock interval."""
    import time

    start = time.time()
    while time.time() - start < 0.5:
        pass
    (Path(log_dir) / f"{index}.txt").write_text(f"{start} {time.time()}")


@task
def gather(paths: list[None]) -> int:
    return len(paths)


@pytest.mark.slow
def test_a_one_cpu_ray_cluster_runs_tasks_that_wait_for_an_upstream_one_at_a_time(tmp_path: Path):
    """The pipeline's shape: mapped tasks, a merge of them, then mapped tasks that wait for the merge."""
    from prefect import flow

    @flow
    def fan_out(log_dir: str) -> None:
        merged = gather.submit(busy_interval.map(range(2), log_dir))
        busy_interval.map(range(2, 5), log_dir, wait_for=[merged]).result()

    with_task_runner(fan_out, TaskRunnerConfig(kind="ray", workers=1))(str(tmp_path))
    intervals = sorted(tuple(map(float, path.read_text().split())) for path in tmp_path.glob("*.txt"))
    assert len(intervals) == 5
    for (_, end), (start, _) in itertools.pairwise(intervals):
        assert start >= end - 0.05, intervals


@task
def torch_threads(task_number: int) -> int:
    import torch

    return torch.get_num_threads()


@pytest.mark.slow
def test_ray_tasks_get_one_torch_thread_whatever_the_driver_was_given(monkeypatch: pytest.MonkeyPatch):
    from prefect import flow

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("MKL_NUM_THREADS", "2")

    @flow
    def threads_of_two_tasks() -> list[int]:
        return torch_threads.map(range(2)).result()

    assert with_task_runner(threads_of_two_tasks, TaskRunnerConfig(kind="ray", workers=2))() == [1, 1]
