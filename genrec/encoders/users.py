"""User-history encoders and preference profiles, in the item embedding space.

A user vector is a weighted mean of the item vectors of their history, L2-normalised:

    u = normalise(sum_i w_i e_i / sum_i w_i)

with ``w_i = 1`` (mean), ``w_i = 0.5 ** (age_i / half_life)`` (recency; age in positions from
the latest item, or in days before it) or ``w_i = rating_i`` (rating). A preference profile
names the genres, tags and (for CLIP encoders) visual attributes closest to the user vector.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import Field

from genrec.config import StrictModel
from genrec.data.sequences import Sequences

if TYPE_CHECKING:
    from genrec.data import Dataset
    from genrec.encoders.base import Encoder

SECONDS_PER_DAY = 86_400

# Phrases a poster or product image can be described by; scored with the CLIP text tower.
VISUAL_ATTRIBUTES = (
    "dark, moody lighting",
    "bright, saturated colours",
    "soft pastel colours",
    "black and white",
    "high contrast",
    "warm golden tones",
    "cold blue tones",
    "neon lights",
    "a minimalist composition",
    "a vintage, retro look",
    "a hand-drawn illustration",
    "cartoon animation",
    "a photorealistic scene",
    "a close-up portrait",
    "a group of people",
    "a wide landscape",
    "a city at night",
    "outer space and stars",
    "explosions and action",
    "a romantic couple",
    "a spooky, eerie atmosphere",
    "whimsical fantasy",
    "futuristic technology",
    "a cosy domestic scene",
    "animals and nature",
    "the ocean and water",
    "snow and winter",
    "a desert",
    "a dramatic sky",
    "bold typography",
    "a film noir style",
    "an epic, grand scale",
)
VISUAL_TEMPLATE = "an image with {}."

HistoryMethod = Literal["mean", "recency", "rating"]


class HistoryConfig(StrictModel):
    """How a history is pooled into one user vector."""

    method: HistoryMethod = Field("recency", description="mean, recency-weighted or rating-weighted pooling")
    half_life: float = Field(10.0, gt=0, description="recency: weight halves every half_life items (or days)")
    half_life_unit: Literal["items", "days"] = Field("items", description="recency by position or by timestamp")


@dataclass
class UserEmbeddings:
    """User vectors; row ``i`` belongs to ``user_ids[i]`` (``user_idx[i]``)."""

    user_idx: np.ndarray  # [U] int64
    user_ids: np.ndarray  # [U] raw ids
    embeddings: np.ndarray  # [U, D] float32, unit rows (zero for an empty history)
    config: HistoryConfig

    def __len__(self) -> int:
        return len(self.user_idx)


@dataclass
class PreferenceProfile:
    """What a user's vector is closest to, best first, each with its cosine score."""

    user_id: Any
    genres: list[tuple[str, float]] = field(default_factory=list)
    tags: list[tuple[str, float]] = field(default_factory=list)
    visual: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def encode_histories(
    dataset: Dataset,
    item_embeddings: np.ndarray,
    users: list | np.ndarray | None = None,
    method: HistoryMethod = "recency",
    half_life: float = 10.0,
    half_life_unit: Literal["items", "days"] = "items",
    history: Sequences | None = None,
) -> UserEmbeddings:
    """Pool each user's history of item vectors into one unit vector in the same space.

    Args:
        item_embeddings: [n_items, D], row = ``item_idx`` (e.g. from ``encode_items``).
        users: raw user ids; default every user.
        method: ``"mean"``, ``"recency"`` (exponential decay, see ``half_life``) or ``"rating"``.
        history: per-``user_idx`` sequences to pool, e.g. ``split.train`` so that evaluation
            targets never leak into the user vector; default the full interaction log.

    Raises:
        ValueError: wrong embedding shape, or ``method="rating"`` on histories without ratings.
    """
    config = HistoryConfig.from_dict(
        {"method": method, "half_life": half_life, "half_life_unit": half_life_unit}, source="encode_histories"
    )
    if item_embeddings.ndim != 2 or item_embeddings.shape[0] != dataset.n_items:
        raise ValueError(
            f"{dataset.name}: item_embeddings has shape {item_embeddings.shape}, expected [{dataset.n_items}, D] "
            "(one row per item_idx of this data set)"
        )
    if history is None:
        history = dataset.histories()
    user_idx = np.arange(dataset.n_users) if users is None else dataset.user_index(list(users))
    rows = history.rows(user_idx)
    weights = history_weights(rows, config, [str(user) for user in dataset.user_ids[user_idx]])  # [nnz]

    # u = W @ E with W a sparse [U, n_items] matrix of history weights: no [nnz, D] intermediate.
    indices = torch.from_numpy(np.stack([rows.row_ids(), rows.items]))  # [2, nnz]
    shape = (len(rows), dataset.n_items)
    matrix = torch.sparse_coo_tensor(indices, torch.from_numpy(weights), shape, check_invariants=True)
    pooled = torch.sparse.mm(matrix, torch.from_numpy(np.asarray(item_embeddings, dtype=np.float32)))  # [U, D]
    embeddings = torch.nn.functional.normalize(pooled, dim=-1).numpy()  # a zero row stays zero
    return UserEmbeddings(user_idx, dataset.user_ids[user_idx], embeddings, config)


def history_weights(rows: Sequences, config: HistoryConfig, labels: list[str]) -> np.ndarray:
    """Pooling weight of every history element: [nnz] float32 (``labels`` name the rows in errors)."""
    if config.method == "mean":
        return np.ones(len(rows.items), dtype=np.float32)
    if config.method == "rating":
        ratings = rows.ratings
        if ratings is None or np.isnan(ratings).any():
            row = 0 if ratings is None else int(rows.row_ids()[np.isnan(ratings)][0])
            raise ValueError(
                f"user {labels[row]}: method='rating' needs a rating on every interaction; "
                "use 'mean' or 'recency' for implicit feedback"
            )
        if (ratings < 0).any():
            row = int(rows.row_ids()[ratings < 0][0])
            raise ValueError(f"user {labels[row]}: method='rating' needs ratings >= 0 to use them as weights")
        return ratings.astype(np.float32)
    row_ids = rows.row_ids()  # [nnz]
    last = rows.offsets[1:][row_ids] - 1  # flat index of each row's latest element
    if config.half_life_unit == "items":
        age = (last - np.arange(len(rows.items))).astype(np.float64)  # 0 for the latest item
    else:
        age = (rows.timestamps[last] - rows.timestamps) / SECONDS_PER_DAY
    return np.power(0.5, age / config.half_life).astype(np.float32)


def preference_profile(
    dataset: Dataset,
    users: UserEmbeddings,
    item_embeddings: np.ndarray,
    encoder: Encoder | None = None,
    top_k: int = 5,
    vocabulary: tuple[str, ...] | list[str] = VISUAL_ATTRIBUTES,
    min_tag_items: int = 2,
) -> list[PreferenceProfile]:
    """The genres, tags and visual attributes that best match each user vector.

    A genre or tag is represented by the centroid of its items' vectors; visual attributes
    (only with a CLIP ``encoder``, the one that made ``item_embeddings``) by the text tower's
    embedding of ``"an image with <attribute>."``. Scores are cosines after subtracting the
    catalogue mean (and the vocabulary mean), so attributes every item shares do not top every
    profile. Tags on fewer than ``min_tag_items`` items are skipped as noise.
    """
    item_embeddings = np.asarray(item_embeddings, dtype=np.float32)
    mean = item_embeddings.mean(axis=0)  # [D]
    centred_users = _unit(users.embeddings - mean)  # [U, D]
    scored = {}
    for column, min_items in (("genres", 1), ("tags", min_tag_items)):
        names, centroids = _attribute_centroids(dataset.items[column].tolist(), item_embeddings, min_items)
        scored[column] = (names, centred_users @ _unit(centroids - mean).T)  # [U, A]
    if encoder is not None and encoder.supports_images and len(vocabulary):
        if encoder.dim != item_embeddings.shape[1]:
            raise ValueError(
                f"encoder {encoder.name!r} has width {encoder.dim} but item_embeddings {item_embeddings.shape[1]}; "
                "pass the encoder that produced them"
            )
        texts = encoder.encode_texts([VISUAL_TEMPLATE.format(phrase) for phrase in vocabulary]).numpy()  # [V, D]
        scored["visual"] = (list(vocabulary), centred_users @ _unit(texts - texts.mean(axis=0)).T)  # [U, V]

    profiles = [PreferenceProfile(user_id=user_id) for user_id in users.user_ids.tolist()]
    for column, (names, scores) in scored.items():
        if not names:
            continue
        best = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]  # [U, k]; ties keep vocabulary order
        for row, profile in enumerate(profiles):
            setattr(profile, column, [(names[a], round(float(scores[row, a]), 4)) for a in best[row]])
    return profiles


def _attribute_centroids(values: list, item_embeddings: np.ndarray, min_items: int) -> tuple[list[str], np.ndarray]:
    """Distinct attribute names (sorted) and the mean vector of the items carrying each: [A, D]."""
    members: dict[str, list[int]] = {}
    for item, attributes in enumerate(values):
        for name in dict.fromkeys(attributes):  # an attribute listed twice on one item counts once
            members.setdefault(name, []).append(item)
    names = sorted(name for name, items in members.items() if len(items) >= min_items)
    centroids = np.zeros((len(names), item_embeddings.shape[1]), dtype=np.float32)
    for row, name in enumerate(names):
        centroids[row] = item_embeddings[members[name]].mean(axis=0)
    return names, centroids


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
