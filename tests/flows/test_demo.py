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
from genrec.flows.demo import DEMO_PRESETS, demo_preset
from genrec.pipelines.settings import load_run_preset
from genrec.temporary_server import TEMPORARY_SERVER_STARTUP_SECONDS, no_server_settings, start_temporary_server


def test_the_demo_is_a_run_preset_the_flow_accepts(tmp_path: Path):
    assert DEMO_PRESETS == {"tiny": "demo", "standard": "demo-standard"}
    settings = load_run_preset(demo_preset("tiny"))
    assert settings.dataset == "movielens-latest-small" and settings.ranker_config == "hstu-demo"
    pipeline_flow.validate_parameters({"settings": settings.model_dump(mode="json"), "run_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match="unknown demo preset 'huge'"):
        demo_preset("huge")


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
    toy = {"dataset": str(data), "generation": {"text_generator": "template", "text_generator_overrides": {}}}
    script = (  # the demo's settings on toy data with template descriptions, then the CLI
        "import sys\nfrom genrec.pipelines import settings\n"
        "real = settings.load_run_preset\n"
        f"settings.load_run_preset = lambda name, values=None: real(name, {toy!r} | (values or {{}}))\n"
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
    assert "select-users, encode, train, recommend, images, describe, evaluate, report" in runs[1].stdout
