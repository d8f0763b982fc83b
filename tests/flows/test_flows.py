"""The flows under the session's Prefect test server: they complete, cache, retry and validate, and write
what the in-process plan writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prefect.exceptions import ParameterTypeError
from prefect.utilities.callables import parameter_schema

from genrec.flows import evaluate_flow, generate_flow, pipeline_flow, recommend_flow, train_flow
from genrec.flows import tasks as flow_tasks
from genrec.generators import list_image_generators, list_text_generators
from genrec.io import read_json
from genrec.pipelines import stages
from genrec.pipelines.settings import RunSettings, clip_encoders
from genrec.rankers import list_rankers
from tests.flows.prefect_api import artifact_keys, flow_run_logs, task_runs
from tests.run_files import assert_same_run_files

TINY = {"image_generator": "tiny", "text_generator": "template", "encoder": "tiny"}
SASREC = {"epochs": 2, "patience": 5, "hidden": 8, "inner": 16, "layers": 1, "heads": 1, "max_len": 8}
PLAN = ["select-users", "encode", "train", "recommend", "images", "describe", "evaluate", "report"]


def settings(toy_data: str, **values: Any) -> RunSettings:
    base = {"dataset": toy_data, "ranker": "popular", "users": {"mode": "sample", "sample": 3}, "k": 2}
    return RunSettings.from_dict(base | {"generation": TINY} | values, source="test")


def test_every_flow_completes_on_the_tiny_presets(toy_data: str, tmp_path: Path):
    run_dir = str(tmp_path / "run")
    chosen = settings(toy_data, users={"mode": "ids", "ids": [1, 2]})
    train_flow(settings=chosen, run_dir=run_dir)
    assert Path(run_dir, "model", "model.safetensors").is_file()
    recommend_flow(settings=chosen, run_dir=run_dir)
    assert pd.read_parquet(Path(run_dir, "recommendations.parquet"))["user_id"].tolist() == [1, 1, 2, 2]
    generate_flow(settings=chosen, run_dir=run_dir)
    assert len(pd.read_parquet(Path(run_dir, "images.parquet"))) == 4
    assert len(pd.read_parquet(Path(run_dir, "descriptions.parquet"))) == 4
    evaluated = evaluate_flow(settings=chosen, run_dir=run_dir)
    assert {"ranking", "images", "descriptions"} <= read_json(evaluated["metrics"]).keys()
    assert Path(run_dir, "report.html").is_file()


def test_the_flow_and_the_in_process_plan_write_the_same_run_directory(toy_data: str, tmp_path: Path):
    chosen = settings(toy_data, ranker="sasrec", ranker_overrides=SASREC)
    stages.run_pipeline(chosen, tmp_path / "in-process", progress=False)
    state = pipeline_flow(settings=chosen, run_dir=str(tmp_path / "flow"), progress=False, return_state=True)
    assert state.is_completed()
    assert_same_run_files(tmp_path / "in-process", tmp_path / "flow")


def test_pipeline_rerun_runs_no_finished_task_and_publishes_artifacts(toy_data: str, tmp_path: Path, monkeypatch):
    run_dir = str(tmp_path / "run")
    params = {"settings": settings(toy_data), "run_dir": run_dir}
    with monkeypatch.context() as on_cuda:  # the first run as on a machine with a CUDA device
        on_cuda.setattr(flow_tasks, "cuda_available", lambda: True)
        first = pipeline_flow(**params, return_state=True)
    for stage in stages.PLAN:  # a rerun must call none of them

        def ran(*args, name=stage.name, **kwargs):
            raise AssertionError(f"the rerun executed {name}")

        monkeypatch.setitem(stages.STAGES, stage.name, stage.__class__(stage.name, ran, stage.reads, stage.gpu))
    second = pipeline_flow(**params, return_state=True)
    assert first.is_completed() and second.is_completed()
    first_runs, second_runs = task_runs(first.state_details.flow_run_id), task_runs(second.state_details.flow_run_id)
    assert sorted(run.name.rsplit("-", 1)[0] for run in first_runs) == sorted(PLAN)
    assert sorted(run.name.rsplit("-", 1)[0] for run in second_runs) == sorted(PLAN)
    assert [run.state.name for run in first_runs] == ["Completed"] * len(PLAN)
    assert [run.state.name for run in second_runs] == ["Cached"] * len(PLAN)
    gpu = sorted(run.name.rsplit("-", 1)[0] for run in first_runs if "gpu" in run.tags)
    assert gpu == ["describe", "encode", "evaluate", "images", "train"]
    assert not any("gpu" in run.tags for run in second_runs)  # no CUDA device: no task waits on the tag's limit
    assert first.result()["cached"] == "" and second.result()["cached"] == ", ".join(PLAN)
    keys = artifact_keys(second.state_details.flow_run_id)
    assert {key.rsplit("-", 1)[1] for key in keys if key} == {"results", "metrics"}  # unkeyed: the result record
    assert (Path(run_dir) / "report.html").is_file()
    messages = flow_run_logs(first.state_details.flow_run_id)
    assert any(message.startswith("images: 6 images (6 new, 0 reused") for message in messages)


def test_a_changed_input_file_reruns_what_depends_on_it(toy_data: str, tmp_path: Path):
    data = Path(tmp_path / "data")
    data.mkdir()
    for name in ("ratings.csv", "movies.csv"):
        (data / name).write_bytes(Path(toy_data, name).read_bytes())
    run_dir = str(tmp_path / "run")
    first = train_flow(settings=settings(str(data)), run_dir=run_dir, return_state=True)
    with (data / "ratings.csv").open("a") as ratings:
        ratings.write("1,5,4.0,99999\n")
    second = train_flow(settings=settings(str(data)), run_dir=run_dir, return_state=True)
    assert [run.state.name for run in task_runs(first.state_details.flow_run_id)] == ["Completed"]
    assert [run.state.name for run in task_runs(second.state_details.flow_run_id)] == ["Completed"]


def test_a_changed_request_reruns_recommend_and_what_follows_but_fits_nothing(
    toy_data: str, tmp_path: Path, monkeypatch
):
    run_dir = str(tmp_path / "run")
    chosen = settings(toy_data, ranker="sasrec", ranker_overrides=SASREC, users={"mode": "ids", "ids": [1, 2]})
    first = pipeline_flow(settings=chosen.with_values({"request": "something funny"}), run_dir=run_dir)
    assert first["cached"] == ""
    monkeypatch.setattr("genrec.pipelines.ranking.fit_ranker", lambda *a, **k: pytest.fail("the ranker was refitted"))
    second = pipeline_flow(
        settings=chosen.with_values({"request": "funny, from the 90s"}), run_dir=run_dir, return_state=True
    )
    assert second.is_completed()
    states = {run.name.rsplit("-", 1)[0]: run.state.name for run in task_runs(second.state_details.flow_run_id)}
    assert {stage: states[stage] for stage in PLAN[3:]} == dict.fromkeys(PLAN[3:], "Completed")
    assert read_json(Path(run_dir, "request.json"))["years"] == [1990, 1999]
    messages = flow_run_logs(second.state_details.flow_run_id)
    assert any("request 'funny, from the 90s' read as genres Comedy; released 1990-1999" in m for m in messages)


def test_a_generation_task_failing_once_is_retried(toy_data: str, tmp_path: Path, monkeypatch):
    run_dir = str(tmp_path / "run")
    chosen = settings(toy_data, users={"mode": "ids", "ids": [3]}, k=1)
    train_flow(settings=chosen, run_dir=run_dir)
    recommend_flow(settings=chosen, run_dir=run_dir)
    calls = []
    images = stages.STAGES["images"]

    def flaky(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return images.run(*args, **kwargs)

    monkeypatch.setitem(stages.STAGES, "images", images.__class__("images", flaky, images.reads, images.gpu))
    monkeypatch.setattr(flow_tasks, "GENERATION_RETRY_DELAYS", [0.0, 0.0])
    state = generate_flow(settings=chosen, run_dir=run_dir, return_state=True)
    assert state.is_completed()
    runs = {run.name.rsplit("-", 1)[0]: run for run in task_runs(state.state_details.flow_run_id)}
    assert runs["images"].run_count == 2 and runs["images"].state.name == "Completed"
    assert len(calls) == 2


def test_the_settings_form_has_a_dropdown_for_every_registry_with_descriptions_and_bounds():
    schema = parameter_schema(pipeline_flow).model_dump_for_openapi()
    definitions = schema["definitions"]

    def model(name: str) -> dict:
        return definitions[name]

    def choices(model_name: str, field: str) -> list[str]:
        return definitions[model(model_name)["properties"][field]["$ref"].rsplit("/", 1)[1]]["enum"]

    assert schema["properties"]["settings"]["$ref"].endswith("/RunSettings")
    assert choices("RunSettings", "ranker") == list_rankers() and "llm" in choices("RunSettings", "ranker")
    assert choices("GenerationSettings", "encoder") == clip_encoders() and "tiny" in clip_encoders()
    assert choices("GenerationSettings", "image_generator") == list_image_generators()
    assert choices("GenerationSettings", "text_generator") == list_text_generators()
    assert choices("UserSelection", "mode") == ["ids", "sample", "active", "all"]
    assert model("RunSettings")["properties"]["k"]["minimum"] == 1
    assert model("UserSelection")["properties"]["sample"]["minimum"] == 1
    assert model("RunSettings")["properties"]["ranker"]["description"] == "registered ranker (ID-driven or LLM)"
    request = model("RunSettings")["properties"]["request"]  # a free-text field, empty by default
    assert {"type": "string"} in request["anyOf"] and request["default"] is None and "Alien" in request["description"]
    assert schema["properties"]["batches"]["minimum"] == 1
    item_features = model("RunSettings")["properties"]["item_features"]  # a text field: a .npy path is a choice too
    assert item_features["type"] == "string" and item_features["default"] == "default"
    assert "minilm" in item_features["description"] and "none" in item_features["description"]


@pytest.mark.parametrize(
    ("settings_values", "message"),
    [
        ({"ranker": "no-such-ranker"}, "ranker"),
        ({"k": 0}, "k"),
        ({"generation": {"encoder": "minilm"}}, "encoder"),
        ({"users": {"mode": "everyone"}}, "mode"),
        ({"ranker": "sasrec", "ranker_overrides": {"epochz": 2}}, "epochz"),  # a typo in the overrides
    ],
)
def test_an_invalid_setting_is_refused_when_the_run_is_created(settings_values: dict, message: str, tmp_path: Path):
    with pytest.raises(ParameterTypeError, match=message):
        pipeline_flow.validate_parameters({"run_dir": str(tmp_path), "settings": settings_values})
    state = pipeline_flow(run_dir=str(tmp_path / "run"), settings=settings_values, return_state=True)
    assert state.is_failed()
    assert task_runs(state.state_details.flow_run_id) == []
    assert not (tmp_path / "run").exists()


def test_a_bad_ranker_override_names_the_valid_fields(tmp_path: Path):
    with pytest.raises(ParameterTypeError) as raised:
        pipeline_flow.validate_parameters({"settings": {"ranker": "sasrec", "ranker_overrides": {"epoch": 2}}})
    assert "epoch" in str(raised.value) and "epochs" in str(raised.value)


def test_training_epochs_reach_the_run_logs(toy_data: str, tmp_path: Path):
    chosen = settings(toy_data, ranker="sasrec", ranker_overrides=SASREC)
    state = train_flow(settings=chosen, run_dir=str(tmp_path), return_state=True)
    assert state.is_completed()
    messages = flow_run_logs(state.state_details.flow_run_id)
    epochs = [message for message in messages if message.startswith("sasrec epoch ")]
    assert [message.split(":")[0] for message in epochs] == ["sasrec epoch 1", "sasrec epoch 2"]
    assert "valid NDCG@10" in epochs[0] and epochs[0].endswith(" s")
    assert any(message.startswith("train: sasrec in ") and "2 epochs" in message for message in messages)


def test_a_missing_input_is_not_retried_and_the_flow_result_is_read_back(toy_data: str, tmp_path: Path):
    import asyncio

    from prefect.client.orchestration import get_client

    state = generate_flow(settings=settings(toy_data), run_dir=str(tmp_path / "fresh"), return_state=True)
    assert state.is_failed() and "recommendations.parquet: not found; run the recommend stage first" in state.message
    runs = {run.name.rsplit("-", 1)[0]: run for run in task_runs(state.state_details.flow_run_id)}
    assert runs["images"].run_count == 1  # an error a retry cannot change is not retried

    finished = pipeline_flow(settings=settings(toy_data), run_dir=str(tmp_path / "run"), return_state=True)

    async def read_back():
        async with get_client() as client:
            flow_run = await client.read_flow_run(finished.state_details.flow_run_id)
            return await flow_run.state.aresult()

    result = asyncio.run(read_back())  # from the server's record, as a client of a served deployment reads it
    assert result["run_dir"] == str(tmp_path / "run") and result["metrics"].endswith("metrics.json")


def test_the_results_artifact_shows_headline_figures_items_descriptions_and_the_report_path(
    toy_data: str, tmp_path: Path
):
    from genrec.flows.artifacts import metrics_rows, results_markdown

    run_dir = tmp_path / "run"
    stages.run_pipeline(settings(toy_data, users={"mode": "ids", "ids": [1]}), run_dir, progress=False)
    page = results_markdown(run_dir)
    assert "| ranking NDCG@10 |" in page and page.index("Headline figures") < page.index("## User 1")
    assert "1. **" in page and "*(template)*" in page and str((run_dir / "report.html").resolve()) in page
    assert "file://" not in page
    rows = metrics_rows(read_json(run_dir / "metrics.json"))
    assert (rows[0]["stage"], rows[0]["metric"]) == ("ranking", "NDCG@10")
    assert not any("generator" in row["metric"] or "config" in row["metric"] for row in rows)


def test_tasks_are_gpu_tagged_only_where_they_reach_a_gpu(monkeypatch, tmp_path: Path):
    from types import SimpleNamespace

    from genrec.flows.batches import batch_tasks

    def gpu_tagged() -> list[str]:
        tasks = [*flow_tasks.stage_tasks(tmp_path).values(), *vars(batch_tasks(tmp_path)).values()]
        return sorted(task.name for task in tasks if "gpu" in task.tags)

    assert gpu_tagged() == []  # this machine: no CUDA device
    monkeypatch.setattr(flow_tasks, "cuda_available", lambda: True)
    on_gpus = ["describe", "encode", "encode-items-batch", "evaluate", "generate-batch", "images", "train"]
    assert gpu_tagged() == on_gpus
    monkeypatch.setattr(flow_tasks, "cuda_available", lambda: False)
    ray_with_gpus = SimpleNamespace(task_runner=SimpleNamespace(gpus_per_task=0.5))  # a flow run on Ray GPU workers
    monkeypatch.setattr(flow_tasks.FlowRunContext, "get", classmethod(lambda cls: ray_with_gpus))
    assert gpu_tagged() == on_gpus
