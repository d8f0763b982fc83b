"""Most-popular baseline: every user gets the items with the most training interactions."""

from __future__ import annotations

import time

import numpy as np
import torch

from genrec.data.sequences import Sequences
from genrec.evaluation.splits import Split
from genrec.rankers.base import FitReport, Ranker, RankerConfig


class PopularityConfig(RankerConfig):
    pass


class PopularityRanker(Ranker):
    """Scores an item by its training interaction count (ties: lower item index first)."""

    name = "popular"
    config_class = PopularityConfig

    def build(self, n_items: int) -> None:
        self.counts = torch.zeros(n_items, dtype=torch.float32)

    def fit(self, split: Split, progress: bool = True) -> FitReport:
        start = time.perf_counter()
        self.check_item_features(split.n_items)
        self.build(split.n_items)
        self.counts = torch.from_numpy(np.bincount(split.train.items, minlength=split.n_items).astype(np.float32))
        self.n_items = split.n_items
        self.fit_report = FitReport(epochs=1, best_epoch=1, fit_seconds=time.perf_counter() - start)
        return self.fit_report

    def score(self, history: Sequences) -> torch.Tensor:
        self.require_fitted()
        return self.counts.expand(len(history), -1).clone()

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"counts": self.counts}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.counts = tensors["counts"]
