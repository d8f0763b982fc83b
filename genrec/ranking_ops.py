"""Operations on score matrices shared by every ranker and the evaluation: exclude seen items, top-k.

Full ranking (docs/evaluation.md) scores the whole catalogue, sets the user's seen items to
-inf and takes the top k with ties broken by the lower item index, so that a ranking is
deterministic. Rankers rank with these (``Ranker.rank``); the evaluation scores what they return.
"""

from __future__ import annotations

import torch

from genrec.data.sequences import Sequences


def exclude_seen(scores: torch.Tensor, seen: Sequences) -> torch.Tensor:
    """Set the scores of each row's seen items to -inf, in place: scores [B, N]."""
    rows = torch.from_numpy(seen.row_ids())
    scores[rows, torch.from_numpy(seen.items)] = float("-inf")
    return scores


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` per row with ties broken by lower index: scores [B, N] -> (idx [B, k], val [B, k]).

    ``torch.topk`` gives no tie order, so: take the k-th value, keep everything above it and
    the lowest-index items equal to it, then order the k survivors by (score desc, index asc).
    Slots that could only be filled with -inf (fewer than k unseen items) get index -1.
    """
    k = min(k, scores.shape[1])
    kth = torch.topk(scores, k, dim=1).values[:, -1:]  # [B, 1]
    above = scores > kth
    equal = scores == kth
    still_needed = k - above.sum(dim=1, keepdim=True)  # [B, 1]
    chosen = above | (equal & (torch.cumsum(equal, dim=1) <= still_needed))  # exactly k per row
    index = chosen.nonzero()[:, 1].view(-1, k)  # ascending item index within each row
    values = torch.gather(scores, 1, index)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices
    index, values = torch.gather(index, 1, order), torch.gather(values, 1, order)
    index[torch.isneginf(values)] = -1
    return index, values
