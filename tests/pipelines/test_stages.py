"""The plan's stages over one run directory on toy data: each stage, reuse, explicit items, serving."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from genrec.config import ConfigError
from genrec.pipelines import stages
from genrec.pipelines.settings import RunSettings
from genrec.run_directory import RunDirectory
from tests.conftest import write_toy_latest

# A sasrec small enough to fit the toy data in a fraction of a second.
TINY_SASREC = {"hidden": 8, "inner": 16, "heads": 1, "layers": 1, "max_len": 6, "epochs": 2, "patience": 2}
TINY = {"encoder": "tiny", "image_generator": "tiny", "text_generator": "template"}


@pytest.fixture
def toy(tmp_path: Path) -> str:
    """6 users x 8 items, 5 interactions each (user u's timestamps are 1000 + 10u + step)."""
    return str(write_toy_latest(tmp_path / "toy"))


def settings_for(toy: str, **values) -> RunSettings:
    base = {"dataset": toy, "ranker": "popular", "users": {"mode": "ids", "ids": [1, 2]}, "k": 2, "generation": TINY}
    return RunSettings.from_dict(base | values, source="test")


def refuse_fitting(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the ranker was fitted again")

    monkeypatch.setattr("genrec.pipelines.ranking.fit_ranker", refuse)


def test_the_plan_is_the_cards_chain():
    names = [stage.name for stage in stages.PLAN]
    assert names == ["select-users", "encode", "train", "recommend", "images", "describe", "evaluate", "report"]


def test_train_saves_and_a_rerun_reuses_without_fitting(toy, tmp_path, monkeypatch):
    out, settings = tmp_path / "run", settings_for(toy, ranker="sasrec", ranker_overrides=TINY_SASREC)
    model_dir = stages.train(out, settings, progress=False)
    assert model_dir == out / "model" and (model_dir / "model.safetensors").is_file()
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["train"]["ranker"] == "sasrec" and recorded["train"]["config"]["hidden"] == 8
    assert recorded["settings"] == settings.model_dump(mode="json")
    assert json.loads((model_dir / "train.json").read_text())["key"] == recorded["train"]["key"]
    weights = (model_dir / "model.safetensors").read_bytes()
    refuse_fitting(monkeypatch)
    assert stages.train(out, settings, progress=False) == model_dir
    assert (model_dir / "model.safetensors").read_bytes() == weights
    with pytest.raises(AssertionError, match="fitted again"):  # another seed is another model
        stages.train(out, settings.with_values({"seed": 1}), progress=False)


def test_changed_data_or_config_refits(toy, tmp_path):
    out = tmp_path / "run"
    settings = settings_for(toy, ranker="sasrec", ranker_overrides=TINY_SASREC)

    def key() -> str:
        return json.loads((out / "config.json").read_text())["train"]["key"]

    stages.train(out, settings, progress=False)
    keys = [key()]
    stages.train(out, settings.with_values({"ranker_overrides": {**TINY_SASREC, "hidden": 16}}), progress=False)
    keys.append(key())
    other = str(write_toy_latest(tmp_path / "other", per_user=6))  # same ids, more interactions
    changed = settings.with_values({"dataset": other, "ranker_overrides": {**TINY_SASREC, "hidden": 16}})
    stages.train(out, changed, progress=False)
    keys.append(key())
    assert len(set(keys)) == 3 and json.loads((out / "model" / "train.json").read_text())["key"] == keys[-1]


def test_recommend_writes_the_top_k_without_seen_items(toy, tmp_path):
    out, settings = tmp_path / "run", settings_for(toy)
    for name in ("select-users", "train", "recommend"):
        stages.STAGES[name].run(out, settings, False)
    table = pd.read_parquet(out / "recommendations.parquet")
    assert list(table.columns) == ["user_id", "rank", "item_id", "item_idx", "score", "title"]
    assert table.groupby("user_id")["rank"].apply(list).to_dict() == {1: [1, 2], 2: [1, 2]}
    seen = {1: {2, 3, 4, 5, 6}, 2: {3, 4, 5, 6, 7}}  # write_toy_latest: user u rates items u+1 .. u+5
    assert all(item not in seen[user] for user, item in table[["user_id", "item_id"]].itertuples(index=False))
    assert json.loads((out / "config.json").read_text())["recommend"]["users"] == [1, 2]


def test_recommend_errors_name_what_is_missing(toy, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="no selected users; run the select-users stage first"):
        stages.recommend(out, settings_for(toy), progress=False)
    stages.select_users(out, settings_for(toy), progress=False)
    with pytest.raises(ConfigError, match="no saved ranker"):
        stages.recommend(out, settings_for(toy), progress=False)
    stages.train(out, settings_for(toy), progress=False)
    bigger = str(write_toy_latest(tmp_path / "bigger", n_items=9))
    with pytest.raises(ConfigError, match="trained on 8 items"):
        stages.recommend(out, settings_for(bigger), progress=False)
    with pytest.raises(ConfigError, match="unknown user id 42"):
        stages.select_users(out, settings_for(toy, users={"mode": "ids", "ids": [42]}), progress=False)


def test_explicit_items_train_nothing_and_repeat_for_every_user(toy, tmp_path, monkeypatch):
    refuse_fitting(monkeypatch)
    out = stages.run_pipeline(settings_for(toy, items=[3, 5]), tmp_path / "run", progress=False)
    table = pd.read_parquet(out / "recommendations.parquet")
    assert table[["user_id", "rank", "item_id"]].values.tolist() == [[1, 1, 3], [1, 2, 5], [2, 1, 3], [2, 2, 5]]
    assert not (out / "model").exists()
    assert "ranking" not in json.loads((out / "metrics.json").read_text())


def test_the_whole_run_writes_every_output_and_a_rerun_reuses_everything(toy, tmp_path, monkeypatch):
    out = tmp_path / "run"
    settings = settings_for(toy, ranker="sasrec", ranker_overrides=TINY_SASREC)
    assert stages.run_pipeline(settings, out, progress=False) == out
    run = RunDirectory(out)
    images, baseline = run.read_table(run.IMAGES), run.read_table(run.BASELINE_IMAGES)
    assert set(images["personalization"]) == {"prompt"} and set(baseline["personalization"]) == {"none"}
    assert len(images) == len(baseline) == 4 and all(Path(path).is_file() for path in images["path"])
    descriptions = run.read_table(run.DESCRIPTIONS)
    assert descriptions[["user_id", "item_id"]].values.tolist() == images[["user_id", "item_id"]].values.tolist()
    assert (out / "cache").is_dir() and (out / "report.html").is_file()  # the embedding cache stays in the run
    assert "facts used: title" in (out / "report.html").read_text()  # the report says what each text rests on
    assert (out / "report_assets" / "validation_curve.png").is_file()  # the fit's history reaches the report
    metrics = json.loads(run.metrics.read_text())
    assert set(metrics) == {
        "ranking",
        "recommendations",
        "images",
        "descriptions",
        "grounding_report",
        "baseline_grounding_report",
    }
    assert metrics["ranking"]["ranker"] == "sasrec" and "NDCG@10" in metrics["ranking"]["metrics"]
    assert metrics["images"]["generated"] == 4 and metrics["grounding_report"]["descriptions"] == 4
    config = json.loads((out / "config.json").read_text())
    # a random-weight encoder: profiles from counts of the history, never from its noise
    assert config["images"]["profiles"] == config["describe"]["profiles"] == "history counts"

    refuse_fitting(monkeypatch)
    stages.run_pipeline(settings, out, progress=False)
    metrics = json.loads(run.metrics.read_text())
    assert metrics["images"]["reused"] == 4 and metrics["grounding_report"]["descriptions"] == 4


def test_a_relative_run_directory_gets_every_file_where_the_plan_reads_it(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = stages.run_pipeline(settings_for(toy), Path("runs/relative"), progress=False)
    assert (tmp_path / "runs/relative/recommendations.parquet").is_file() and not (out / "runs").exists()
    assert (tmp_path / "runs/relative/report.html").is_file()


def test_evaluate_after_train_alone_reports_the_ranking(toy, tmp_path):
    out = tmp_path / "run"
    stages.train(out, settings_for(toy), progress=False)
    metrics = json.loads(stages.evaluate(out, settings_for(toy), progress=False).read_text())
    assert list(metrics) == ["ranking"] and metrics["ranking"]["phase"] == "test"


def test_a_run_directory_that_is_a_file_is_refused(toy, tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a directory")
    with pytest.raises(ConfigError, match="taken: the run directory is an existing file"):
        stages.run_pipeline(settings_for(toy), target, progress=False)


def test_serving_from_a_saved_model_returns_exactly_the_pipelines_recommendations(toy, tmp_path):
    out = tmp_path / "run"
    settings = settings_for(toy, ranker="sasrec", ranker_overrides=TINY_SASREC, k=3)
    for name in ("select-users", "train", "recommend"):
        stages.STAGES[name].run(out, settings, False)
    pipeline = pd.read_parquet(out / "recommendations.parquet")
    for model in (out, out / "model"):  # a run directory or its model/
        pd.testing.assert_frame_equal(stages.serve_recommendations(model, settings), pipeline)


def test_text_generator_overrides_reach_the_describe_stage(toy, tmp_path):
    overrides = {"grounding": {"max_retries": 0}, "max_new_tokens": 8}
    generation = TINY | {"text_generator": "tiny", "text_generator_overrides": overrides}
    out = stages.run_pipeline(settings_for(toy, items=[3], generation=generation), tmp_path / "run", progress=False)
    table = pd.read_parquet(out / "descriptions.parquet")
    assert table["attempts"].tolist() == [1, 1]  # no regeneration: a rejected text went to the template at once
    assert json.loads((out / "config.json").read_text())["settings"]["generation"]["text_generator_overrides"] == (
        overrides
    )


def test_describe_and_evaluate_read_the_runs_request(toy, tmp_path):
    out = stages.run_pipeline(settings_for(toy, items=[3]), tmp_path / "run", progress=False)
    run = RunDirectory(out)
    plain = run.read_table(run.DESCRIPTIONS)["description"].tolist()
    assert not any("as you asked" in text for text in plain)
    # What the recommend stage records for a request (Movie 3 is a 1993 comedy-drama).
    asked = {"text": "a 90s comedy", "named_items": [], "want_genres": ["Comedy"], "avoid_genres": [],
             "years": [1990, 1999], "rest": ""}  # fmt: skip
    run.write_json(RunDirectory.REQUEST, asked)
    stages.describe(out, settings_for(toy, items=[3]), progress=False)
    for name in (run.DESCRIPTIONS, run.BASELINE_DESCRIPTIONS):
        texts = run.read_table(name)["description"].tolist()
        assert all("It is listed as Comedy, as you asked. It is from the 1990s, as you asked." in t for t in texts)
    metrics = json.loads(stages.evaluate(out, settings_for(toy, items=[3]), progress=False).read_text())
    assert metrics["descriptions"]["guard_pass_rate"] == 1.0  # checked against the request, not without it
