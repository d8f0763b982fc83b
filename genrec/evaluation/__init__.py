"""The evaluation protocol: splits, full-ranking metrics, ranker evaluation."""

from genrec.evaluation.metrics import (
    DEFAULT_KS,
    accuracy_metrics,
    beyond_accuracy_metrics,
    exclude_seen,
    intra_list_diversity,
    top_k,
)
from genrec.evaluation.protocol import RankingEvaluation, evaluate_ranker
from genrec.evaluation.splits import EvalSet, Split, SplitConfig, split

__all__ = [
    "DEFAULT_KS",
    "EvalSet",
    "RankingEvaluation",
    "Split",
    "SplitConfig",
    "accuracy_metrics",
    "beyond_accuracy_metrics",
    "evaluate_ranker",
    "exclude_seen",
    "intra_list_diversity",
    "split",
    "top_k",
]
