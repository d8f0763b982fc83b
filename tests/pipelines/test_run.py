"""The run-directory stages of genrec.pipelines.run on toy data: each function, reuse, selection, validation."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from genrec.config import ConfigError
from genrec.pipelines import run
from genrec.pipelines.run import (
    MODEL_DIR,
    RECOMMENDATIONS_TABLE,
    UserSelection,
    evaluate,
    generate,
    recommend,
    recommend_items,
    run_demo,
    run_pipeline,
    select_users,
    train,
)
from genrec.registry import UnknownNameError
from tests.conftest import write_toy_latest

# A sasrec small enough to fit the toy data in a fraction of a second.
TINY_SASREC = {"hidden": 8, "inner": 16, "heads": 1, "layers": 1, "max_len": 6, "epochs": 2, "patience": 2}


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """6 users x 8 items, 5 interactions each (user u's timestamps are 1000 + 10u + step)."""
    return write_toy_latest(tmp_path / "toy")


@pytest.fixture
def no_fit(monkeypatch):
    """Make any ranker fit fail: proves a stage reused a saved model."""

    def refuse(*args, **kwargs):
        raise AssertionError("the ranker was fitted again")

    monkeypatch.setattr("genrec.pipelines.ranking.fit_ranker", refuse)


# -- select_users ----------------------------------------------------------------------------


def test_explicit_users_keep_their_order_and_type(toy):
    assert select_users(toy, users=[3, 1]) == [3, 1]
    assert select_users(toy, users=["2"]) == [2]  # the data's id type, as rank() writes it
    assert all(type(user) is int for user in select_users(toy, all_users=True))


def test_all_users_and_seeded_samples(toy):
    assert select_users(toy, all_users=True) == [1, 2, 3, 4, 5, 6]
    first = select_users(toy, sample=3, seed=0)
    assert first == select_users(toy, sample=3, seed=0) and len(set(first)) == 3
    assert {tuple(select_users(toy, sample=3, seed=seed)) for seed in range(6)} != {tuple(first)}
    assert first == sorted(first)


def test_users_active_since_a_time(toy):
    # User u's last interaction is at 1000 + 10u + 4: users 5 and 6 are active at or after 1054.
    assert select_users(toy, active_since=1054) == [5, 6]
    assert select_users(toy, active_since="1970-01-01T00:17:34") == [5, 6]  # 1054 s, naive = UTC
    assert select_users(toy, active_since=1054, sample=1, seed=0)[0] in (5, 6)
    with pytest.raises(ConfigError, match="no user has an interaction at or after"):
        select_users(toy, active_since="2030-01-01")


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ({"users": [1, 1]}, "user id 1 is given twice"),
        ({"users": []}, "users is empty"),
        ({}, "choose exactly one of"),
        ({"users": [1], "all_users": True}, "got users, all_users"),
        ({"sample": 0}, "greater than or equal to 1"),
        ({"sample": 7}, "cannot sample 7 users from 6 candidates"),
        ({"users": [1, 99]}, "unknown user id 99"),
    ],
)
def test_user_selection_errors_are_clear(toy, selection, message):
    with pytest.raises(ConfigError, match=message):
        select_users(toy, **selection)


def test_user_selection_model_is_strict():
    with pytest.raises(ConfigError, match="user: Extra inputs are not permitted"):
        UserSelection.from_dict({"users": [1], "user": [2]})


# -- train / recommend -----------------------------------------------------------------------


def test_train_saves_and_a_rerun_reuses_without_fitting(toy, tmp_path, monkeypatch):
    out = tmp_path / "run"
    model_dir = train(toy, "sasrec", out, config=TINY_SASREC, seed=0, progress=False)
    assert model_dir == out / MODEL_DIR and (model_dir / "model.safetensors").is_file()
    recorded = json.loads((out / "config.json").read_text())["train"]
    assert recorded["ranker"] == "sasrec" and recorded["config"]["hidden"] == 8 and len(recorded["key"]) == 32
    assert json.loads((model_dir / "train.json").read_text())["key"] == recorded["key"]
    first = pd.read_parquet(recommend(model_dir, toy, out, users=[1, 2], k=3))
    weights = (model_dir / "model.safetensors").read_bytes()

    def refuse(*args, **kwargs):
        raise AssertionError("the ranker was fitted again")

    monkeypatch.setattr("genrec.pipelines.ranking.fit_ranker", refuse)
    assert train(toy, "sasrec", out, config=TINY_SASREC, seed=0, progress=False) == model_dir
    assert (model_dir / "model.safetensors").read_bytes() == weights
    pd.testing.assert_frame_equal(pd.read_parquet(recommend(model_dir, toy, out, users=[1, 2], k=3)), first)
    with pytest.raises(AssertionError, match="fitted again"):  # another seed is another model
        train(toy, "sasrec", out, config=TINY_SASREC, seed=1, progress=False)


def test_changed_data_or_config_refits(toy, tmp_path):
    out = tmp_path / "run"

    def key() -> str:
        return json.loads((out / "config.json").read_text())["train"]["key"]

    train(toy, "sasrec", out, config=TINY_SASREC, progress=False)
    keys = [key()]
    train(toy, "sasrec", out, config=TINY_SASREC, overrides={"hidden": 16}, progress=False)
    keys.append(key())
    other = write_toy_latest(tmp_path / "other", per_user=6)  # same ids, more interactions
    train(other, "sasrec", out, config=TINY_SASREC, overrides={"hidden": 16}, progress=False)
    keys.append(key())
    assert len(set(keys)) == 3 and json.loads((out / MODEL_DIR / "train.json").read_text())["key"] == keys[-1]


def test_recommend_writes_the_top_k_without_seen_items(toy, tmp_path):
    out = tmp_path / "run"
    model_dir = train(toy, "popular", out, progress=False)
    table = pd.read_parquet(recommend(model_dir, toy, out, users=[1, 2], k=2))
    assert list(table.columns) == ["user_id", "rank", "item_id", "item_idx", "score", "title"]
    assert table.groupby("user_id")["rank"].apply(list).to_dict() == {1: [1, 2], 2: [1, 2]}
    seen = {1: {2, 3, 4, 5, 6}, 2: {3, 4, 5, 6, 7}}  # write_toy_latest: user u rates items u+1 .. u+5
    assert all(item not in seen[user] for user, item in table[["user_id", "item_id"]].itertuples(index=False))
    assert json.loads((out / "config.json").read_text())["recommend"]["users"] == [1, 2]


def test_recommend_errors(toy, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="no saved ranker"):
        recommend(out / MODEL_DIR, toy, out, users=[1], k=2)
    model_dir = train(toy, "popular", out, progress=False)
    with pytest.raises(ConfigError, match=r"k .* must be >= 1"):
        recommend(model_dir, toy, out, users=[1], k=0)
    with pytest.raises(ConfigError, match="given twice"):
        recommend(model_dir, toy, out, users=[1, 1], k=1)
    with pytest.raises(ConfigError, match="unknown user id 42"):
        recommend(model_dir, toy, out, users=[42], k=1)
    with pytest.raises(ConfigError, match="trained on 8 items"):
        recommend(model_dir, write_toy_latest(tmp_path / "bigger", n_items=9), out, users=[1], k=1)


def test_recommend_items_repeats_the_given_items_for_every_user(toy, tmp_path):
    table = pd.read_parquet(recommend_items(toy, tmp_path / "run", users=[1, 2], items=[3, 5]))
    assert table[["user_id", "rank", "item_id"]].values.tolist() == [[1, 1, 3], [1, 2, 5], [2, 1, 3], [2, 2, 5]]
    with pytest.raises(ConfigError, match="item id 3 is given twice"):
        recommend_items(toy, tmp_path / "run", users=[1], items=[3, 3])


# -- generate / evaluate ---------------------------------------------------------------------


def test_generate_and_evaluate_write_every_output(toy, tmp_path):
    out = tmp_path / "run"
    model_dir = train(toy, "popular", out, progress=False)
    recommendations = recommend(model_dir, toy, out, users=[1, 2], k=2)
    outputs = generate(recommendations, toy, out, "tiny", "template", "tiny", seed=0, progress=False)
    images, baseline = pd.read_parquet(outputs.images), pd.read_parquet(outputs.baseline_images)
    assert set(images["personalization"]) == {"prompt"} and set(baseline["personalization"]) == {"none"}
    assert len(images) == len(baseline) == 4 and all(Path(path).is_file() for path in images["path"])
    assert all(Path(path).is_relative_to(outputs.images_dir) for path in [*images["path"], *baseline["path"]])
    descriptions = pd.read_parquet(outputs.descriptions)
    assert descriptions[["user_id", "item_id"]].values.tolist() == images[["user_id", "item_id"]].values.tolist()
    assert (out / "cache").is_dir()  # the embedding cache stays in the run directory

    metrics = json.loads(evaluate(out, toy, progress=False).read_text())
    assert set(metrics) == {
        "ranking",
        "recommendations",
        "images",
        "descriptions",
        "grounding_report",
        "baseline_grounding_report",
    }
    assert metrics["ranking"]["ranker"] == "popular" and "NDCG@10" in metrics["ranking"]["metrics"]
    assert metrics["images"]["generated"] == 4 and metrics["images"]["flagged"] == images["flagged"].sum()
    assert {"clip_score", "personalization_lift", "personalization_win_rate"} <= metrics["images"].keys()
    assert metrics["grounding_report"]["descriptions"] == 4 and "grounding_rate" in metrics["descriptions"]

    generate(recommendations, toy, out, "tiny", "template", "tiny", seed=0, progress=False)  # everything reused
    metrics = json.loads(evaluate(out, toy, progress=False).read_text())
    # the grounding report covers the whole table, reused rows included (it accumulates across reruns)
    assert metrics["images"]["reused"] == 4 and metrics["grounding_report"]["descriptions"] == 4


def test_evaluate_after_train_alone_reports_the_ranking(toy, tmp_path):
    out = tmp_path / "run"
    train(toy, "popular", out, progress=False)
    metrics = json.loads(evaluate(out, toy, progress=False).read_text())
    assert list(metrics) == ["ranking"] and metrics["ranking"]["phase"] == "test"


def test_generate_rejects_bad_names_before_reading_anything(tmp_path):
    missing = tmp_path / "nothing.parquet"
    with pytest.raises(UnknownNameError, match=r"unknown text generator 'nope'; valid names: .*template"):
        generate(missing, "not-a-dataset", tmp_path / "run", "tiny", "nope", "tiny")
    with pytest.raises(UnknownNameError, match="unknown image generator"):
        generate(missing, "not-a-dataset", tmp_path / "run", "nope", "template", "tiny")
    with pytest.raises(ConfigError, match="has no image tower"):
        generate(missing, "not-a-dataset", tmp_path / "run", "tiny", "template", "hf:some/model")
    assert not (tmp_path / "run").exists()


# -- run_pipeline / run_demo -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"text_generator": "nope"}, UnknownNameError, "unknown text generator 'nope'"),
        ({"ranker": "nope"}, UnknownNameError, "unknown ranker 'nope'"),
        ({"encoder": "nope"}, UnknownNameError, "unknown encoder 'nope'"),
        ({"image_generator": "nope"}, UnknownNameError, "unknown image generator 'nope'"),
        ({"overrides": {"hiden": 8}}, ConfigError, "hiden"),
        ({"config": "tiger-rqvae"}, ConfigError, "is for ranker 'tiger'"),
        ({"k": 0}, ConfigError, "must be >= 1"),
        ({"users": [1, 1]}, ConfigError, "given twice"),
        ({"users": None}, ConfigError, "choose exactly one of"),
        ({"items": [3, 3]}, ConfigError, "item id 3 is given twice"),
        ({"text_generator": "tiny", "text_generator_overrides": {"max_retriez": 1}}, ConfigError, "max_retriez"),
        ({"text_generator_overrides": {"grounding": {}}}, ConfigError, "text generator 'template' overrides"),
    ],
)
def test_run_pipeline_validates_everything_before_any_work(toy, tmp_path, monkeypatch, options, error, message):
    monkeypatch.setattr(run, "_load", lambda *args: pytest.fail("data was loaded before validation"))
    out = tmp_path / "run"
    arguments = {"ranker": "sasrec", "users": [1], "progress": False} | options
    with pytest.raises(error, match=message):
        run_pipeline(toy, out, **arguments)
    assert not out.exists()


def test_run_pipeline_refuses_an_existing_file_as_run_dir(toy, tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a directory")
    with pytest.raises(ConfigError, match="taken: the run directory is an existing file"):
        run_pipeline(toy, target, users=[1], progress=False)


def test_run_pipeline_end_to_end_and_rerun_reuses_the_model(toy, tmp_path, monkeypatch):
    out = tmp_path / "run"
    options = {"config": TINY_SASREC, "sample": 3, "k": 2, "progress": False}
    assert run_pipeline(toy, out, "sasrec", **options) == out
    config = json.loads((out / "config.json").read_text())
    assert set(config) == {"train", "recommend", "generate"} and len(config["recommend"]["users"]) == 3
    assert len(pd.read_parquet(out / RECOMMENDATIONS_TABLE)) == 6
    monkeypatch.setattr(
        "genrec.pipelines.ranking.fit_ranker", lambda *args, **kwargs: pytest.fail("the ranker was fitted again")
    )
    run_pipeline(toy, out, "sasrec", **options)
    metrics = json.loads((out / "metrics.json").read_text())
    # the grounding report covers the whole table, reused rows included (it accumulates across reruns)
    assert metrics["images"]["reused"] == 6 and metrics["grounding_report"]["descriptions"] == 6


def test_run_pipeline_with_explicit_items_trains_nothing(toy, tmp_path, no_fit):
    out = run_pipeline(toy, tmp_path / "run", users=[1], items=[3, 5], progress=False)
    assert not (out / MODEL_DIR).exists()
    assert "ranking" not in json.loads((out / "metrics.json").read_text())


def test_demo_runs_the_whole_pipeline_with_its_named_settings(toy, tmp_path, monkeypatch):
    from genrec.rankers import NAMED_CONFIGS

    monkeypatch.setattr(run, "DEMO_DATASET", str(toy))
    assert run.DEMO_PRESETS["tiny"][2] == run.DEMO_TEXT_GENERATOR == "smollm2"
    # template descriptions keep this test fast; tests/test_cli.py's slow demo test runs SmolLM2
    monkeypatch.setitem(run.DEMO_PRESETS, "tiny", ("tiny", "tiny", "template"))
    preset = NAMED_CONFIGS.get(run.DEMO_RANKER_CONFIG)
    owner, settings = preset.type, preset.config
    assert owner == run.DEMO_RANKER
    out = run_demo(tmp_path / "demo", progress=False)
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["ranker"] == run.DEMO_RANKER and config["train"]["config"]["epochs"] == settings["epochs"]
    assert config["generate"]["text_generator"] == "template"
    assert len(config["recommend"]["users"]) == run.DEMO_USERS
    assert json.loads((out / "metrics.json").read_text())["recommendations"] == run.DEMO_USERS * run.DEMO_TOP_K
    with pytest.raises(ConfigError, match="unknown demo preset 'huge'"):
        run_demo(tmp_path / "demo", preset="huge")


def test_demo_settings_give_its_llm_one_regeneration_and_generate_applies_text_generator_overrides(toy, tmp_path):
    settings = run.demo_settings("tiny")
    assert settings["text_generator"] == "smollm2"
    assert settings["text_generator_overrides"] == {"grounding": {"max_retries": 1}}
    assert run.demo_settings("standard")["text_generator_overrides"] == {"grounding": {"max_retries": 1}}
    out = tmp_path / "run"
    recommendations = run.recommend_items(toy, out, [1, 2], [3])
    overrides = {"grounding": {"max_retries": 0}, "max_new_tokens": 8}
    run.generate(recommendations, toy, out, "tiny", "tiny", "tiny", progress=False, text_generator_overrides=overrides)
    table = pd.read_parquet(out / "descriptions.parquet")
    assert table["attempts"].tolist() == [1, 1]  # no regeneration: a rejected text went to the template at once
    assert json.loads((out / "config.json").read_text())["generate"]["text_generator_overrides"] == overrides
