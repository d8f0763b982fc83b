"""``genrec demo`` as a run of the ``pipeline`` flow, with a Prefect server or without one.

The demo's settings are :func:`genrec.pipelines.run.demo_settings` (the one definition;
:func:`genrec.pipelines.run.run_demo` runs the same settings as plain functions);
:func:`demo_parameters` only renames them to the flow's parameters.

With ``PREFECT_API_URL`` set, the run goes to that server (and shows in its UI). Without it,
Prefect starts a temporary local server for the process, with the settings of
:func:`genrec.temporary_server.no_server_settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genrec.temporary_server import no_server_settings


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
