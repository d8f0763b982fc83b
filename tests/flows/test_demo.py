"""``genrec demo``'s flow parameters and its settings without a Prefect server (the CLI run: tests/test_cli.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    get_current_settings,
    temporary_settings,
)

from genrec.config import ConfigError
from genrec.flows import pipeline_flow
from genrec.flows.demo import demo_parameters
from genrec.pipelines import run as gr
from genrec.temporary_server import TEMPORARY_SERVER_STARTUP_SECONDS, no_server_settings, start_temporary_server


def test_demo_parameters_are_the_demo_settings_in_the_flows_names(tmp_path: Path):
    parameters = demo_parameters(tmp_path / "demo", "tiny", progress=False)
    settings = gr.demo_settings("tiny")
    assert parameters == {
        "dataset": gr.DEMO_DATASET,
        "run_dir": str(tmp_path / "demo"),
        "ranker": gr.DEMO_RANKER,
        "ranker_config": gr.DEMO_RANKER_CONFIG,
        "user_mode": "sample",
        "sample": gr.DEMO_USERS,
        "k": gr.DEMO_TOP_K,
        "image_generator": settings["image_generator"],
        "text_generator": gr.DEMO_TEXT_GENERATOR,
        "encoder": settings["encoder"],
        "text_generator_overrides": {"grounding": {"max_retries": 1}},
        "progress": False,
    }
    pipeline_flow.validate_parameters(parameters)  # what the flow accepts
    with pytest.raises(ConfigError, match="unknown demo preset 'huge'"):
        demo_parameters(tmp_path / "demo", "huge")


def test_the_temporary_server_starts_in_a_thread_with_the_no_server_settings(monkeypatch):
    from prefect.server.api.server import SubprocessASGIServer

    seen: list[float] = []
    monkeypatch.setattr(
        SubprocessASGIServer,
        "start",
        lambda self, timeout=None: seen.append(get_current_settings().server.ephemeral.startup_timeout_seconds),
    )
    assert start_temporary_server() is None  # a configured server (the test harness): nothing to start
    with temporary_settings(restore_defaults={PREFECT_API_URL}), no_server_settings():
        starting = start_temporary_server()
        assert starting is not None
        starting.join()
    assert seen == [TEMPORARY_SERVER_STARTUP_SECONDS]  # the thread saw the settings of the context it came from


def test_without_a_server_the_demo_drops_heartbeats_and_waits_longer_for_the_temporary_server():
    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # as on a machine with no server configured
        with no_server_settings():
            settings = get_current_settings()
            assert settings.flows.heartbeat_frequency is None
            assert settings.server.ephemeral.startup_timeout_seconds == TEMPORARY_SERVER_STARTUP_SECONDS
            assert settings.server.analytics_enabled is False
        user = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 60, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 30}
        with temporary_settings(updates=user), no_server_settings():  # what the user set wins
            settings = get_current_settings()
            assert settings.flows.heartbeat_frequency == 60
            assert settings.server.ephemeral.startup_timeout_seconds == 30
    before = get_current_settings()
    with no_server_settings():  # a configured server (here the test harness): nothing changes
        assert get_current_settings().flows == before.flows and get_current_settings().server == before.server


@pytest.mark.slow
def test_the_demo_command_runs_without_a_server_and_reruns_from_its_cache(tmp_path: Path):
    """`genrec demo` as a user without a Prefect server runs it (a temporary server, a new PREFECT_HOME), twice."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT, write_toy_latest

    data = write_toy_latest(tmp_path / "toy")
    script = (  # the demo's settings on toy data with template descriptions, then the CLI
        "import sys\nfrom genrec.pipelines import run\n"
        f"run.DEMO_DATASET = {str(data)!r}\n"
        "run.DEMO_PRESETS['tiny'] = ('tiny', 'tiny', 'template')\n"
        "from genrec.cli import app\napp(sys.argv[1:])\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "300"}
    command = [sys.executable, "-c", script, "demo", "--out", str(tmp_path / "demo"), "--no-progress"]
    runs = [subprocess.run(command, env=env, capture_output=True, text=True, timeout=600) for _ in range(2)]
    for done in runs:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        assert "Starting temporary server" in done.stdout + done.stderr and "telemetry" not in done.stderr
        assert f"report: {tmp_path / 'demo' / 'report.html'}" in done.stdout
    assert "cached (reused from an earlier run" not in runs[0].stdout
    assert "select-users, train, recommend, generate, evaluate, report" in runs[1].stdout
