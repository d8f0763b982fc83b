"""A ranking conditioned on a request (:class:`~genrec.requests.ParsedRequest`): the history model's scores
fused with the request's, and the request's constraints as filters.

For each user, over the whole catalogue::

    history  = the user's history + the titles the request names, as the most recent items
    sequence = model.score(history)                                  # the ranker, unchanged
    content  = cos(MiniLM(request), MiniLM(item facts))              # title, year, genres, tags
    score    = standardised(sequence) + weight * standardised(content)
    score[item] = -inf  where the item has an avoided genre or lies outside the stated years,
                        or is in the history (seen, or named)

- the request's vector is the mean of the MiniLM vector of its text (``rest`` and the wanted genres,
  :func:`request_query`) and the fact vectors of the titles it names ("like Alien": Alien's facts),
  so a request with only a title, or with no history behind it, still says what to look for;
- both scores are standardised per user over the catalogue (zero mean, unit variance), as the seed
  ensembles do (:func:`genrec.rankers.ensemble.standardised`): a sampled-softmax model's logits have
  no fixed scale, and ``weight`` must mean the same for every ranker. ``weight`` 0 is the history
  model with the request's titles and filters only; ``inf`` is the request alone (content retrieval,
  no history model);
- filters apply only what the request states (:attr:`ParsedRequest.avoid_genres`, :attr:`years`):
  an item without a year cannot be shown to be of the stated years and is left out.

:data:`DEFAULT_REQUEST_WEIGHT` is chosen on validation NDCG@10 with simulated requests
(``benchmarks/bench_requests.py``, benchmarks/RESULTS.md "Requests").
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from genrec.data import Dataset
from genrec.data.sequences import Sequences
from genrec.pipelines.ranking import rank, rankable_histories, recommendations_table
from genrec.rankers.ensemble import standardised
from genrec.ranking_ops import exclude_seen, top_k
from genrec.requests import ParsedRequest, genre_names

REQUEST_ENCODER = "minilm"  # the encoder preset of requests and item facts
# The request as much say as the history: the best mean validation NDCG@10 of bench_requests.py's grid over seeds
# 0-2 (0.2514; 0.2243 at 0.5, 0.2081 at 2; benchmarks/RESULTS.md, "Requests in natural language").
DEFAULT_REQUEST_WEIGHT = 1.0
REQUEST_ONLY = math.inf  # the weight of a ranking by the request alone

_ENCODER: dict[str, Any] = {}
_ENCODER_LOCK = threading.Lock()


def request_encoder() -> Any:
    """The MiniLM encoder of requests, built once per process (a request's latency must not include its load)."""
    from genrec.encoders import create_encoder

    with _ENCODER_LOCK:
        if REQUEST_ENCODER not in _ENCODER:
            _ENCODER[REQUEST_ENCODER] = create_encoder(REQUEST_ENCODER)
        return _ENCODER[REQUEST_ENCODER]


def request_item_vectors(dataset: Dataset, cache_dir: str | Path | None = None, progress: bool = False) -> np.ndarray:
    """The catalogue's MiniLM fact vectors [n_items, 384] (unit rows), through the embedding cache."""
    from genrec.encoders.catalogue import encode_items

    return encode_items(dataset, request_encoder(), cache_dir=cache_dir, progress=progress)


def request_query(parsed: ParsedRequest) -> str:
    """The text whose vector stands for the request: what is left of it, and the genres it asks for, in the words
    of an item's facts (``"Genres: Comedy."``, genrec.encoders.items.item_text)."""
    parts = [parsed.rest] if parsed.rest else []
    if parsed.want_genres:
        parts.append(f"Genres: {', '.join(parsed.want_genres)}.")
    return " ".join(parts)


def content_scores(requests: Sequence[ParsedRequest], item_vectors: np.ndarray, encoder: Any = None) -> np.ndarray:
    """Cosine of each request's vector to every item's fact vector: [R, n_items]; a row of zeros for a request
    with neither text to match nor a named title (filters only). The texts go through MiniLM in one batch."""
    queries = [request_query(parsed) for parsed in requests]
    texts = [query for query in queries if query]
    encoded = iter((encoder or request_encoder()).encode_texts(texts).numpy() if texts else [])
    out = np.zeros((len(requests), len(item_vectors)), dtype=np.float32)
    for row, (parsed, query) in enumerate(zip(requests, queries, strict=True)):
        parts = [*item_vectors[list(parsed.named_items)], *([next(encoded)] if query else [])]  # [P, D]
        if parts:
            vector = np.mean(parts, axis=0)  # [D]
            out[row] = item_vectors @ (vector / max(float(np.linalg.norm(vector)), 1e-12))
    return out


def allowed_items(parsed: ParsedRequest, dataset: Dataset) -> np.ndarray:
    """Which items the request's stated constraints keep: [n_items] bool (all True when it states none)."""
    allowed = np.ones(dataset.n_items, dtype=bool)
    if parsed.avoid_genres:
        avoided = set(parsed.avoid_genres)
        allowed &= np.array([not avoided.intersection(genre_names(value)) for value in dataset.items["genres"]])
    if parsed.years is not None:
        years = pd.to_numeric(dataset.items["year"], errors="coerce").to_numpy(float)
        allowed &= (years >= parsed.years[0]) & (years <= parsed.years[1])  # NaN (no year): out
    return allowed


def with_named_items(history: Sequences, named: Sequence[Sequence[int]]) -> Sequences:
    """Each row of ``history`` with its row of ``named`` (the titles a request names) appended as its most recent
    items, in the order named; a title already in the row moves to its end: what the user asks about now is
    their latest interest."""
    if not any(len(items) for items in named):
        return history
    rows, stamps = [], []
    for row, titles in enumerate(named):
        titles = np.asarray(titles, dtype=np.int64)
        items, times = history[row], history.timestamps[history.offsets[row] : history.offsets[row + 1]]
        kept = ~np.isin(items, titles)
        latest = int(times[-1]) if len(times) else 0
        rows.append(np.concatenate([items[kept], titles]))
        stamps.append(np.concatenate([times[kept], latest + 1 + np.arange(len(titles))]))
    return Sequences.from_lists(rows, stamps)


def fuse_scores(
    sequence: torch.Tensor | None, content: torch.Tensor, weight: float, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """The module docstring's formula: ``standardised(sequence) + weight * standardised(content)``, -inf where
    not ``allowed``. sequence [B, N] (None with ``weight`` inf: the request alone), content [B or 1, N], allowed
    bool [B or 1, N]."""
    if not weight >= 0:
        raise ValueError(f"weight: expected a number >= 0 (inf: the request alone), got {weight}")
    if math.isinf(weight):
        fused = content.float()
    else:
        fused = standardised(_finite(sequence.float()))  # [B, N]
        if weight > 0:
            fused = fused + weight * standardised(content.float())
    return fused if allowed is None else fused.masked_fill(~allowed, float("-inf"))


@torch.inference_mode()
def rank_with_request(
    model: Any,
    dataset: Dataset,
    users: list[Any] | None,
    parsed: ParsedRequest | None,
    k: int,
    weight: float = DEFAULT_REQUEST_WEIGHT,
    item_vectors: np.ndarray | None = None,
    encoder: Any = None,
) -> pd.DataFrame:
    """Top-``k`` for raw user ids (all when None) conditioned on ``parsed``: the table of
    :func:`genrec.pipelines.stages.top_k_table` (user_id, rank, item_id, item_idx, score, title).

    Seen items and the titles the request names are excluded. ``item_vectors``: the catalogue's
    MiniLM vectors (:func:`request_item_vectors`; computed, through the default embedding cache, when
    None). A None or empty request ranks as the model alone.
    """
    if parsed is None or parsed.empty:
        return rank(model, dataset, users=users, k=k)
    if item_vectors is None:
        item_vectors = request_item_vectors(dataset)
    if len(item_vectors) != dataset.n_items:
        raise ValueError(f"item_vectors has {len(item_vectors)} rows; {dataset.name} has {dataset.n_items} items")
    user_idx, history = rankable_histories(dataset, users)
    history = with_named_items(history, [parsed.named_items] * len(history))
    content = torch.from_numpy(content_scores([parsed], item_vectors, encoder))  # [1, N]: the same for every user
    allowed = torch.from_numpy(allowed_items(parsed, dataset))[None]  # [1, N]
    batch = model.config.eval_batch_size
    indices, scores = [], []
    for start in range(0, len(history), batch):
        rows = history.rows(np.arange(start, min(start + batch, len(history))))
        sequence = None if math.isinf(weight) else model.score(rows).cpu()  # [B, N]
        fused = fuse_scores(sequence, content, weight, allowed).expand(len(rows), -1).clone()
        top_index, top_scores = top_k(exclude_seen(fused, rows), k)
        indices.append(top_index.numpy())
        scores.append(top_scores.numpy())
    return recommendations_table(dataset, user_idx, np.concatenate(indices), np.concatenate(scores))


def _finite(scores: torch.Tensor) -> torch.Tensor:
    """``scores`` [B, N] with each row's non-finite entries (an item a beam search never reached) set to the row's
    lowest finite score: last among the model's scores, and standardisable."""
    finite = torch.isfinite(scores)
    if finite.all():
        return scores
    lowest = torch.where(finite, scores, torch.inf).min(dim=1, keepdim=True).values  # [B, 1]
    return torch.where(finite, scores, lowest.nan_to_num(posinf=0.0))
