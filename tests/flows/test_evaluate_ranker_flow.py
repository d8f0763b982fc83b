"""The evaluate-ranker flow under a temporary Prefect server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from genrec.flows import EvaluateRankerParams, evaluate_ranker_flow


def test_flow_runs_tasks_and_writes_outputs(prefect_harness, toy_latest_dir: Path, tmp_path: Path):
    params = EvaluateRankerParams(dataset=str(toy_latest_dir), output_dir=str(tmp_path / "out"))
    result = evaluate_ranker_flow(params)
    assert result["ranker"] == "popular"
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["metrics"]["NDCG@10"] == pytest.approx(result["metrics"]["NDCG@10"])
    assert (tmp_path / "out" / "ranker" / "model.safetensors").exists()


def test_flow_parameters_are_validated():
    with pytest.raises(ValidationError):
        EvaluateRankerParams(ranker="popular", unknown_field=1)
    schema = EvaluateRankerParams.model_json_schema()
    assert {"dataset", "ranker", "config", "seed", "split"} <= schema["properties"].keys()


def test_deployments_carry_schedule_and_validated_parameters():
    from genrec.flows.deployments import build_deployments

    (scheduled,) = build_deployments(cron="0 4 * * 1", ranker="popular")
    assert scheduled.schedules[0].schedule.cron == "0 4 * * 1"
    assert EvaluateRankerParams.model_validate(scheduled.parameters["params"]).ranker == "popular"
    (manual,) = build_deployments(cron=None)
    assert not manual.schedules
