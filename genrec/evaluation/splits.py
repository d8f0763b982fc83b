"""Train / validation / test splits (docs/evaluation.md).

Leave-one-out by time (the default): each user's last interaction is the test target,
the one before it the validation target, the rest is training. Chronological order and
its tie-break (equal timestamps keep source-file order) come from the :class:`Dataset`.

Global temporal split (option): two cut-off times at quantiles of all timestamps; a user's
interactions after a cut-off are that phase's targets, everything before is history.

Ranking excludes the items a user has seen, so a target the user already had (re-consumption,
counted in the data set's validation report) can never be hit. For re-purchase data,
``allow_repeats=True`` keeps seen items rankable in evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from pydantic import Field

from genrec.config import StrictModel
from genrec.data.dataset import Dataset
from genrec.data.sequences import Sequences


class SplitConfig(StrictModel):
    strategy: Literal["leave-one-out", "temporal"] = "leave-one-out"
    valid_quantile: float = 0.8
    test_quantile: float = 0.9
    allow_repeats: bool = Field(
        False, description="evaluate without excluding seen items, so a re-consumed item can be hit (re-purchase data)"
    )

    def model_post_init(self, _context) -> None:
        if not 0.0 < self.valid_quantile < self.test_quantile < 1.0:
            raise ValueError(
                f"temporal split needs 0 < valid_quantile < test_quantile < 1, "
                f"got {self.valid_quantile} and {self.test_quantile}"
            )


@dataclass(frozen=True)
class EvalSet:
    """Users to evaluate, what each has seen (model input and items excluded from ranking),
    and the items each should find. Row ``i`` of ``history``/``targets`` is ``users[i]``."""

    users: np.ndarray  # [U] user_idx
    history: Sequences
    targets: Sequences
    exclude_seen: bool = True  # False: seen items stay rankable (SplitConfig.allow_repeats)

    def __len__(self) -> int:
        return len(self.users)

    @property
    def excluded(self) -> Sequences:
        """The items ranking leaves out for each row: the history, or none when repeats are allowed."""
        if self.exclude_seen:
            return self.history
        return Sequences(np.zeros(len(self) + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))

    def subset(self, rows: np.ndarray) -> EvalSet:
        return EvalSet(self.users[rows], self.history.rows(rows), self.targets.rows(rows), self.exclude_seen)


@dataclass(frozen=True)
class Split:
    dataset: Dataset
    train: Sequences  # one row per user_idx (possibly empty), chronological
    valid: EvalSet
    test: EvalSet
    strategy: str

    @property
    def n_items(self) -> int:
        return self.dataset.n_items

    @property
    def n_users(self) -> int:
        return self.dataset.n_users

    def item_popularity(self) -> np.ndarray:
        """Training interaction count per item: [n_items]."""
        return np.bincount(self.train.items, minlength=self.n_items)


def _take(sequences: Sequences, keep: np.ndarray) -> Sequences:
    """Keep the flagged elements of every row (a flat boolean mask), preserving rows."""
    lengths = np.bincount(sequences.row_ids()[keep], minlength=len(sequences))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ratings = None if sequences.ratings is None else sequences.ratings[keep]
    return Sequences(offsets, sequences.items[keep], sequences.timestamps[keep], ratings)


def leave_one_out(dataset: Dataset) -> Split:
    sequences = dataset.histories()
    lengths = sequences.lengths
    if (lengths < 3).any():
        raise ValueError(
            f"{dataset.name}: leave-one-out needs >= 3 interactions per user; "
            f"{int((lengths < 3).sum())} users have fewer (load with min_user_interactions>=3)"
        )
    position = np.arange(len(sequences.items)) - np.repeat(sequences.offsets[:-1], lengths)
    from_end = np.repeat(lengths, lengths) - position  # 1 = last interaction
    users = np.arange(len(sequences))
    train = _take(sequences, from_end > 2)
    valid = EvalSet(users, train, _take(sequences, from_end == 2))
    test = EvalSet(users, _take(sequences, from_end > 1), _take(sequences, from_end == 1))
    return Split(dataset, train, valid, test, "leave-one-out")


def temporal(dataset: Dataset, valid_quantile: float, test_quantile: float) -> Split:
    sequences = dataset.histories()
    valid_cut, test_cut = np.quantile(sequences.timestamps, [valid_quantile, test_quantile])
    train = _take(sequences, sequences.timestamps < valid_cut)

    def phase(history_end: float, target_end: float) -> EvalSet:
        history = _take(sequences, sequences.timestamps < history_end)
        in_window = (sequences.timestamps >= history_end) & (sequences.timestamps < target_end)
        targets = _take(sequences, in_window)
        users = np.flatnonzero((targets.lengths > 0) & (history.lengths > 0))
        return EvalSet(users, history.rows(users), targets.rows(users))

    valid = phase(valid_cut, test_cut)
    test = phase(test_cut, np.inf)
    if len(test) == 0:
        raise ValueError(f"{dataset.name}: temporal split left no user with both history and test interactions")
    return Split(dataset, train, valid, test, "temporal")


def split(dataset: Dataset, config: SplitConfig | None = None) -> Split:
    """Split ``dataset`` by ``config.strategy`` (leave-one-out by time unless told otherwise)."""
    config = config or SplitConfig()
    if config.strategy == "leave-one-out":
        result = leave_one_out(dataset)
    else:
        result = temporal(dataset, config.valid_quantile, config.test_quantile)
    if not config.allow_repeats:
        return result
    valid, test = (replace(phase, exclude_seen=False) for phase in (result.valid, result.test))
    return replace(result, valid=valid, test=test)
