"""The ranking stages as plain functions."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from genrec import pipelines as gp
from genrec.rankers import create_ranker

BUNDLED = Path(gp.__file__).resolve().parents[1] / "data" / "bundled" / "ml-latest-small"
RESULT_KEYS = {"ranker", "dataset", "metrics", "fit_seconds", "eval_seconds", "n_users", "n_items"}


def test_benchmark_popular_on_bundled_data(movielens_small):
    result = gp.benchmark_ranking(movielens_small, "popular", progress=False)
    assert result.keys() >= RESULT_KEYS
    assert (result["n_users"], result["n_items"]) == (610, 9742)
    for k in (5, 10, 20):
        for name in ("HR", "Recall", "NDCG", "MRR", "Coverage", "AvgPop"):
            assert f"{name}@{k}" in result["metrics"]
    # Popularity on this split: a regression guard on the whole protocol (see benchmarks/RESULTS.md),
    # and the same figures recomputed from the raw CSV files without genrec's loader, split or metrics.
    assert result["metrics"]["NDCG@10"] == pytest.approx(0.018810, abs=1e-5)
    assert result["cold_start"]["n_users"] == 24
    ndcg10, hr10, cold_users = popularity_by_hand(BUNDLED)
    assert result["metrics"]["NDCG@10"] == pytest.approx(ndcg10, abs=1e-9)
    assert result["metrics"]["HR@10"] == pytest.approx(hr10, abs=1e-9)
    assert cold_users == 24 and ndcg10 == pytest.approx(0.018810, abs=1e-5)


def popularity_by_hand(directory: Path) -> tuple[float, float, int]:
    """Leave-one-out popularity NDCG@10 and HR@10 in plain Python, straight from ratings.csv and movies.csv.

    Each user's ratings in time order (ties: file order); the last is the test target, everything
    before it the history (excluded from the ranking); counts come from the training part (all but the
    last two). Items are ranked by count, ties by catalogue (movies.csv) order. Also returns the number
    of users whose test item has no training interaction.
    """
    with (directory / "movies.csv").open(newline="", encoding="utf-8") as handle:
        catalogue = [int(row["movieId"]) for row in csv.DictReader(handle)]
    by_user: dict[int, list[tuple[int, int]]] = {}
    with (directory / "ratings.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            by_user.setdefault(int(row["userId"]), []).append((int(row["timestamp"]), int(row["movieId"])))
    counts = dict.fromkeys(catalogue, 0)
    for ratings in by_user.values():
        for _, item in sorted(ratings, key=lambda pair: pair[0])[:-2]:
            counts[item] += 1
    position = {item: index for index, item in enumerate(catalogue)}
    order = sorted(catalogue, key=lambda item: (-counts[item], position[item]))
    gains, hits, cold = [], [], 0
    for ratings in by_user.values():
        items = [item for _, item in sorted(ratings, key=lambda pair: pair[0])]
        target, seen = items[-1], set(items[:-1])
        top = [item for item in order[: 10 + len(seen)] if item not in seen][:10]
        rank = top.index(target) + 1 if target in top else None
        gains.append(0.0 if rank is None else 1.0 / math.log2(rank + 1))
        hits.append(rank is not None)
        cold += counts[target] == 0
    return sum(gains) / len(gains), sum(hits) / len(hits), cold


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
