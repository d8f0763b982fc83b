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
from genrec.flows.demo import TEMPORARY_SERVER_STARTUP_SECONDS, demo_parameters, no_server_settings
from genrec.pipelines import run as gr


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


def test_without_a_server_the_demo_drops_heartbeats_and_waits_longer_for_the_temporary_server():
    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # as on a machine with no server configured
        with no_server_settings():
            settings = get_current_settings()
            assert settings.flows.heartbeat_frequency is None
            assert settings.server.ephemeral.startup_timeout_seconds == TEMPORARY_SERVER_STARTUP_SECONDS
        user = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 60, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 30}
        with temporary_settings(updates=user), no_server_settings():  # what the user set wins
            settings = get_current_settings()
            assert settings.flows.heartbeat_frequency == 60
            assert settings.server.ephemeral.startup_timeout_seconds == 30
    before = get_current_settings()
    with no_server_settings():  # a configured server (here the test harness): nothing changes
        assert get_current_settings().flows == before.flows and get_current_settings().server == before.server
