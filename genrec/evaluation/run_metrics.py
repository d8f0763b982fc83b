"""metrics.json's sections, assembled from what a run produced: the ranking and the images.

The evaluate stage (:func:`genrec.pipelines.stages.evaluate`) loads the run's ranker, tables and
encoder and calls these; the descriptions' section comes from
:func:`genrec.pipelines.describe.description_figures`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from genrec.evaluation.image_metrics import image_metrics
from genrec.evaluation.protocol import evaluate_full_ranking
from genrec.evaluation.splits import Split

if TYPE_CHECKING:
    from genrec.data import Dataset
    from genrec.encoders import Encoder
    from genrec.rankers.base import Ranker


def ranking_section(ranker: Ranker, split: Split, record: Mapping[str, Any], progress: bool = False) -> dict[str, Any]:
    """The fitted ranker's full-ranking test metrics (the split it was fitted on), cold-start slice, extras
    and its fit report (``record``: the run's train record)."""
    evaluation = evaluate_full_ranking(ranker, split.test, split.item_popularity(), progress=progress)
    fit = record.get("fit") or {}
    return {
        "ranker": ranker.name,
        "phase": "test",
        "metrics": evaluation.metrics,
        "cold_start": {"n_users": evaluation.n_cold_users, **evaluation.cold_start},
        "extra": evaluation.extra,
        "fit": record.get("fit"),
        "key": record.get("key"),
        # the fields a ranking result has (genrec.pipelines.ranking.ranking_result): the report's validation curve
        **{name: fit[name] for name in ("fit_seconds", "epochs", "best_epoch", "history") if name in fit},
    }


def images_section(
    table: pd.DataFrame,
    baseline: pd.DataFrame | None,
    encoder: Encoder,
    dataset: Dataset,
    user_vectors: Mapping[Any, np.ndarray],
) -> dict[str, Any]:
    """CLIP score, cross-user diversity and personalisation against the baseline, with the image counts.

    ``generated`` and ``reused`` count what the last image stage made and found (each table row's
    ``reused``).
    """
    scored = image_metrics(table, encoder, dataset, user_vectors, baseline=baseline) if len(table) else {}
    return {
        **scored,
        "generated": int((~table["reused"]).sum()),
        "reused": int(table["reused"].sum()),
        "flagged": int(table["flagged"].sum()),
        "safety_checked": bool(table["unsafe_score"].notna().any()) if len(table) else False,
        "baseline_flagged": int(baseline["flagged"].sum()) if baseline is not None else None,
    }
