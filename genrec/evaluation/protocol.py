"""Evaluate a ranker on an :class:`EvalSet` with the full-ranking protocol."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from genrec.evaluation.metrics import DEFAULT_KS, accuracy_metrics, beyond_accuracy_metrics
from genrec.evaluation.splits import EvalSet

if TYPE_CHECKING:
    from genrec.rankers.base import Ranker


@dataclass
class RankingEvaluation:
    metrics: dict[str, float]
    cold_start: dict[str, float]  # same metrics on users whose target has no training interaction
    n_users: int
    n_cold_users: int
    recommended: np.ndarray  # [U, max K] item indices, -1 where the list ran out
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)  # ranker-specific figures
    n_unreachable_users: int = 0  # users whose every target is excluded as seen: always a miss

    def to_dict(self) -> dict:
        return {
            "metrics": self.metrics,
            "cold_start": {"n_users": self.n_cold_users, **self.cold_start},
            "n_users": self.n_users,
            "n_unreachable_users": self.n_unreachable_users,
            "seconds": self.seconds,
            **({"extra": self.extra} if self.extra else {}),
        }


def evaluate_full_ranking(
    ranker: Ranker,
    eval_set: EvalSet,
    item_popularity: np.ndarray,
    ks: tuple[int, ...] = DEFAULT_KS,
    item_embeddings: np.ndarray | None = None,
    progress: bool = False,
) -> RankingEvaluation:
    """Rank the whole catalogue for every user of ``eval_set`` (seen items excluded unless the
    split allows repeats) and score it.

    Users whose every target is excluded as seen are counted (``n_unreachable_users``) and
    warned about: they can only count as misses.

    ``item_popularity`` is the training count per item: it defines AvgPop@K and the
    cold-start slice (targets with zero training interactions).
    """
    start = time.perf_counter()
    unreachable = unreachable_rows(eval_set)
    if len(unreachable):
        warnings.warn(
            f"{len(unreachable)} of {len(eval_set)} users have only targets they already saw; excluded as seen, "
            "those can never be hit and count as misses (evaluate re-purchase data with "
            "SplitConfig(allow_repeats=True))",
            stacklevel=2,
        )
    recommended, _ = ranker.rank(eval_set.history, k=max(ks), exclude=eval_set.excluded, progress=progress)
    metrics = accuracy_metrics(recommended, eval_set.targets, ks)
    metrics.update(beyond_accuracy_metrics(recommended, item_popularity, ks, item_embeddings))
    cold = np.bincount(
        eval_set.targets.row_ids()[item_popularity[eval_set.targets.items] == 0], minlength=len(eval_set)
    ).astype(bool)
    cold_rows = np.flatnonzero(cold)
    cold_metrics = (
        accuracy_metrics(recommended[cold_rows], eval_set.targets.rows(cold_rows), ks) if len(cold_rows) else {}
    )
    return RankingEvaluation(
        metrics=metrics,
        cold_start=cold_metrics,
        n_users=len(eval_set),
        n_cold_users=len(cold_rows),
        recommended=recommended,
        seconds=time.perf_counter() - start,
        extra=ranker.evaluation_extras(),
        n_unreachable_users=len(unreachable),
    )


def unreachable_rows(eval_set: EvalSet) -> np.ndarray:
    """Rows of ``eval_set`` whose every target is among the items ranking excludes: [R] row numbers."""
    targets, excluded = eval_set.targets, eval_set.excluded
    width = int(max(targets.items.max(initial=0), excluded.items.max(initial=0))) + 1
    # (row, item) pairs as one int64 key each
    hidden = np.isin(targets.row_ids() * width + targets.items, excluded.row_ids() * width + excluded.items)
    n_hidden = np.bincount(targets.row_ids()[hidden], minlength=len(eval_set))  # [U]
    return np.flatnonzero((n_hidden == targets.lengths) & (targets.lengths > 0))
