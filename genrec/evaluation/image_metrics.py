"""Image generation metrics on CLIP embeddings: CLIP score, personalization score, cross-user diversity.

The metric functions take embeddings (rows of an encoder's output) and are plain numpy: embed
once, score many ways; :func:`image_metrics` embeds a generated-images table and applies them.
Text metrics live in :mod:`genrec.evaluation.text_metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from genrec.data import Dataset
    from genrec.encoders import Encoder


def clip_score(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """CLIPScore per (image, text) pair: ``100 * max(cos(image, text), 0)``, shape [N].

    Hessel et al. 2021, eq. 1 with the scale ``w = 100`` that torchmetrics and the diffusers
    evaluation guide use (the paper's ``w = 2.5`` only rescales). Rows are paired: image i with text i.
    """
    images, texts = _unit(image_embeddings), _unit(text_embeddings)  # [N, D], [N, D]
    if images.shape != texts.shape:
        raise ValueError(f"paired embeddings must have equal shapes, got {images.shape} and {texts.shape}")
    return 100.0 * np.maximum((images * texts).sum(axis=1), 0.0)  # [N]


def personalization_score(personalized: np.ndarray, baseline: np.ndarray, history: np.ndarray) -> dict[str, float]:
    """How much closer personalised images are to their user's history than the non-personalised ones.

    Row i of the three arrays is one (user, item, seed): the personalised image, the
    non-personalised image of the same item and seed, and the user's history embedding.
    Returns the mean cosine of each to the history and their difference (``lift`` > 0: the
    personalisation moved images towards the user), plus the share of pairs where it did.
    """
    personalized, baseline, history = _unit(personalized), _unit(baseline), _unit(history)  # [N, D] each
    if not personalized.shape == baseline.shape == history.shape:
        raise ValueError(
            f"rows must align: personalized {personalized.shape}, baseline {baseline.shape}, history {history.shape}"
        )
    ours = (personalized * history).sum(axis=1)  # [N]
    theirs = (baseline * history).sum(axis=1)  # [N]
    return {
        "personalized": float(ours.mean()) if len(ours) else float("nan"),
        "baseline": float(theirs.mean()) if len(theirs) else float("nan"),
        "lift": float((ours - theirs).mean()) if len(ours) else float("nan"),
        "win_rate": float((ours > theirs).mean()) if len(ours) else float("nan"),
    }


def cross_user_diversity(embeddings: np.ndarray, item_ids: Sequence[Any]) -> float:
    """Mean pairwise cosine distance ``1 - cos`` between the images different users got for the same item.

    Pairs are formed within each item (rows sharing an item id, one row per user); items seen
    by a single user contribute nothing. Each item weighs equally. NaN when no item has two rows.
    0 means every user got the same image (e.g. the non-personalised mode).
    """
    vectors = _unit(embeddings)  # [N, D]
    items = np.asarray(item_ids, dtype=object)
    if len(items) != len(vectors):
        raise ValueError(f"{len(vectors)} embeddings but {len(items)} item ids")
    per_item = []
    for item in dict.fromkeys(items.tolist()):
        group = vectors[items == item]  # [U, D]
        if len(group) < 2:
            continue
        similarity = group @ group.T  # [U, U]
        upper = np.triu_indices(len(group), k=1)
        per_item.append(float((1.0 - similarity[upper]).mean()))
    return float(np.mean(per_item)) if per_item else float("nan")


def _unit(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-d array of embeddings [N, D], got shape {matrix.shape}")
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def image_metrics(
    images: pd.DataFrame,
    encoder: Encoder,
    dataset: Dataset,
    user_embeddings: Mapping[Any, np.ndarray] | None = None,
    baseline: pd.DataFrame | None = None,
) -> dict[str, float]:
    """The image metrics of a :func:`~genrec.pipelines.images.generate_images` table, in ``encoder``'s space.

    Args:
        images: rows with user_id, item_id, seed and an ``image`` (PIL) or ``path`` column.
        encoder: a CLIP-family encoder (image and text towers).
        user_embeddings: user id -> history vector [D] in the same space (e.g. from
            :func:`~genrec.encoders.users.encode_histories` over this encoder's item vectors).
        baseline: the non-personalised table for the same (user, item, seed) rows; with
            ``user_embeddings`` it yields the personalization score.

    Returns:
        ``clip_score`` (mean), ``cross_user_diversity`` and, when possible, ``personalization_*``
        (see :func:`personalization_score`) and ``baseline_cross_user_diversity``.
    """
    from genrec.encoders.items import item_text

    vectors = _embed_images(images, encoder)  # [N, D]
    items = dataset.items.iloc[dataset.item_index(images["item_id"].tolist())].to_dict("records")
    texts = encoder.encode_texts([item_text(item) for item in items]).numpy()  # [N, D]
    metrics = {
        "clip_score": float(clip_score(vectors, texts).mean()) if len(vectors) else float("nan"),
        "cross_user_diversity": cross_user_diversity(vectors, images["item_id"].tolist()),
    }
    if baseline is not None:
        key = ["user_id", "item_id", "seed"]
        aligned = images[key].merge(baseline.reset_index(drop=True).reset_index()[[*key, "index"]], on=key, how="left")
        if aligned["index"].isna().any():
            missing = aligned.loc[aligned["index"].isna(), key].iloc[0].tolist()
            raise ValueError(f"baseline has no image for (user, item, seed) = {tuple(missing)}")
        base_vectors = _embed_images(baseline, encoder)[aligned["index"].astype(int).to_numpy()]  # [N, D]
        metrics["baseline_cross_user_diversity"] = cross_user_diversity(base_vectors, images["item_id"].tolist())
        if user_embeddings is not None:
            history = np.stack([np.asarray(user_embeddings[user], dtype=np.float64) for user in images["user_id"]])
            scores = personalization_score(vectors, base_vectors, history)
            metrics |= {f"personalization_{name}": value for name, value in scores.items()}
    return metrics


def _embed_images(table: pd.DataFrame, encoder: Encoder) -> np.ndarray:
    column = "image" if "image" in table.columns else "path"
    if column not in table.columns:
        raise ValueError("the images table needs an 'image' (PIL) or a 'path' column")
    return encoder.encode_images(table[column].tolist()).numpy()  # [N, D]
