"""Description metrics: guard pass rate, grounding rate, preference coverage, distinct-n, cross-user
diversity and the text personalisation lift against a non-personalised baseline.

Each is a plain function over texts and the inputs they were written from; the image metrics
live in :mod:`genrec.evaluation.image_metrics` (the personalisation lift is the same measure as the
images', :func:`genrec.evaluation.image_metrics.personalization_score`, on text embeddings).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from genrec.evaluation.image_metrics import cross_user_diversity, personalization_score
from genrec.grounding.facts import ItemFacts, UserProfile
from genrec.grounding.guard import GroundingChecker

if TYPE_CHECKING:
    from genrec.requests import ParsedRequest

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (``\\w+``): the unit of distinct-n and lexical diversity."""
    return _WORD.findall(text.lower())


def grounding_rate(
    texts: Sequence[str],
    items: Sequence[ItemFacts],
    checker: GroundingChecker,
    profiles: Sequence[UserProfile | None] | None = None,
    request: ParsedRequest | None = None,
) -> float:
    """Share of descriptions with no unsupported or unverifiable claim (see :mod:`genrec.grounding.guard`).

    Only the claims: :func:`guard_pass_rate` also asks for an on-topic, fluent, unblocked text.
    Empty texts (blocked outputs) are left out; NaN when nothing is left. ``request``: the run's, which
    the texts may answer.
    """
    profiles = profiles if profiles is not None else [None] * len(texts)
    if not len(texts) == len(items) == len(profiles):
        raise ValueError(f"{len(texts)} texts, {len(items)} items and {len(profiles)} profiles: expected equal counts")
    grounded = [
        not checker.unsupported(text, item, profile, request)
        for text, item, profile in zip(texts, items, profiles, strict=True)
        if text
    ]
    return float(np.mean(grounded)) if grounded else float("nan")


def guard_pass_rate(
    texts: Sequence[str],
    items: Sequence[ItemFacts],
    checker: GroundingChecker,
    profiles: Sequence[UserProfile | None] | None = None,
    request: ParsedRequest | None = None,
) -> float:
    """Share of non-empty descriptions that pass the whole guard (:meth:`GroundingChecker.check`), answering the
    run's ``request`` where it has one; NaN without any."""
    kept = [i for i, text in enumerate(texts) if text]
    if len(texts) != len(items):
        raise ValueError(f"{len(texts)} texts but {len(items)} items: expected equal counts")
    if not kept:
        return float("nan")
    chosen = [profiles[i] for i in kept] if profiles is not None else None
    checks = checker.check_many(
        [texts[i] for i in kept], [items[i] for i in kept], chosen, requests=[request] * len(kept)
    )
    return float(np.mean([check.passed for check in checks]))


def text_personalization(
    texts: Sequence[str], baseline_texts: Sequence[str], history_texts: Sequence[str], encoder: Any
) -> dict[str, float]:
    """How much closer personalised descriptions are to their user's history text than the baseline's.

    Row i: the description of one (user, item, seed), the non-personalised description of the
    same (user, item, seed) and the user's history text (titles, genres, tags). With MiniLM (the
    ``minilm`` encoder preset): mean cosine of each to the history, ``lift`` (personalised minus
    baseline) and ``win_rate``, as :func:`~genrec.evaluation.image_metrics.personalization_score`.
    """
    if not len(texts) == len(baseline_texts) == len(history_texts):
        raise ValueError(
            f"{len(texts)} texts, {len(baseline_texts)} baseline texts and {len(history_texts)} histories: "
            "expected one of each per (user, item)"
        )
    if not len(texts):
        return personalization_score(np.zeros((0, 1)), np.zeros((0, 1)), np.zeros((0, 1)))
    vectors = encoder.encode_texts([*texts, *baseline_texts, *history_texts]).numpy()  # [3N, D]
    n = len(texts)
    return personalization_score(vectors[:n], vectors[n : 2 * n], vectors[2 * n :])


def guard_precision_recall(passed: Sequence[bool], good: Sequence[bool]) -> dict[str, float]:
    """The guard as a detector of bad descriptions, against labels (``good[i]``: text i should pass).

    ``precision``: share of rejected texts that are bad; ``recall``: share of bad texts rejected;
    ``acceptance_precision``: share of accepted texts that are good; ``acceptance_recall``: share
    of good texts accepted. NaN where a denominator is zero.
    """
    passed, good = np.asarray(passed, dtype=bool), np.asarray(good, dtype=bool)
    if passed.shape != good.shape:
        raise ValueError(f"{len(passed)} verdicts but {len(good)} labels")

    def ratio(hits: np.ndarray, total: np.ndarray) -> float:
        return float(hits.sum() / total.sum()) if total.sum() else float("nan")

    return {
        "precision": ratio(~passed & ~good, ~passed),
        "recall": ratio(~passed & ~good, ~good),
        "acceptance_precision": ratio(passed & good, passed),
        "acceptance_recall": ratio(passed & good, good),
        "n": len(good),
    }


def mentions_preference(text: str, profile: UserProfile) -> bool:
    """Whether ``text`` names at least one of the profile's genres or tags (whole words, any case)."""
    tokens = " " + " ".join(words(text)) + " "
    return any(f" {' '.join(words(value))} " in tokens for value in profile.attributes if words(value))


def preference_coverage(texts: Sequence[str], profiles: Sequence[UserProfile]) -> float:
    """Share of descriptions that mention at least one of their user's profile attributes.

    Users whose profile has no genre or tag cannot be covered and are left out; NaN when none remain.
    """
    if len(texts) != len(profiles):
        raise ValueError(f"{len(texts)} texts but {len(profiles)} profiles")
    covered = [
        mentions_preference(text, profile) for text, profile in zip(texts, profiles, strict=True) if profile.attributes
    ]
    return float(np.mean(covered)) if covered else float("nan")


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct-n (Li et al., NAACL 2016): unique n-grams / all n-grams over every text; NaN without n-grams."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    grams = [tuple(tokens[i : i + n]) for tokens in map(words, texts) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def description_diversity(texts: Sequence[str], item_ids: Sequence[Any], embeddings: np.ndarray | None = None) -> float:
    """Cross-user diversity: mean pairwise distance between the descriptions different users got for one item.

    With ``embeddings`` ([N, D], e.g. an encoder's ``encode_texts``) the distance is ``1 - cos``,
    exactly as for images (:func:`genrec.evaluation.image_metrics.cross_user_diversity`); without,
    it is the Jaccard distance of the texts' word sets, which needs no model. Items described
    for one user only contribute nothing; each item weighs equally; NaN when no item has two.
    """
    if len(texts) != len(item_ids):
        raise ValueError(f"{len(texts)} texts but {len(item_ids)} item ids")
    if embeddings is not None:
        return cross_user_diversity(embeddings, item_ids)
    groups: dict[Any, list[set[str]]] = {}
    for text, item in zip(texts, item_ids, strict=True):
        groups.setdefault(item, []).append(set(words(text)))
    per_item = []
    for sets in groups.values():
        pairs = [(a, b) for i, a in enumerate(sets) for b in sets[i + 1 :]]
        if pairs:
            per_item.append(np.mean([1.0 - len(a & b) / len(a | b) if a | b else 0.0 for a, b in pairs]))
    return float(np.mean(per_item)) if per_item else float("nan")


def description_metrics(
    texts: Sequence[str],
    items: Sequence[ItemFacts],
    profiles: Sequence[UserProfile],
    checker: GroundingChecker,
    baseline_texts: Sequence[str] | None = None,
    history_texts: Sequence[str] | None = None,
    encoder: Any = None,
    request: ParsedRequest | None = None,
) -> dict[str, float]:
    """Every description metric for one set of (user, item) descriptions, JSON-ready.

    With ``baseline_texts`` (the non-personalised descriptions of the same rows) the baseline's
    preference coverage and diversity come beside the personalised ones; with ``history_texts``
    and an ``encoder`` (MiniLM) too, the text personalisation lift (:func:`text_personalization`)
    and the embedding-based cross-user diversity. ``request``: the run's, which the texts may answer.
    """
    item_ids = [item.item_id for item in items]
    metrics = {
        "guard_pass_rate": guard_pass_rate(texts, items, checker, profiles, request),
        "grounding_rate": grounding_rate(texts, items, checker, profiles, request),
        "preference_coverage": preference_coverage(texts, profiles),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "cross_user_diversity": description_diversity(texts, item_ids),
    }
    if baseline_texts is not None:
        metrics["baseline_preference_coverage"] = preference_coverage(baseline_texts, profiles)
        metrics["baseline_cross_user_diversity"] = description_diversity(baseline_texts, item_ids)
        if history_texts is not None and encoder is not None:
            lift = text_personalization(texts, baseline_texts, history_texts, encoder)
            metrics["personalization_lift"] = lift["lift"]
            metrics["personalization_win_rate"] = lift["win_rate"]
            metrics["history_similarity"] = lift["personalized"]
            metrics["baseline_history_similarity"] = lift["baseline"]
    if encoder is not None and len(texts):
        metrics["cross_user_diversity_embedding"] = description_diversity(
            texts, item_ids, encoder.encode_texts(list(texts)).numpy()
        )
    return metrics
