"""The ranking stages as plain functions."""

from __future__ import annotations

import pytest

from genrec import pipelines as gp
from genrec.rankers import create_ranker

RESULT_KEYS = {"ranker", "dataset", "metrics", "fit_seconds", "eval_seconds", "n_users", "n_items"}


def test_benchmark_popular_on_bundled_data(movielens_small):
    result = gp.benchmark_ranking(movielens_small, "popular", progress=False)
    assert result.keys() >= RESULT_KEYS
    assert (result["n_users"], result["n_items"]) == (610, 9742)
    for k in (5, 10, 20):
        for name in ("HR", "Recall", "NDCG", "MRR", "Coverage", "AvgPop"):
            assert f"{name}@{k}" in result["metrics"]
    # Popularity on this split: a regression guard on the whole protocol (see benchmarks/RESULTS.md).
    assert result["metrics"]["NDCG@10"] == pytest.approx(0.018810, abs=1e-5)
    assert result["cold_start"]["n_users"] == 24


def test_rank_returns_unseen_items_for_raw_user_ids(toy_dataset):
    ranker = create_ranker("popular")
    gp.fit_ranker(ranker, gp.split(toy_dataset), progress=False)
    table = gp.rank(ranker, toy_dataset, users=[1, 3], k=2)
    assert table.columns.tolist() == ["user_id", "rank", "item_id", "item_idx", "score", "title"]
    assert table["user_id"].tolist() == [1, 1, 3, 3]
    assert table["rank"].tolist() == [1, 2, 1, 2]
    for user, group in table.groupby("user_id"):
        seen = set(toy_dataset.sequence(int(toy_dataset.user_index([user])[0])).tolist())
        assert not seen & set(group["item_idx"].tolist())


def test_rank_unknown_user_is_a_clear_error(toy_dataset):
    ranker = create_ranker("popular")
    gp.fit_ranker(ranker, gp.split(toy_dataset), progress=False)
    with pytest.raises(KeyError, match="unknown user id 999"):
        gp.rank(ranker, toy_dataset, users=[999])


def test_evaluate_rejects_unknown_phase(toy_dataset):
    ranker = create_ranker("popular")
    the_split = gp.split(toy_dataset)
    gp.fit_ranker(ranker, the_split, progress=False)
    with pytest.raises(ValueError, match="phase must be"):
        gp.evaluate_ranker(ranker, the_split, phase="train")
