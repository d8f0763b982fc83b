"""Full-ranking metrics (docs/evaluation.md).

Every item of the catalogue is scored; the user's already-seen items are excluded; ties
in score are broken by the lower item index, so results are deterministic (both in
:mod:`genrec.ranking_ops`, which every ranker ranks with). Sampled metrics are deliberately absent.

With targets T (one item under leave-one-out) and the top-K list R of a user:
  HR@K     = 1[|R ∩ T| > 0]
  Recall@K = |R ∩ T| / |T|
  NDCG@K   = sum_{r in R ∩ T} 1/log2(rank(r)+1) / sum_{i=1}^{min(K,|T|)} 1/log2(i+1)
  MRR@K    = 1 / rank of the first hit (0 when none)
averaged over users. Beyond accuracy: Coverage@K (share of the catalogue recommended to
anyone), AvgPop@K (mean training interaction count of recommended items) and, when item
embeddings are given, ILD@K (mean pairwise cosine distance inside a list).
"""

from __future__ import annotations

import numpy as np
import torch

from genrec.data.sequences import Sequences

DEFAULT_KS = (5, 10, 20)


def hit_matrix(recommended: np.ndarray, targets: Sequences) -> np.ndarray:
    """recommended [U, K] item indices (-1 = empty) -> [U, K] bool, True where a target sits."""
    hits = np.zeros(recommended.shape, dtype=bool)
    target_rows = targets.row_ids()
    # Compare every target with every slot of its own row: [nnz_targets, K].
    matches = recommended[target_rows] == targets.items[:, None]
    np.logical_or.at(hits, target_rows, matches)
    return hits


def accuracy_metrics(recommended: np.ndarray, targets: Sequences, ks=DEFAULT_KS) -> dict[str, float]:
    """HR, Recall, NDCG and MRR at each K from top-max(K) lists [U, K_max]."""
    hits = hit_matrix(recommended, targets)
    n_targets = targets.lengths.astype(np.float64)  # [U]
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))  # [K_max]
    ideal_cumulative = np.cumsum(discounts)
    metrics: dict[str, float] = {}
    for k in ks:
        top = hits[:, :k]
        n_hits = top.sum(axis=1)
        ideal = ideal_cumulative[np.minimum(n_targets, k).astype(int) - 1]
        first = np.where(top.any(axis=1), top.argmax(axis=1) + 1, np.inf)
        metrics[f"HR@{k}"] = float((n_hits > 0).mean())
        metrics[f"Recall@{k}"] = float((n_hits / n_targets).mean())
        metrics[f"NDCG@{k}"] = float(((top * discounts[:k]).sum(axis=1) / ideal).mean())
        metrics[f"MRR@{k}"] = float((1.0 / first).mean())
    return metrics


def beyond_accuracy_metrics(
    recommended: np.ndarray,
    item_popularity: np.ndarray,
    ks=DEFAULT_KS,
    item_embeddings: np.ndarray | None = None,
) -> dict[str, float]:
    """Coverage@K, AvgPop@K and (with embeddings [N, D]) ILD@K from lists [U, K_max]."""
    n_items = len(item_popularity)
    metrics: dict[str, float] = {}
    for k in ks:
        top = recommended[:, :k]
        valid = top >= 0
        metrics[f"Coverage@{k}"] = float(np.unique(top[valid]).size / n_items)
        metrics[f"AvgPop@{k}"] = float(item_popularity[top[valid]].mean()) if valid.any() else 0.0
        if item_embeddings is not None:
            metrics[f"ILD@{k}"] = intra_list_diversity(top, item_embeddings)
    return metrics


def intra_list_diversity(top: np.ndarray, item_embeddings: np.ndarray) -> float:
    """Mean pairwise cosine distance between the items of each list (lists with < 2 items skipped)."""
    vectors = torch.from_numpy(item_embeddings[np.maximum(top, 0)]).float()  # [U, K, D]
    vectors = torch.nn.functional.normalize(vectors, dim=-1)
    valid = torch.from_numpy(top >= 0).float()  # [U, K]
    similarity = vectors @ vectors.transpose(1, 2)  # [U, K, K]
    pair_mask = valid[:, :, None] * valid[:, None, :] * (1 - torch.eye(top.shape[1]))
    pairs = pair_mask.sum(dim=(1, 2))
    distance = ((1 - similarity) * pair_mask).sum(dim=(1, 2)) / pairs.clamp(min=1)
    return float(distance[pairs > 0].mean()) if (pairs > 0).any() else 0.0
