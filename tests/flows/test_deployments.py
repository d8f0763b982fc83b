"""Deployments: the config file, its errors, `genrec serve`, and a real run triggered through the API."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import PrefectHTTPStatusError
from prefect.runner import Runner
from prefect.settings import get_current_settings
from typer.testing import CliRunner

from genrec.cli import app
from genrec.config import ConfigError
from genrec.flows import train_flow
from genrec.flows.deployments import (
    build_deployments,
    deployment_options,
    load_deployments,
    register_deployments,
    served_flow,
)
from genrec.io import read_json

REPO_ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_the_packaged_set_has_the_scheduled_and_ui_deployments():
    config = load_deployments()
    by_name = {f"{d.flow}/{d.name}": d for d in config.deployments}
    manual = {"pipeline/run-from-ui", "train/train-from-ui", "recommend/recommend-from-ui", "generate/generate-from-ui"}
    assert set(by_name) == {"train/nightly", "pipeline/daily", *manual}
    assert len({d.name for d in config.deployments}) == len(config.deployments)  # no two share a name
    assert by_name["pipeline/daily"].parameters["settings"]["users"] == {"mode": "active", "active_within_days": 1}
    assert not any(by_name[name].schedules for name in manual)
    deployments = {d.name + "@" + d.entrypoint.rsplit(".", 1)[1]: d for d in build_deployments(config)}
    nightly = deployments["nightly@train_flow"].schedules[0].schedule
    assert (nightly.cron, nightly.timezone) == ("0 2 * * *", "UTC")
    assert all(d.enforce_parameter_schema for d in deployments.values())
    assert "gpu" not in deployments["nightly@train_flow"].tags  # tags of the deployment; tasks carry `gpu`


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('[[deployments]]\nname = "a"\nflow = "trian"\n', "deployments.0.flow: unknown flow 'trian'"),
        (
            '[[deployments]]\nname = "a"\nflow = "train"\nschedules = [{cron = "0 25 * * *"}]\n',
            'deployments.0.schedules.0: Invalid cron string: "0 25 * * *"',
        ),
        (
            '[[deployments]]\nname = "a"\nflow = "train"\nschedules = [{cron = "0 2 * * *", timezone = "Mars/Base"}]\n',
            'Invalid timezone: "Mars/Base"',
        ),
        (
            '[[deployments]]\nname = "a"\nflow = "pipeline"\nparameters = {colour = "red"}\n',
            "colour: unknown parameter of flow 'pipeline'",
        ),
        (
            '[[deployments]]\nname = "a"\nflow = "pipeline"\nparameters = {settings = {ranker = "nope"}}\n',
            "unknown ranker 'nope'; valid names:",
        ),
        ('[[deployments]]\nname = "a"\nflow = "train"\n[[deployments]]\nname = "a"\nflow = "train"\n', "twice"),
        ('[[deployments]\nname = "a"\n', "invalid TOML"),
    ],
)
def test_a_bad_config_names_the_file_and_the_key(tmp_path: Path, body: str, expected: str):
    path = write(tmp_path / "deployments.toml", body)
    with pytest.raises(ConfigError) as err:
        load_deployments(path)
    assert str(err.value).startswith(str(path)) and expected in str(err.value)


@pytest.mark.parametrize(
    ("runner", "expected"),
    [
        ('{ kind = "dask" }', "deployments.0.task_runner.kind: Input should be 'default' or 'ray'"),
        ('{ address = "auto" }', "deployments.0.task_runner: address: Ray settings; set kind = 'ray'"),
        ('{ kind = "ray", address = "auto", workers = 2 }', "deployments.0.task_runner: workers sizes a local cluster"),
        ('{ kind = "ray", gpus = 1 }', "deployments.0.task_runner.gpus: Extra inputs are not permitted"),
        ('{ kind = "ray", gpus_per_task = -1 }', "deployments.0.task_runner.gpus_per_task: Input should be greater"),
    ],
)
def test_a_bad_task_runner_names_the_file_and_the_key(tmp_path: Path, runner: str, expected: str):
    path = write(tmp_path / "d.toml", f'[[deployments]]\nname = "a"\nflow = "pipeline"\ntask_runner = {runner}\n')
    with pytest.raises(ConfigError) as err:
        load_deployments(path)
    assert str(err.value).startswith(str(path)) and expected in str(err.value)


def test_a_deployment_chooses_its_task_runner_and_a_work_pool_refuses_ray(tmp_path: Path):
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_ray import RayTaskRunner

    from genrec.flows.runners import TaskRunnerConfig

    path = write(
        tmp_path / "d.toml",
        '[[deployments]]\nname = "local"\nflow = "pipeline"\n'
        '[[deployments]]\nname = "cluster"\nflow = "pipeline"\n'
        'task_runner = { kind = "ray", address = "ray://head:10001", gpus_per_task = 1 }\n',
    )
    local, cluster = load_deployments(path).deployments
    assert local.task_runner == TaskRunnerConfig()
    assert cluster.task_runner == TaskRunnerConfig(kind="ray", address="ray://head:10001", gpus_per_task=1)
    assert isinstance(served_flow(local).task_runner, ThreadPoolTaskRunner)
    ray = served_flow(cluster).task_runner  # built, not started: no cluster is contacted
    assert isinstance(ray, RayTaskRunner) and ray.address == "ray://head:10001" and ray.gpus_per_task == 1
    with pytest.raises(ConfigError, match=r"d\.toml: deployments\.1\.task_runner: a work pool's workers run"):
        register_deployments(path, "any-pool")
    checked = CliRunner().invoke(app, ["serve", "--check", "--config", str(path)], env={"COLUMNS": "300"})
    assert checked.exit_code == 0 and '"kind": "ray", "address": "ray://head:10001"' in checked.output


@pytest.mark.parametrize("name", ["train", "recommend", "generate", "evaluate", "pipeline"])
def test_a_served_flow_validates_its_parameters_after_pickling(name: str):
    """`genrec serve` hands each run's subprocess the flow object, pickled by value: its types must come along."""
    import cloudpickle

    from genrec.flows.deployments import DeploymentConfig

    served = served_flow(DeploymentConfig(name="a", flow=name))
    unpickled = cloudpickle.loads(cloudpickle.dumps(served))
    assert unpickled.validate_parameters({"settings": {"seed": 1}})["settings"].seed == 1


def test_json_and_yaml_configs_load(tmp_path: Path):
    json_file = write(tmp_path / "d.json", '{"deployments": [{"name": "a", "flow": "generate"}]}')
    yaml_file = write(tmp_path / "d.yaml", "deployments:\n  - name: a\n    flow: evaluate\n    parameters: {k: 1}\n")
    assert load_deployments(json_file).deployments[0].flow == "generate"
    with pytest.raises(ConfigError, match=r"(?s)d\.yaml.*k: unknown parameter of flow 'evaluate'"):
        load_deployments(yaml_file)


def test_serve_reports_a_bad_config_without_a_traceback(tmp_path: Path):
    path = write(tmp_path / "bad.toml", '[[deployments]]\nname = "a"\nflow = "nope"\n')
    result = CliRunner().invoke(app, ["serve", "--config", str(path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert f"error: {path}" in result.output and "unknown flow 'nope'" in result.output
    assert "Traceback" not in result.output
    checked = CliRunner().invoke(app, ["serve", "--check"], env={"COLUMNS": "300"})
    assert checked.exit_code == 0 and "pipeline/daily" in checked.output and "0 6 * * * (UTC)" in checked.output


def test_serve_without_a_server_says_how_to_start_one(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp_path), "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "300"}
    done = subprocess.run(
        [sys.executable, "-m", "genrec.cli", "serve"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert "no Prefect server configured" in done.stdout and "prefect server start" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def toml_settings(toy_data: str, users: list[int], k: int) -> str:
    generation = '{ text_generator = "template" }'
    return (
        f'{{ dataset = "{toy_data}", ranker = "popular", users = {{ mode = "ids", ids = {users} }}, k = {k}, '
        f"generation = {generation} }}"
    )


def test_a_run_triggered_through_the_api_completes_and_writes_its_outputs(toy_data: str, tmp_path: Path):
    run_dir = tmp_path / "run"
    config = write(
        tmp_path / "deployments.toml",
        f'[[deployments]]\nname = "test"\nflow = "pipeline"\n'
        f'parameters = {{ run_dir = "{run_dir}", settings = {toml_settings(toy_data, [1, 2], 2)} }}\n',
    )
    (deployment,) = load_deployments(config).deployments

    settings = deployment.parameters["settings"]

    async def round_trip():  # what `genrec serve` does (serve_deployments), run once
        runner = Runner(name="genrec-test-runner")
        deployment_id = await runner.aadd_flow(served_flow(deployment), **deployment_options(deployment))
        async with get_client() as client:
            for bad in ({"k": 0}, {"ranker": "no-such"}):  # enforced schema: rejected at creation
                with pytest.raises(PrefectHTTPStatusError, match=r"409|422"):
                    await client.create_flow_run_from_deployment(deployment_id, parameters={"settings": settings | bad})
            created = await client.create_flow_run_from_deployment(
                deployment_id, parameters={"settings": settings | {"seed": 1}}
            )
            await runner.start(run_once=True)
            return await client.read_flow_run(created.id)

    flow_run = asyncio.run(round_trip())
    assert flow_run.state.is_completed(), flow_run.state
    assert flow_run.parameters["settings"]["seed"] == 1 and flow_run.parameters["settings"]["users"]["ids"] == [1, 2]
    recommendations = pd.read_parquet(run_dir / "recommendations.parquet")
    assert recommendations["user_id"].tolist() == [1, 1, 2, 2]
    assert len(pd.read_parquet(run_dir / "images.parquet")) == 4
    assert "ranking" in read_json(run_dir / "metrics.json")
    assert read_json(run_dir / "config.json")["settings"]["seed"] == 1


def test_deployments_registered_with_a_work_pool_run_on_a_worker(toy_data: str, tmp_path: Path, monkeypatch):
    run_dir = tmp_path / "run"
    config = write(
        tmp_path / "deployments.toml",
        f'[[deployments]]\nname = "pooled"\nflow = "recommend"\n'
        f'parameters = {{ run_dir = "{run_dir}", settings = {toml_settings(toy_data, [5], 1)} }}\n',
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"no work pool 'genrec-test-pool'.*prefect work-pool create"):
        register_deployments(config, "genrec-test-pool")

    async def create_pool():
        async with get_client() as client:
            await client.create_work_pool(WorkPoolCreate(name="genrec-test-pool", type="process"))

    asyncio.run(create_pool())
    settings = load_deployments(config).deployments[0].parameters["settings"]
    train_flow(settings=settings, run_dir=str(run_dir))  # the deployment recommends from this model
    assert register_deployments(config, "genrec-test-pool") == ["recommend/pooled"]

    async def trigger():
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("recommend/pooled")
            assert deployment.work_pool_name == "genrec-test-pool"
            assert deployment.job_variables == {"working_dir": str(tmp_path)}
            return await client.create_flow_run_from_deployment(deployment.id)

    created = asyncio.run(trigger())
    env = {**os.environ, **get_current_settings().to_environment_variables(exclude_unset=True)}
    worker = subprocess.run(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", "genrec-test-pool", "--run-once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert worker.returncode == 0, worker.stderr[-3000:]

    async def read():
        async with get_client() as client:
            return await client.read_flow_run(created.id)

    assert asyncio.run(read()).state.is_completed()
    assert pd.read_parquet(run_dir / "recommendations.parquet")["user_id"].tolist() == [5]
