"""Generative ranking models behind one registry.

>>> from genrec.rankers import create_ranker, list_rankers
>>> ranker = create_ranker("popular")
>>> ranker = create_ranker("popular", config={"eval_batch_size": 512})
"""

from __future__ import annotations

from typing import Any

import numpy as np

from genrec.rankers.base import FitReport, NotFittedError, Ranker, RankerConfig
from genrec.rankers.popularity import PopularityRanker
from genrec.registry import Registry

RANKERS: Registry[type[Ranker]] = Registry("ranker")
RANKERS.register(PopularityRanker.name)(PopularityRanker)

__all__ = [
    "RANKERS",
    "FitReport",
    "NotFittedError",
    "Ranker",
    "RankerConfig",
    "create_ranker",
    "list_rankers",
    "load_ranker",
]


def list_rankers() -> list[str]:
    return RANKERS.names()


def create_ranker(
    name: str, config: RankerConfig | dict[str, Any] | None = None, item_features: np.ndarray | None = None
) -> Ranker:
    """Build an unfitted ranker by registry name; unknown names list the valid ones."""
    return RANKERS.get(name)(config, item_features=item_features)


def load_ranker(name_or_path: str, device: str | None = None) -> Ranker:
    """Load any saved ranker; the directory's config.json says which class to rebuild."""
    return Ranker.from_pretrained(name_or_path, device=device)
