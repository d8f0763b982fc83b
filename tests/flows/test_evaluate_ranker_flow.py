"""The evaluate-ranker flow under a temporary Prefect server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from genrec.flows import EvaluateRankerParams, evaluate_ranker_flow


def test_flow_runs_tasks_and_writes_outputs(prefect_harness, toy_latest_dir: Path, tmp_path: Path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    params = EvaluateRankerParams(dataset=str(toy_latest_dir), output_dir=str(tmp_path / "out"))
    state = evaluate_ranker_flow(params, return_state=True)
    assert state.is_completed()
    result = state.result()
    assert result["ranker"] == "popular"
    # The server recorded one completed run of each task, in this flow run.
    flow_run = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=flow_run)
    ran = sorted(run.name.rsplit("-", 1)[0] for run in task_runs if run.state is not None and run.state.is_completed())
    assert ran == ["evaluate-ranker", "fit-ranker", "load-dataset", "split"], [run.name for run in task_runs]
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
