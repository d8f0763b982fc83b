"""``genrec demo`` as a run of the ``pipeline`` flow, with a Prefect server or without one.

The demo's settings are :func:`genrec.pipelines.run.demo_settings` (the one definition;
:func:`genrec.pipelines.run.run_demo` runs the same settings as plain functions);
:func:`demo_parameters` only renames them to the flow's parameters.

With ``PREFECT_API_URL`` set, the run goes to that server (and shows in its UI). Without it,
Prefect starts a temporary local server for the process (a subprocess over the SQLite database in
``PREFECT_HOME``, ``~/.prefect``) and stops it at exit; the run is recorded there and nowhere else.
For that case :func:`no_server_settings` applies, for this process only and unless set by the user:

- no flow-run heartbeats: they let a server notice a crashed run, and a server that dies with the
  process has nothing to notice (each flow run also waits up to a second for the heartbeat thread);
- a longer start-up limit for the temporary server (120 s instead of Prefect's 20 s): its first
  start creates and migrates the database, which ran past 20 s on this 2-core machine under load;
- no telemetry from the temporary server (``PREFECT_SERVER_ANALYTICS_ENABLED``): the demo runs
  offline, where the server's telemetry call only fails and logs an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect.settings import (
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    PREFECT_SERVER_ANALYTICS_ENABLED,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    get_current_settings,
    temporary_settings,
)

TEMPORARY_SERVER_STARTUP_SECONDS = 120


def uses_temporary_server() -> bool:
    """True when no Prefect server is configured (no ``PREFECT_API_URL``): Prefect starts a temporary one."""
    return not get_current_settings().api.url


def _set_by_user(section: Any, name: str) -> bool:
    """Whether setting ``name`` of a section of Prefect's settings was set (environment, profile, prefect.toml)."""
    return name in section.model_fields_set


@contextmanager
def no_server_settings() -> Iterator[None]:
    """The settings of a run against Prefect's temporary server (see the module docstring); else no change."""
    updates: dict[Any, Any] = {}
    settings = get_current_settings()
    if uses_temporary_server():
        if not _set_by_user(settings.flows, "heartbeat_frequency"):
            updates[PREFECT_FLOWS_HEARTBEAT_FREQUENCY] = None
        if not _set_by_user(settings.server.ephemeral, "startup_timeout_seconds"):
            updates[PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS] = TEMPORARY_SERVER_STARTUP_SECONDS
        if not _set_by_user(settings.server, "analytics_enabled"):
            updates[PREFECT_SERVER_ANALYTICS_ENABLED] = False
    with temporary_settings(updates=updates):
        yield


def demo_parameters(out: str | Path, preset: str = "tiny", progress: bool = True) -> dict[str, Any]:
    """The ``pipeline`` flow's parameters of the demo (:func:`genrec.pipelines.run.demo_settings`) into ``out``.

    Raises ConfigError for an unknown preset or a run directory that is a file: checked here,
    before any server starts or any flow runs.
    """
    from genrec.pipelines.run import check_run_dir, demo_settings

    settings = demo_settings(preset)
    check_run_dir(out)
    return {
        "dataset": settings["dataset"],
        "run_dir": str(out),
        "ranker": settings["ranker"],
        "ranker_config": settings["config"],
        "user_mode": "sample",
        "sample": settings["sample"],
        "k": settings["k"],
        "image_generator": settings["image_generator"],
        "text_generator": settings["text_generator"],
        "encoder": settings["encoder"],
        "text_generator_overrides": settings["text_generator_overrides"],
        "progress": progress,
    }


def run_demo_flow(out: str | Path = "runs/demo", preset: str = "tiny", progress: bool = True) -> dict[str, str]:
    """The main job: the ``pipeline`` flow with the demo's parameters; returns the flow's result.

    That is the run directory, its metrics file and the stages found cached (a rerun on the same
    ``out`` finds every task cached and does no work).
    """
    from genrec.flows.pipeline import pipeline_flow

    parameters = demo_parameters(out, preset, progress)
    with no_server_settings():
        return pipeline_flow(**parameters)
