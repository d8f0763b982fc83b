"""``genrec demo`` as a run of the ``pipeline`` flow, with a Prefect server or without one.

The demo is a run preset (``genrec/presets/runs/demo.json``; ``demo-standard`` with the hub
models): :func:`genrec.pipelines.stages.run_demo` runs the same settings as plain functions.

With ``PREFECT_API_URL`` set, the run goes to that server (and shows in its UI). Without it,
Prefect starts a temporary local server for the process, with the settings of
:func:`genrec.temporary_server.no_server_settings`.
"""

from __future__ import annotations

from pathlib import Path

from genrec.temporary_server import no_server_settings

DEMO_PRESETS = {"tiny": "demo", "standard": "demo-standard"}  # genrec demo --preset -> run preset


def demo_preset(preset: str) -> str:
    """The run preset of ``genrec demo --preset``; ConfigError for an unknown one."""
    from genrec.config import ConfigError

    if preset not in DEMO_PRESETS:
        raise ConfigError(f"unknown demo preset {preset!r}; valid presets: {', '.join(DEMO_PRESETS)}")
    return DEMO_PRESETS[preset]


def run_demo_flow(out: str | Path = "runs/demo", preset: str = "tiny", progress: bool = True) -> dict[str, str]:
    """The main job: the ``pipeline`` flow with the demo's settings; returns the flow's result.

    That is the run directory, its metrics file and the stages found cached (a rerun on the same
    ``out`` finds every task cached and does no work). The preset and the run directory are
    checked before any flow runs.
    """
    from genrec.flows.pipeline import pipeline_flow
    from genrec.pipelines.settings import load_run_preset
    from genrec.run_directory import RunDirectory

    settings = load_run_preset(demo_preset(preset))
    RunDirectory(out)
    with no_server_settings():
        return pipeline_flow(settings=settings, run_dir=str(out), progress=progress)
