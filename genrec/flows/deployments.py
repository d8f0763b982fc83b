"""Deployments of genrec's flows, defined in a config file and served by ``genrec serve``.

A config file (TOML, JSON or YAML) lists deployments: a name, the flow (``train``,
``recommend``, ``generate``, ``evaluate``, ``pipeline``), optional cron schedules with a time
zone, default parameters, tags and the task runner (``task_runner``: a
:class:`~genrec.flows.runners.TaskRunnerConfig`, Prefect's default or Ray). Everything is checked
when the file is loaded (unknown flow, invalid cron or time zone, unknown parameter, a parameter
value the flow would reject, a bad task runner), and a problem is a
:class:`~genrec.config.ConfigError` naming the file and the key.

The default set ships with the package (``deployments.toml`` next to this module): a nightly
``train``, a daily ``pipeline`` for the users active in the last day, and unscheduled
``pipeline`` and ``generate`` deployments to trigger from the Prefect UI.

Serving needs a Prefect server: :func:`serve_deployments` refuses to start without
``PREFECT_API_URL`` (Prefect would otherwise serve against a temporary in-process server that
no UI can reach and that forgets every run when the process exits). It hands Prefect's runner
the flow objects themselves, each with its deployment's task runner
(:func:`~genrec.flows.runners.with_task_runner`), so a served run uses that runner; a work pool's
worker loads the flow from its module instead (Prefect's default runner), so
:func:`register_deployments` refuses a deployment whose task runner is not the default.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import tomllib
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron
from prefect.settings import get_current_settings
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from genrec.config import ConfigError, StrictModel
from genrec.flows.pipeline import FLOWS
from genrec.flows.runners import TaskRunnerConfig, with_task_runner

DEFAULT_CONFIG = "deployments.toml"  # package data of genrec.flows
SUFFIXES = {".toml": "TOML", ".json": "JSON", ".yaml": "YAML", ".yml": "YAML"}


@cache
def parameter_model(flow_name: str) -> type[BaseModel]:
    """A pydantic model of the flow's parameters (its signature's types and defaults), extra keys forbidden."""
    signature = inspect.signature(FLOWS[flow_name].fn, eval_str=True)
    fields: dict[str, Any] = {
        name: (parameter.annotation, ... if parameter.default is parameter.empty else parameter.default)
        for name, parameter in signature.parameters.items()
    }
    return create_model(f"{flow_name}_parameters", __config__=ConfigDict(extra="forbid"), **fields)


class ScheduleConfig(StrictModel):
    """A cron schedule, read in ``timezone``."""

    cron: str = Field(description="cron expression, e.g. '0 3 * * *' (03:00 every day)")
    timezone: str = Field("UTC", description="IANA time zone the cron expression is read in, e.g. Europe/Berlin")
    active: bool = Field(True, description="false: registered but paused")

    @model_validator(mode="after")
    def _valid(self) -> ScheduleConfig:
        try:  # Prefect's own schedule model: what passes here, the server accepts
            CronSchedule(cron=self.cron, timezone=self.timezone)
        except ValidationError as err:
            messages = [problem["msg"].removeprefix("Value error, ") for problem in err.errors()]
            raise ValueError("; ".join(messages)) from None
        return self


class DeploymentConfig(StrictModel):
    """One deployment: a flow with a name, schedules and default parameters."""

    name: str = Field(min_length=1, pattern=r"^[^/%&><]+$", description="deployment name (unique per flow)")
    flow: str = Field(description="flow to deploy: " + ", ".join(FLOWS))
    description: str | None = Field(None, description="shown in the Prefect UI; default: the flow's docstring")
    schedules: list[ScheduleConfig] = Field(default_factory=list, description="none: runs only when triggered")
    parameters: dict[str, Any] = Field(default_factory=dict, description="default parameters of the runs")
    tags: list[str] = Field(default_factory=list)
    task_runner: TaskRunnerConfig = Field(
        default_factory=TaskRunnerConfig,
        description="where the runs' tasks run: {kind = 'default'} (threads) or {kind = 'ray', address = ...}",
    )

    @field_validator("flow")
    @classmethod
    def _known_flow(cls, flow: str) -> str:
        if flow not in FLOWS:
            raise ValueError(f"unknown flow {flow!r}; valid flows: {', '.join(FLOWS)}")
        return flow

    @field_validator("parameters")
    @classmethod
    def _valid_parameters(cls, parameters: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        flow = info.data.get("flow")
        if flow is None:  # the flow itself is invalid: reported on its own
            return parameters
        try:
            parameter_model(flow).model_validate(parameters)
        except ValidationError as err:
            problems = []
            for problem in err.errors():
                key = ".".join(str(part) for part in problem["loc"])
                if problem["type"] == "extra_forbidden":
                    valid = ", ".join(parameter_model(flow).model_fields)
                    problems.append(f"{key}: unknown parameter of flow {flow!r} (valid: {valid})")
                else:
                    problems.append(f"{key}: {problem['msg']} (got {problem.get('input')!r})")
            raise ValueError("; ".join(problems)) from None
        return parameters


class DeploymentsConfig(StrictModel):
    """The deployments ``genrec serve`` serves."""

    deployments: list[DeploymentConfig] = Field(min_length=1)

    @field_validator("deployments")
    @classmethod
    def _unique(cls, deployments: list[DeploymentConfig]) -> list[DeploymentConfig]:
        seen: set[tuple[str, str]] = set()
        for deployment in deployments:
            key = (deployment.flow, deployment.name)
            if key in seen:
                raise ValueError(f"deployment {deployment.flow}/{deployment.name} is defined twice")
            seen.add(key)
        return deployments


def default_config_path() -> Path:
    return Path(str(files("genrec.flows") / DEFAULT_CONFIG))


def read_config_file(path: Path) -> Any:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"{path}: unknown config format {path.suffix!r}; use one of {', '.join(SUFFIXES)}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: deployments config file not found") from None
    try:
        if kind == "TOML":
            return tomllib.loads(text)
        if kind == "JSON":
            return json.loads(text)
        return yaml.safe_load(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML ({err})") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML ({err})") from None


def load_deployments(path: str | Path | None = None) -> DeploymentsConfig:
    """Read and check a deployments config file (default: the packaged set)."""
    path = default_config_path() if path is None else Path(path)
    data = read_config_file(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table/object with a 'deployments' list, got {type(data).__name__}")
    return DeploymentsConfig.from_dict(data, source=str(path))


def deployment_options(deployment: DeploymentConfig) -> dict[str, Any]:
    """Prefect's deployment options of one config entry (``Flow.to_deployment`` and ``Runner.add_flow`` take them)."""
    return {
        "name": deployment.name,
        "description": deployment.description,
        "schedules": [Cron(s.cron, timezone=s.timezone, active=s.active) for s in deployment.schedules],
        "parameters": deployment.parameters,
        "tags": ["genrec", *deployment.tags],
        "enforce_parameter_schema": True,
        "entrypoint_type": EntrypointType.MODULE_PATH,
    }


def served_flow(deployment: DeploymentConfig, source: str = "deployments", index: int = 0) -> Flow:
    """The deployment's flow with its task runner; a ConfigError naming ``source`` and the key if it cannot be made."""
    flow: Flow = FLOWS[deployment.flow]
    if deployment.task_runner == TaskRunnerConfig():
        return flow
    try:
        return with_task_runner(flow, deployment.task_runner)
    except ConfigError as err:
        raise ConfigError(f"{source}: deployments.{index}.task_runner: {err}") from None


def build_deployments(config: DeploymentsConfig, work_pool: str | None = None) -> list[RunnerDeployment]:
    """Prefect runner deployments; the API enforces each flow's parameter schema on every run created.

    With ``work_pool`` the deployments run on that pool's workers, in the current directory (so a
    relative ``run_dir`` means the same place for ``genrec serve`` and a worker started here).
    """
    pool = {} if work_pool is None else {"work_pool_name": work_pool, "job_variables": {"working_dir": str(Path.cwd())}}
    return [FLOWS[d.flow].to_deployment(**deployment_options(d), **pool) for d in config.deployments]


def require_server() -> str:
    """The configured Prefect API URL, once it answers; a ConfigError saying what to do otherwise."""
    from prefect.client.orchestration import get_client

    url = get_current_settings().api.url
    if not url:
        raise ConfigError(
            "no Prefect server configured (PREFECT_API_URL is not set): start one with `prefect server start`, "
            "then `prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api` (or export it) and rerun"
        )
    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        raise ConfigError(f"the Prefect server at {url} does not answer ({problem}); is `prefect server start` up?")
    return url


def register_deployments(path: str | Path | None, work_pool: str) -> list[str]:
    """Register the deployments of ``path`` with a work pool (``prefect worker start --pool`` runs them).

    A deployment with a task runner other than the default is refused: the pool's workers load the
    flow from its module and would run it with Prefect's default runner.
    """
    from prefect.client.orchestration import get_client

    config = load_deployments(path)
    for index, deployment in enumerate(config.deployments):
        if deployment.task_runner != TaskRunnerConfig():
            raise ConfigError(
                f"{path or default_config_path()}: deployments.{index}.task_runner: a work pool's workers run "
                f"{deployment.flow}/{deployment.name} with Prefect's default task runner; serve it with "
                "`genrec serve` (without --work-pool) to use its task runner"
            )
    deployments = build_deployments(config, work_pool)
    require_server()
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(work_pool)
        except ObjectNotFound:
            raise ConfigError(
                f"no work pool {work_pool!r} on the Prefect server; create it with "
                f"`prefect work-pool create {work_pool} --type process`"
            ) from None
    for deployment in deployments:
        deployment.apply(work_pool_name=work_pool)
    return [f"{deployment.flow_name}/{deployment.name}" for deployment in deployments]


def serve_deployments(path: str | Path | None = None, limit: int | None = None) -> None:
    """Serve the deployments of ``path`` (default: the packaged set) until interrupted.

    Each deployment's flow goes to Prefect's runner as an object carrying its task runner
    (:func:`served_flow`); the runner runs every flow run in a subprocess of its own.
    """
    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner

    source = str(path or default_config_path())
    config = load_deployments(path)
    flows = [served_flow(deployment, source, index) for index, deployment in enumerate(config.deployments)]
    require_server()
    runner = Runner(limit=limit)
    for deployment, flow in zip(config.deployments, flows, strict=True):
        runner.add_flow(flow, **deployment_options(deployment))
    with contextlib.suppress(KeyboardInterrupt, TerminationSignal):  # Ctrl-C or a stop signal: a clean exit
        asyncio.run(runner.start())
