"""Ranking stages as plain functions: split, fit, evaluate, recommend, benchmark."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genrec.data import Dataset, load_dataset
from genrec.data.sequences import Sequences
from genrec.evaluation import DEFAULT_KS, RankingEvaluation, Split, SplitConfig, evaluate_full_ranking
from genrec.evaluation import split as split_dataset
from genrec.rankers import FitReport, Ranker, create_ranker, resolve_ranker_config
from genrec.seeding import seed_everything


def split(dataset: Dataset, config: SplitConfig | None = None) -> Split:
    """Leave-one-out by time (default) or a global temporal split; see genrec.evaluation.splits."""
    return split_dataset(dataset, config)


def fit_ranker(ranker: Ranker, split: Split, progress: bool = True) -> FitReport:
    """Train ``ranker`` on ``split.train`` with early stopping on ``split.valid`` where it trains."""
    seed_everything(ranker.config.seed)
    return ranker.fit(split, progress=progress)


def evaluate_ranker(
    ranker: Ranker,
    split: Split,
    phase: str = "test",
    ks: tuple[int, ...] = DEFAULT_KS,
    item_embeddings: np.ndarray | None = None,
    progress: bool = False,
) -> RankingEvaluation:
    """Full-ranking metrics of a fitted ranker on the ``test`` (or ``valid``) phase of ``split``."""
    if phase not in ("test", "valid"):
        raise ValueError(f"phase must be 'test' or 'valid', got {phase!r}")
    eval_set = split.test if phase == "test" else split.valid
    return evaluate_full_ranking(ranker, eval_set, split.item_popularity(), ks, item_embeddings, progress)


def rank(ranker: Ranker, dataset: Dataset | Split, users: list | None = None, k: int = 10) -> pd.DataFrame:
    """Top-``k`` recommendations for raw user ids (all users when None) from their full history.

    Seen items are excluded. Returns one row per (user, rank): user_id, rank (1-based),
    item_id, item_idx, score, title. A user who has seen every item gets no row (with a
    warning); when that is every requested user, there is nothing to return and it raises.
    """
    dataset = dataset.dataset if isinstance(dataset, Split) else dataset
    user_idx, history = rankable_histories(dataset, users)
    indices, scores = ranker.rank(history, k=k)
    return recommendations_table(dataset, user_idx, indices, scores)


def rankable_histories(dataset: Dataset, users: list | None = None) -> tuple[np.ndarray, Sequences]:
    """The user indices and full histories of raw user ids (all users when None), checked that something is left
    to rank: a user who has seen every item is warned about, and when that is every user, it raises ValueError."""
    user_idx = np.arange(dataset.n_users) if users is None else dataset.user_index(list(users))
    history = dataset.histories().rows(user_idx)
    n = dataset.n_items
    distinct = np.bincount(np.unique(history.row_ids() * n + history.items) // n, minlength=len(history))  # [U]
    seen_all = distinct == n
    if seen_all.any():
        who = ", ".join(map(str, dataset.user_ids[user_idx][seen_all][:10].tolist()))
        message = (
            f"{dataset.name}: nothing left to recommend to user(s) {who}"
            f"{' and more' if seen_all.sum() > 10 else ''}: they have seen all {n} items, and seen items are excluded"
        )
        if seen_all.all():
            raise ValueError(message)
        warnings.warn(f"{message}; they get no recommendations", stacklevel=3)
    return user_idx, history


def recommendations_table(
    dataset: Dataset, user_idx: np.ndarray, indices: np.ndarray, scores: np.ndarray
) -> pd.DataFrame:
    """Top-k item indices and scores [U, k] of users ``user_idx`` as the recommendations table (one row per
    user and rank; -1 slots, where nothing was left to rank, dropped)."""
    kept = indices >= 0
    rows = np.repeat(np.arange(len(user_idx)), kept.sum(axis=1))
    items = indices[kept]
    return pd.DataFrame(
        {
            "user_id": dataset.user_ids[user_idx][rows],
            "rank": np.nonzero(kept)[1] + 1,
            "item_id": dataset.item_ids[items],
            "item_idx": items,
            "score": scores[kept],
            "title": dataset.items["title"].to_numpy()[items],
        }
    )


def build_ranker(
    ranker: str,
    config: str | Path | dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    seed: int | None = None,
    item_features: np.ndarray | None = None,
) -> Ranker:
    """An unfitted ranker from a name, a named config / JSON file / dict, and overrides (seed wins)."""
    overrides = {**(overrides or {}), **({"seed": seed} if seed is not None else {})}
    return create_ranker(ranker, resolve_ranker_config(ranker, config, overrides), item_features=item_features)


def ranking_result(
    dataset: Dataset, split: Split, ranker: Ranker, fit_seconds: float, evaluation: RankingEvaluation
) -> dict[str, Any]:
    """The JSON-ready result of one benchmark run (the ``--json`` output of ``genrec benchmark ranking``)."""
    report = ranker.fit_report or FitReport()
    return {
        "ranker": ranker.name,
        "dataset": dataset.name,
        "split": split.strategy,
        "seed": ranker.config.seed,
        "config": ranker.config.model_dump(mode="json"),
        "metrics": evaluation.metrics,
        "cold_start": {"n_users": evaluation.n_cold_users, **evaluation.cold_start},
        "extra": evaluation.extra,
        "fit_seconds": fit_seconds,
        "eval_seconds": evaluation.seconds,
        "epochs": report.epochs,
        "best_epoch": report.best_epoch,
        "seconds_per_epoch": report.seconds_per_epoch,
        "best_valid_NDCG@10": report.best_valid_ndcg10,
        "history": report.history,
        "n_users": dataset.n_users,
        "n_items": dataset.n_items,
    }


def benchmark_ranking(
    dataset: str | Path | Dataset = "movielens-latest-small",
    ranker: str = "popular",
    config: str | Path | dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    seed: int | None = None,
    split_config: SplitConfig | None = None,
    item_features: np.ndarray | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fit ``ranker`` on the training split, evaluate on test; see :func:`ranking_result` for the keys."""
    loaded = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    the_split = split(loaded, split_config)
    model = build_ranker(ranker, config, overrides, seed, item_features)
    return fit_and_evaluate(loaded, the_split, model, progress)


def fit_and_evaluate(dataset: Dataset, split: Split, ranker: Ranker, progress: bool = True) -> dict[str, Any]:
    """Fit ``ranker`` (timed as a whole: features, quantisers and epochs) and evaluate it on test.

    The benchmark step for callers that keep the fitted ranker, e.g. to evaluate it again under
    other ranking settings; returns :func:`ranking_result`'s dict.
    """
    start = time.perf_counter()
    fit_ranker(ranker, split, progress=progress)
    fit_seconds = time.perf_counter() - start
    return ranking_result(dataset, split, ranker, fit_seconds, evaluate_ranker(ranker, split))
