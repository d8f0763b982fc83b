"""The evaluation protocol: splits, full-ranking metrics, ranker evaluation."""

from genrec.evaluation.metrics import DEFAULT_KS, accuracy_metrics, beyond_accuracy_metrics, intra_list_diversity
from genrec.evaluation.protocol import RankingEvaluation, evaluate_full_ranking
from genrec.evaluation.splits import EvalSet, Split, SplitConfig, split
from genrec.ranking_ops import exclude_seen, top_k

__all__ = [
    "DEFAULT_KS",
    "EvalSet",
    "RankingEvaluation",
    "Split",
    "SplitConfig",
    "accuracy_metrics",
    "beyond_accuracy_metrics",
    "evaluate_full_ranking",
    "exclude_seen",
    "intra_list_diversity",
    "split",
    "top_k",
]
