"""ensemble: members are the seeded single rankers, scores are their standardised mean, save/load, config errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genrec.config import ConfigError
from genrec.rankers import create_ranker, load_ranker
from genrec.rankers.ensemble import standardised
from genrec.seeding import seed_everything

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny models: one intra-op thread (tests/conftest.py)

TINY_HSTU = {"max_len": 6, "hidden": 16, "inner": 32, "heads": 2, "layers": 1, "epochs": 2, "patience": 2}


def ensemble(workers: int, seed: int = 0):
    return create_ranker(
        "ensemble", {"member": "hstu", "member_config": TINY_HSTU, "members": 2, "workers": workers, "seed": seed}
    )


def test_members_are_the_single_rankers_of_their_seeds_and_the_score_is_their_standardised_mean(toy_split):
    model = ensemble(workers=1, seed=1)
    report = model.fit(toy_split, progress=False)
    history = toy_split.valid.history
    singles = []
    for seed in (2, 3):  # seed * members + i
        seed_everything(seed)
        single = create_ranker("hstu", {**TINY_HSTU, "seed": seed})
        single.fit(toy_split, progress=False)
        singles.append(single.score(history))
    for member, expected in zip(model.members, singles, strict=True):
        torch.testing.assert_close(member.score(history), expected, rtol=0, atol=0)
    expected_mean = (standardised(singles[0]) + standardised(singles[1])) / 2
    torch.testing.assert_close(model.score(history), expected_mean)
    assert [row["seed"] for row in report.history] == [2, 3]
    assert report.epochs == max(row["epochs"] for row in report.history)
    assert report.best_epoch == max(row["best_epoch"] for row in report.history)
    assert 0.0 <= report.best_valid_ndcg10 <= 1.0


def test_members_fitted_in_worker_processes_match_those_fitted_in_this_one(toy_split):
    history = toy_split.test.history
    in_process = ensemble(workers=1)
    in_process.fit(toy_split, progress=False)
    in_workers = ensemble(workers=2)
    in_workers.fit(toy_split, progress=False)
    # both fit with one torch thread per member, so the weights are the same
    torch.testing.assert_close(in_workers.score(history), in_process.score(history), rtol=0, atol=0)


def test_a_saved_ensemble_reloads_bit_identically(toy_split, tmp_path):
    model = ensemble(workers=1)
    model.fit(toy_split, progress=False)
    directory = model.save_pretrained(tmp_path / "ensemble")
    assert sorted(path.name for path in (directory / "members").iterdir()) == ["0", "1"]
    loaded = load_ranker(str(directory))
    history = toy_split.test.history
    torch.testing.assert_close(loaded.score(history), model.score(history), rtol=0, atol=0)
    top, _ = loaded.rank(history, k=5)
    expected, _ = model.rank(history, k=5)
    assert (top == expected).all()


def test_item_features_reach_the_content_members_only_and_reload_bit_identically(toy_split, tmp_path):
    features = np.random.default_rng(0).normal(size=(toy_split.n_items, 6)).astype(np.float32)
    settings = {"member": "hstu", "member_config": TINY_HSTU, "members": 2, "workers": 1, "content_members": 1}
    model = create_ranker("ensemble", settings, item_features=features)
    model.fit(toy_split, progress=False)
    assert model.members[0].item_features is not None and model.members[1].item_features is None
    seed_everything(0)
    single = create_ranker("hstu", {**TINY_HSTU, "seed": 0}, item_features=features)
    single.fit(toy_split, progress=False)
    history = toy_split.test.history
    torch.testing.assert_close(model.members[0].score(history), single.score(history), rtol=0, atol=0)
    loaded = load_ranker(str(model.save_pretrained(tmp_path / "mixed")))
    torch.testing.assert_close(loaded.score(history), model.score(history), rtol=0, atol=0)
    with pytest.raises(ConfigError, match="does not use item features"):
        create_ranker("ensemble", {"member": "popular"}, item_features=features).fit(toy_split, progress=False)


def test_standardised_rows_have_zero_mean_and_unit_variance_and_refuse_infinite_scores():
    scores = torch.tensor([[1.0, 2.0, 3.0, 10.0], [-5.0, 0.0, 5.0, 0.0]])
    out = standardised(scores)
    torch.testing.assert_close(out.mean(dim=1), torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.std(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="finite"):
        standardised(torch.tensor([[0.0, float("-inf")]]))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"member": "nope"}, "not a registered ranker; options: .*hstu"),
        ({"member": "llm"}, "cannot be an ensemble member"),
        ({"members": 1}, "members"),
        ({"member_config": "no-such-config"}, "neither a JSON file nor a named config"),
        ({"members": 2, "content_members": 3}, "content_members \\(3\\) exceeds members \\(2\\)"),
    ],
)
def test_bad_settings_name_the_field(settings, message):
    with pytest.raises(ConfigError, match=message):
        create_ranker("ensemble", settings).config.member_settings()
