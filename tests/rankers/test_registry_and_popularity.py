"""Ranker registry, config resolution and the popularity ranker."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from genrec import rankers
from genrec.config import ConfigError
from genrec.evaluation import split
from genrec.rankers import (
    RANKERS,
    NotFittedError,
    create_ranker,
    factory,
    list_named_configs,
    list_rankers,
    load_ranker,
    register_named_config,
    resolve_ranker_config,
)
from genrec.registry import UnknownNameError


def test_unknown_ranker_lists_valid_names():
    with pytest.raises(UnknownNameError, match=r"valid names: .*popular"):
        create_ranker("nope")
    assert "popular" in list_rankers()


def test_config_rejects_unknown_keys_and_bad_types(tmp_path: Path):
    with pytest.raises(ConfigError, match="eval_batch_sise"):
        resolve_ranker_config("popular", {"eval_batch_sise": 3})
    with pytest.raises(ConfigError, match="eval_batch_size"):
        resolve_ranker_config("popular", {"eval_batch_size": 0})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad.json: line 1: invalid JSON"):
        resolve_ranker_config("popular", bad)
    with pytest.raises(ConfigError, match="neither a JSON file nor a named config"):
        resolve_ranker_config("popular", "no-such-config")


def test_config_file_and_overrides(tmp_path: Path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"eval_batch_size": 7, "seed": 1}))
    config = resolve_ranker_config("popular", path, overrides={"seed": 5})
    assert (config.eval_batch_size, config.seed) == (7, 5)


@pytest.fixture
def scratch_named_configs(monkeypatch: pytest.MonkeyPatch) -> dict:
    """A copy of the named-config registry for one test: what it registers is gone afterwards."""
    scratch = rankers.NAMED_CONFIGS.copy()
    monkeypatch.setattr(factory, "NAMED_CONFIGS", scratch)  # the module whose functions read it
    return scratch


def test_named_config_must_match_ranker(scratch_named_configs):
    register_named_config("test-popular-small-batches", "popular", {"eval_batch_size": 2})
    assert resolve_ranker_config("popular", "test-popular-small-batches").eval_batch_size == 2
    register_named_config("test-for-another", "sasrec-like", {})
    with pytest.raises(ConfigError, match="is for ranker 'sasrec-like'"):
        resolve_ranker_config("popular", "test-for-another")
    with pytest.raises(ValueError, match="already registered"):
        register_named_config("test-for-another", "popular", {})
    assert "test-for-another" in scratch_named_configs


def test_named_configs_registered_by_tests_do_not_leak():
    """Runs after the test above (file order): the global registry holds only genrec's own named configs."""
    assert not [name for name in list_named_configs() if name.startswith("test-")]
    assert {"sasrec-recbole-defaults", "tiger-rqvae"} <= set(list_named_configs())


def test_popularity_ranks_by_training_count_excluding_seen(toy_dataset):
    the_split = split(toy_dataset)
    ranker = create_ranker("popular", {"eval_batch_size": 2})
    with pytest.raises(NotFittedError):
        ranker.rank(the_split.test.history, k=3)
    ranker.fit(the_split, progress=False)
    counts = np.bincount(the_split.train.items, minlength=toy_dataset.n_items)
    indices, scores = ranker.rank(the_split.test.history, k=3)
    for row in range(len(indices)):
        seen = set(the_split.test.history[row].tolist())
        assert not seen & set(indices[row].tolist())
        assert scores[row].tolist() == sorted(scores[row].tolist(), reverse=True)
        assert scores[row].tolist() == counts[indices[row]].astype(np.float32).tolist()


def test_save_and_reload_rank_identically(toy_dataset, tmp_path: Path):
    the_split = split(toy_dataset)
    ranker = create_ranker("popular")
    ranker.fit(the_split, progress=False)
    ranker.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json", "model.safetensors"]
    reloaded = load_ranker(str(tmp_path / "model"))
    before, after = ranker.rank(the_split.test.history, 5), reloaded.rank(the_split.test.history, 5)
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])


def test_from_pretrained_names_missing_files(tmp_path: Path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"missing model\.safetensors"):
        load_ranker(str(tmp_path))


def test_item_features_must_match_catalogue(toy_dataset):
    ranker = create_ranker("sasrec", {"hidden": 8, "inner": 16, "max_len": 8}, item_features=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="item_features has 3 rows"):
        ranker.fit(split(toy_dataset), progress=False)


@pytest.mark.parametrize("name", ["popular", "multvae", "diffrec"])
def test_rankers_that_ignore_item_features_refuse_them(name: str, toy_dataset):
    """Features a ranker would not use are an error, never silently stored (nor saved with the model)."""
    with pytest.raises(
        ConfigError, match=rf"ranker '{name}' does not use item features.*use them: ensemble, hstu, sasrec, tiger"
    ):
        create_ranker(name, item_features=np.zeros((toy_dataset.n_items, 4)))
    assert not RANKERS.get(name).uses_item_features
    assert [n for n in list_rankers() if RANKERS.get(n).uses_item_features] == ["ensemble", "hstu", "sasrec", "tiger"]
