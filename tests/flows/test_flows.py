"""The flows under the session's Prefect test server: they complete, cache, retry and validate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prefect.exceptions import ParameterTypeError
from prefect.utilities.callables import parameter_schema

from genrec.encoders import list_encoders
from genrec.flows import evaluate_flow, generate_flow, pipeline_flow, recommend_flow, train_flow
from genrec.flows import tasks as flow_tasks
from genrec.generators import list_image_generators, list_text_generators
from genrec.io import read_json
from genrec.pipelines import run as gr
from genrec.rankers import list_rankers
from tests.flows.prefect_api import artifact_keys, flow_run_logs, task_runs

TINY = {"image_generator": "tiny", "text_generator": "template", "encoder": "tiny"}


def test_every_flow_completes_on_the_tiny_presets(toy_data: str, tmp_path: Path):
    run_dir = str(tmp_path / "run")
    train = train_flow(dataset=toy_data, ranker="popular", run_dir=run_dir)
    assert Path(train["model_dir"], "model.safetensors").is_file()
    recommended = recommend_flow(dataset=toy_data, run_dir=run_dir, user_mode="ids", users=[1, 2], k=2)
    table = pd.read_parquet(recommended["recommendations"])
    assert table["user_id"].tolist() == [1, 1, 2, 2]
    generated = generate_flow(dataset=toy_data, run_dir=run_dir, **TINY)
    assert len(pd.read_parquet(generated["images"])) == 4
    assert len(pd.read_parquet(generated["descriptions"])) == 4
    evaluated = evaluate_flow(run_dir=run_dir, dataset=toy_data)
    metrics = read_json(evaluated["metrics"])
    assert {"ranking", "images", "descriptions"} <= metrics.keys()


def test_pipeline_rerun_runs_no_finished_task_and_publishes_artifacts(toy_data: str, tmp_path: Path, monkeypatch):
    run_dir = str(tmp_path / "run")
    params = {"dataset": toy_data, "run_dir": run_dir, "user_mode": "sample", "sample": 3, "k": 2, **TINY}
    with monkeypatch.context() as on_cuda:  # the first run as on a machine with a CUDA device
        on_cuda.setattr(flow_tasks, "cuda_available", lambda: True)
        first = pipeline_flow(**params, return_state=True)
    for stage in ("select_users", "train", "recommend", "generate", "evaluate"):  # a rerun must call none of them

        def ran(*args, stage=stage, **kwargs):
            raise AssertionError(f"the rerun executed {stage}")

        monkeypatch.setattr(gr, stage, ran)
    second = pipeline_flow(**params, return_state=True)
    assert first.is_completed() and second.is_completed()
    first_runs, second_runs = task_runs(first.state_details.flow_run_id), task_runs(second.state_details.flow_run_id)
    expected = {"select-users", "train", "recommend", "generate", "evaluate", "report"}
    assert sorted(run.name.rsplit("-", 1)[0] for run in first_runs) == sorted(expected)
    assert sorted(run.name.rsplit("-", 1)[0] for run in second_runs) == sorted(expected)
    assert sorted(run.state.name for run in first_runs) == ["Completed"] * len(expected)
    assert sorted(run.state.name for run in second_runs) == ["Cached"] * len(expected)
    gpu = sorted(run.name.rsplit("-", 1)[0] for run in first_runs if "gpu" in run.tags)
    assert gpu == ["evaluate", "generate", "train"]
    assert not any("gpu" in run.tags for run in second_runs)  # no CUDA device: no task waits on the tag's limit
    assert first.result()["cached"] == "" and second.result()["cached"] == ", ".join(
        ["select-users", "train", "recommend", "generate", "evaluate", "report"]
    )
    keys = artifact_keys(second.state_details.flow_run_id)
    assert keys == {"genrec-run-metrics", "genrec-run-recommendations", "genrec-run-report"}
    assert (Path(run_dir) / "report.html").is_file()
    messages = flow_run_logs(first.state_details.flow_run_id)
    assert any(message.startswith("generate: 6 images") for message in messages)


def test_a_changed_input_file_reruns_what_depends_on_it(toy_data: str, tmp_path: Path):
    data = Path(tmp_path / "data")
    data.mkdir()
    for name in ("ratings.csv", "movies.csv"):
        (data / name).write_bytes(Path(toy_data, name).read_bytes())
    run_dir = str(tmp_path / "run")
    first = train_flow(dataset=str(data), run_dir=run_dir, return_state=True)
    with (data / "ratings.csv").open("a") as ratings:
        ratings.write("1,5,4.0,99999\n")
    second = train_flow(dataset=str(data), run_dir=run_dir, return_state=True)
    assert [run.state.name for run in task_runs(first.state_details.flow_run_id)] == ["Completed"]
    assert [run.state.name for run in task_runs(second.state_details.flow_run_id)] == ["Completed"]


def test_a_generation_task_failing_once_is_retried(toy_data: str, tmp_path: Path, monkeypatch):
    run_dir = str(tmp_path / "run")
    train_flow(dataset=toy_data, run_dir=run_dir)
    recommend_flow(dataset=toy_data, run_dir=run_dir, user_mode="ids", users=[3], k=1)
    calls = []
    real_generate = gr.generate

    def flaky_generate(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(gr, "generate", flaky_generate)
    monkeypatch.setattr(flow_tasks, "GENERATION_RETRY_DELAYS", [0.0, 0.0])
    state = generate_flow(dataset=toy_data, run_dir=run_dir, **TINY, return_state=True)
    assert state.is_completed()
    (run,) = task_runs(state.state_details.flow_run_id)
    assert run.run_count == 2 and run.state.name == "Completed"
    assert len(calls) == 2


def test_pipeline_parameters_are_enums_of_the_registries():
    schema = parameter_schema(pipeline_flow).model_dump_for_openapi()
    definitions = schema["definitions"]

    def choices(field: str) -> list[str]:
        return definitions[schema["properties"][field]["$ref"].rsplit("/", 1)[1]]["enum"]

    assert choices("ranker") == list_rankers() and "llm" in choices("ranker")
    assert set(choices("encoder")) <= set(list_encoders()) and "tiny" in choices("encoder")
    assert choices("image_generator") == list_image_generators()
    assert choices("text_generator") == list_text_generators()
    assert schema["properties"]["k"]["minimum"] == 1
    assert schema["properties"]["sample"]["minimum"] == 1
    assert schema["properties"]["ranker"]["description"] == "registered ranker (ID-driven or LLM)"


@pytest.mark.parametrize(
    ("field", "value"), [("ranker", "no-such-ranker"), ("k", 0), ("encoder", "minilm"), ("user_mode", "everyone")]
)
def test_an_invalid_parameter_is_rejected_before_any_task(field: str, value: Any, tmp_path: Path):
    with pytest.raises(ParameterTypeError, match=field):
        pipeline_flow.validate_parameters({"run_dir": str(tmp_path), field: value})
    state = pipeline_flow(run_dir=str(tmp_path / "run"), **{field: value}, return_state=True)
    assert state.is_failed()
    assert task_runs(state.state_details.flow_run_id) == []
    assert not (tmp_path / "run").exists()


def test_a_bad_ranker_override_fails_before_any_task(toy_data: str, tmp_path: Path):
    state = pipeline_flow(
        dataset=toy_data, run_dir=str(tmp_path / "run"), ranker="sasrec", overrides={"epochz": 2}, return_state=True
    )
    assert state.is_failed() and "epochz" in str(state.message) + repr(state.result(raise_on_failure=False))
    assert task_runs(state.state_details.flow_run_id) == []


def test_training_epochs_reach_the_run_logs(toy_data: str, tmp_path: Path):
    overrides = {"epochs": 2, "patience": 5, "hidden": 8, "inner": 16, "layers": 1, "heads": 1, "max_len": 8}
    state = train_flow(dataset=toy_data, ranker="sasrec", run_dir=str(tmp_path), overrides=overrides, return_state=True)
    assert state.is_completed()
    messages = flow_run_logs(state.state_details.flow_run_id)
    epochs = [message for message in messages if message.startswith("sasrec epoch ")]
    assert [message.split(":")[0] for message in epochs] == ["sasrec epoch 1", "sasrec epoch 2"]
    assert "valid NDCG@10" in epochs[0] and epochs[0].endswith(" s")
    assert any(message.startswith("train: sasrec in ") and "2 epochs" in message for message in messages)


def test_evaluate_publishes_a_link_to_the_report_when_it_exists(toy_data: str, tmp_path: Path):
    run_dir = tmp_path / "run"
    pipeline_flow(dataset=toy_data, run_dir=str(run_dir), user_mode="ids", users=[4], k=1, **TINY)
    (run_dir / "report.html").write_text("<html><body>report</body></html>")
    state = evaluate_flow(run_dir=str(run_dir), dataset=toy_data, return_state=True)
    assert state.is_completed()
    assert artifact_keys(state.state_details.flow_run_id) == {
        "genrec-run-metrics",
        "genrec-run-recommendations",
        "genrec-run-report",
    }


def test_tasks_are_gpu_tagged_only_where_they_reach_a_gpu(monkeypatch, tmp_path: Path):
    from types import SimpleNamespace

    from genrec.flows.batches import batch_tasks

    def gpu_tagged() -> list[str]:
        tasks = [*vars(flow_tasks.stage_tasks(tmp_path)).values(), *vars(batch_tasks(tmp_path)).values()]
        return sorted(task.name for task in tasks if "gpu" in task.tags)

    assert gpu_tagged() == []  # this machine: no CUDA device
    monkeypatch.setattr(flow_tasks, "cuda_available", lambda: True)
    on_gpus = ["encode-items-batch", "evaluate", "generate", "generate-batch", "train"]
    assert gpu_tagged() == on_gpus
    monkeypatch.setattr(flow_tasks, "cuda_available", lambda: False)
    ray_with_gpus = SimpleNamespace(task_runner=SimpleNamespace(gpus_per_task=0.5))  # a flow run on Ray GPU workers
    monkeypatch.setattr(flow_tasks.FlowRunContext, "get", classmethod(lambda cls: ray_with_gpus))
    assert gpu_tagged() == on_gpus
