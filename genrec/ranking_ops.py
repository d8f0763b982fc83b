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


def top_k_with_new_items(
    scores: torch.Tensor, new: torch.Tensor, k: int, every: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` where places every, 2 x every, ... go to the best items of ``new`` ([N] bool), the others to the
    best of the rest: scores [B, N] -> (idx [B, k], val [B, k]), -1 where nothing is left.

    New items (e.g. never trained) score below the trained ones and would never be shown; reserved places
    give them exposure (TIGER's cold-start share, Rajput et al., 2023, section 4.2, places them at the end of
    the list; here they recur, so every prefix of the list holds its share). A side that runs out of items
    leaves its places to the other.
    """
    old_index, old_values = top_k(scores.masked_fill(new, float("-inf")), k)
    new_index, new_values = top_k(scores.masked_fill(~new, float("-inf")), k)
    index = torch.full_like(old_index, -1)
    values = torch.full_like(old_values, float("-inf"))
    for row in range(scores.shape[0]):
        queues = [
            [(i, v) for i, v in zip(old_index[row].tolist(), old_values[row].tolist(), strict=True) if i >= 0],
            [(i, v) for i, v in zip(new_index[row].tolist(), new_values[row].tolist(), strict=True) if i >= 0],
        ]
        for place in range(k):
            side = int((place + 1) % every == 0)
            if not queues[side]:
                side = 1 - side
            if not queues[side]:
                break
            index[row, place], values[row, place] = queues[side].pop(0)
    return index, values
