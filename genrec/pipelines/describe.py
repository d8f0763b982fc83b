"""Generate personalised, grounded descriptions for recommendations, and check any description; no Prefect.

``descriptions.parquet`` is written atomically; each row carries a key of everything that made
it (generator identity, item metadata, profile), so a rerun reuses the rows whose key still
matches and generates only the rest: a killed or edited run resumes. The grounding report
(``descriptions_report.json``) is rebuilt from the whole table, reused rows included, and keeps
every blocked output of earlier runs: reports accumulate across resumed runs. The
non-personalised baseline (``personalize=False``) goes to ``descriptions_baseline.parquet``. With the
run's request (:class:`~genrec.requests.ParsedRequest`, read back from ``request.json`` by
:func:`genrec.requests.parsed_request`), each description also says how its item answers it, and the
guard checks those sentences against it.

:func:`check_description` runs the grounding guard on text from any generator.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genrec.data import Dataset
from genrec.encoders.base import batches
from genrec.generators.text_base import DescriptionRequest, TextGenerator
from genrec.grounding.facts import ItemFacts, UserProfile, profile_from_history
from genrec.grounding.guard import (
    DescriptionCheck,
    GroundingChecker,
    GroundingConfig,
    GroundingReport,
    encoder_similarity,
    item_ratings,
    measured_precision,
)
from genrec.io import atomic_path, read_json, write_json
from genrec.requests import ParsedRequest
from genrec.run_directory import RunDirectory

LLM_SOURCES = ("llm", "llm_retry", "fallback")
HISTORY_TITLES = 10  # most recent titles in a user's history text
LIKED_TITLES = 3  # recent history titles shown when a profile lists none
STORED = ("description", "source", "attempts", "unsupported", "blocked_terms")  # generated columns


def build_requests(
    recommendations: pd.DataFrame,
    profiles: Mapping[Any, Any] | None,
    dataset: Dataset,
    personalize: bool = True,
    request: ParsedRequest | None = None,
) -> list[DescriptionRequest]:
    """One request per recommendation row: the item's metadata, the user's profile and the run's ``request``.

    A profile without liked titles gets the user's last few history titles, so the prompt can
    say what the user watched; users absent from ``profiles`` get an empty profile. With
    ``personalize=False`` every request has an empty profile (no genres, tags or titles): the
    non-personalised baseline of the same (user, item).
    """
    missing = {"user_id", "item_id"} - set(recommendations.columns)
    if missing:
        raise ValueError(f"recommendations lack column(s) {sorted(missing)}; expected user_id and item_id")
    items = dataset.items.iloc[dataset.item_index(recommendations["item_id"].tolist())].to_dict("records")
    profiles = profiles or {}
    resolved: dict[Any, UserProfile] = {}
    requests = []
    for row, item in zip(recommendations.to_dict("records"), items, strict=True):
        user = row["user_id"]
        if user not in resolved and not personalize:
            resolved[user] = UserProfile(user_id=user)
        if user not in resolved:
            profile = UserProfile.coerce(profiles.get(user), user_id=user)
            if not profile.titles:
                history = dataset.sequence(int(dataset.user_index([user])[0]))[-LIKED_TITLES:]
                titles = tuple(dataset.items["title"].to_numpy()[history][::-1])  # most recent first
                profile = UserProfile(user, profile.genres, profile.tags, titles, profile.visual)
            resolved[user] = profile
        requests.append(DescriptionRequest(user, ItemFacts.from_row(item), resolved[user], request))
    return requests


def request_key(generator: TextGenerator, request: DescriptionRequest) -> str:
    """A digest of everything a description depends on: generator, item metadata, profile (and the run's request)."""
    parts = [generator.identity(), asdict(request.item), asdict(request.profile)]
    if request.user_request is not None:  # without one, the key of a run before requests existed
        parts.append(asdict(request.user_request))
    payload = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


def generate_descriptions(
    generator: TextGenerator,
    recommendations: pd.DataFrame,
    profiles: Mapping[Any, Any] | None,
    dataset: Dataset,
    out_dir: str | Path | None = None,
    progress: bool = True,
    checkpoint_every: int = 64,
    personalize: bool = True,
    request: ParsedRequest | None = None,
) -> pd.DataFrame:
    """A description per (user, recommended item), written for the user and grounded in the item's metadata.

    Args:
        generator: from :func:`genrec.generators.create_text_generator` (``template``, ``tiny``, ...).
        recommendations: rows with ``user_id`` and ``item_id`` (e.g. :func:`genrec.pipelines.rank`).
        profiles: user id -> preference profile (the encoders' profile, a :class:`UserProfile` or a
            mapping with ``genres``/``tags``/``titles``); absent users get an empty profile.
        out_dir: where ``descriptions.parquet`` and ``descriptions_report.json`` go (atomic writes;
            rows whose inputs are unchanged are reused). None keeps everything in memory.
        checkpoint_every: descriptions generated between two writes of the table, so a killed
            run loses at most this many.
        personalize: False writes the non-personalised baseline (empty profiles) to
            ``descriptions_baseline.parquet`` and its report beside it.
        request: the run's request; each description then also says how its item answers it.

    Returns:
        One row per recommendation: user_id, item_id, (rank,) title, description, source
        (template / llm / llm_retry / fallback / blocked), attempts, unsupported (the rejection
        reasons of every failed attempt), blocked_terms, generator, key, reused.
        ``attrs["report"]`` holds the grounding report of the whole table (:func:`description_report`),
        reused rows and earlier blocked outputs included.
    """
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    requests = build_requests(recommendations, profiles, dataset, personalize, request)
    keys = [request_key(generator, request) for request in requests]
    ranks = recommendations["rank"].tolist() if "rank" in recommendations else None
    table_name, report_name = (
        (RunDirectory.DESCRIPTIONS, RunDirectory.DESCRIPTIONS_REPORT)
        if personalize
        else (RunDirectory.BASELINE_DESCRIPTIONS, RunDirectory.BASELINE_DESCRIPTIONS_REPORT)
    )
    table_path = None if out_dir is None else Path(out_dir) / table_name
    report_path = None if out_dir is None else Path(out_dir) / report_name
    previous: dict[str, dict[str, Any]] = {}
    if table_path is not None and table_path.exists():
        previous = {row["key"]: row for row in pd.read_parquet(table_path).to_dict("records")}
    blocked = GroundingReport()  # the audit trail: earlier runs' blocked outputs, then this run's
    if report_path is not None and report_path.exists():
        blocked.blocked_outputs = list(read_json(report_path).get("blocked_outputs", []))
    done = {index: _stored(previous[key]) for index, key in enumerate(keys) if key in previous}
    todo = [index for index in range(len(requests)) if index not in done]
    fresh: set[int] = set()

    def table(indices: list[int]) -> pd.DataFrame:
        rows = [
            {
                "user_id": requests[index].user_id,
                "item_id": requests[index].item.item_id,
                **({"rank": int(ranks[index])} if ranks is not None else {}),
                "title": requests[index].item.title,
                **done[index],
                "generator": generator.name,
                "key": keys[index],
                "reused": index not in fresh,
            }
            for index in indices
        ]
        columns = ["user_id", "item_id", *(["rank"] if ranks is not None else []), "title", *STORED, "generator"]
        return pd.DataFrame.from_records(rows, columns=[*columns, "key", "reused"])

    def save(current: pd.DataFrame) -> dict[str, Any]:
        report = description_report(current, blocked.blocked_outputs)
        payload = {"generator": generator.identity(), "personalized": personalize, **report.to_dict()}
        if table_path is not None:
            _write(current, table_path)
            write_json(report_path, payload)
        return payload

    for chunk in batches(len(todo), checkpoint_every):
        part = todo[chunk]
        descriptions, part_report = generator.describe([requests[index] for index in part], progress=progress)
        blocked.merge(GroundingReport(blocked_outputs=part_report.blocked_outputs))
        for index, description in zip(part, descriptions, strict=True):
            done[index] = _stored(asdict(description) | {"description": description.text})
            fresh.add(index)
        if table_path is not None:
            save(table(sorted(done)))
    result = table(list(range(len(requests))))
    result.attrs["report"] = save(result)
    return result


def description_report(table: pd.DataFrame, blocked_outputs: Sequence[Mapping[str, Any]] = ()) -> GroundingReport:
    """The grounding report of a descriptions table (every row, reused ones too) plus the blocked-output trail.

    Counts come from each row's ``source``, ``attempts`` and ``unsupported`` (rejection reasons),
    so a resumed run reports the same figures as an uninterrupted one; ``reused`` counts the rows
    an earlier run made. ``blocked_outputs`` (earlier runs' and this one's) are kept, deduplicated.
    """
    report = GroundingReport(descriptions=len(table))
    if len(table):
        sources = table["source"].to_numpy()
        llm = np.isin(sources, LLM_SOURCES) | ((sources == "blocked") & (table["generator"].to_numpy() != "template"))
        report.template = int((sources == "template").sum())
        report.llm_first_try = int((sources == "llm").sum())
        report.regenerated = int((sources == "llm_retry").sum())
        report.fallback = int((sources == "fallback").sum())
        report.blocked = int((sources == "blocked").sum())
        report.llm_attempts = int(table["attempts"].to_numpy()[llm].sum())
        report.rejected_attempts = report.llm_attempts - report.llm_first_try - report.regenerated
        report.reused = int(table["reused"].sum()) if "reused" in table else 0
        for reasons in table["unsupported"]:
            report.count_reasons(list(reasons))
    report.merge(GroundingReport(blocked_outputs=list(blocked_outputs)))
    return report


def history_texts(dataset: Dataset, users: Sequence[Any], profiles: Mapping[Any, Any] | None = None) -> list[str]:
    """Each user's history as text (recent titles, favourite genres and tags): what personalisation is measured against.

    Titles are the user's ``HISTORY_TITLES`` most recent items; genres and tags come from the
    profile when it has them, else from those items' metadata.
    """
    profiles = profiles or {}
    texts = []
    for user in users:
        history = dataset.sequence(int(dataset.user_index([user])[0]))[-HISTORY_TITLES:][::-1]
        rows = dataset.items.iloc[history]
        profile = UserProfile.coerce(profiles.get(user), user_id=user)
        genres = profile.genres or tuple(dict.fromkeys(g for gs in rows["genres"] for g in gs if g))
        tags = profile.tags or tuple(dict.fromkeys(t for ts in rows["tags"] for t in ts if t))
        parts = ["; ".join(ItemFacts.from_row(row).display_title for row in rows.to_dict("records"))]
        parts += [", ".join(genres[:8]), ", ".join(tags[:8])]
        texts.append(". ".join(part for part in parts if part))
    return texts


def _stored(row: Mapping[str, Any]) -> dict[str, Any]:
    """The generated part of a row, lists as lists (parquet reads them back as arrays)."""
    return {name: list(row[name]) if name in ("unsupported", "blocked_terms") else row[name] for name in STORED}


def _write(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as temporary:
        table.drop(columns=["reused"]).to_parquet(temporary, index=False)


_CHECKERS: dict[tuple[int, str], tuple[Dataset, GroundingChecker]] = {}


def description_checker(dataset: Dataset, config: GroundingConfig | None = None) -> GroundingChecker:
    """The grounding guard for ``dataset`` (its vocabularies and mean ratings), built once per data set and config."""
    config = config or GroundingConfig()
    key = (id(dataset), config.model_dump_json())
    cached = _CHECKERS.get(key)
    if cached is None or cached[0] is not dataset:
        cached = (dataset, GroundingChecker(dataset.items, config, ratings=item_ratings(dataset)))
        _CHECKERS.clear()  # one data set at a time: a checker holds the catalogue's vocabularies
        _CHECKERS[key] = cached
    return cached[1]


def check_description(
    dataset: Dataset,
    item_id: Any,
    text: str,
    config: GroundingConfig | None = None,
    profile: UserProfile | Mapping[str, Any] | Sequence[str] | None = None,
    user_id: Any = None,
    request: ParsedRequest | None = None,
) -> DescriptionCheck:
    """The grounding guard's verdict on ``text`` as a description of ``item_id`` in ``dataset``.

    ``passed`` is true only when the text is about the item, readable and complete, every
    sentence is opinion or stated by the facts, it asserts no claim the metadata contradicts
    (``unsupported``) or cannot confirm (``unverifiable``), and the output filter found nothing
    (``blocked``); see :mod:`genrec.grounding.guard`. Works on text from any generator.

    A personalised text may name what the user liked ("since you liked Heat"): pass the user's
    ``profile`` as the generator saw it (a :class:`UserProfile`, a mapping with
    ``genres``/``tags``/``titles``, or just the list of liked titles), or ``user_id`` to take
    the user's profile from their history (:func:`~genrec.grounding.facts.profile_from_history`,
    every liked title). Without either, a liked title is another film's title: unsupported.
    A text that answers the reader's ``request`` ("like Alien", "as you asked") is checked against
    it; without one, such a sentence is unsupported. Unknown ids raise a KeyError naming them.
    """
    profiles = None if profile is None and user_id is None else [profile]
    users = None if user_id is None else [user_id]
    return check_descriptions(dataset, [item_id], [text], config, profiles, users, request)[0]


def check_descriptions(
    dataset: Dataset,
    item_ids: Sequence[Any],
    texts: Sequence[str],
    config: GroundingConfig | None = None,
    profiles: Sequence[UserProfile | Mapping[str, Any] | Sequence[str] | None] | None = None,
    user_ids: Sequence[Any] | None = None,
    request: ParsedRequest | None = None,
) -> list[DescriptionCheck]:
    """:func:`check_description` for many (item, text) pairs, one ``request`` for all (a run's); a row's profile
    wins over its user id."""
    for name, values in (("profiles", profiles), ("user_ids", user_ids)):
        if values is not None and len(values) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(values)} {name}: expected one per text")
    if len(item_ids) != len(texts):
        raise ValueError(f"{len(item_ids)} item ids but {len(texts)} texts")
    checker = description_checker(dataset, config)
    rows = dataset.items.iloc[dataset.item_index(list(item_ids))].to_dict("records")
    facts = [ItemFacts.from_row(row, checker.people_columns) for row in rows]
    resolved: list[UserProfile | None] = []
    for index in range(len(texts)):
        profile = None if profiles is None else profiles[index]
        user = None if user_ids is None else user_ids[index]
        if profile is None and user is not None:
            profile = profile_from_history(dataset, user, max_titles=None)
        resolved.append(None if profile is None else UserProfile.coerce(profile, user_id=user))
    return checker.check_many([str(text) for text in texts], facts, resolved, requests=[request] * len(texts))


def calibrate_guard(
    dataset: Dataset,
    item_ids: Sequence[Any],
    texts: Sequence[str],
    faithful: Sequence[bool],
    profiles: Sequence[UserProfile | Mapping[str, Any] | Sequence[str] | None] | None = None,
    min_precision: float = 0.95,
    max_unstated: Sequence[int] = (0, 1, 2, 3),
    support_thresholds: Sequence[float | None] = (None, *np.round(np.arange(0.3, 0.85, 0.05), 2).tolist()),
) -> dict[str, Any]:
    """The guard's sentence-support settings fitted on hand-labelled real output (docs/descriptions.md).

    ``faithful[i]``: text i is true and about its item. Every pair of ``max_unstated`` (content
    words a sentence may hold that no fact states) and ``support_threshold`` (None: never
    excuse them; a cosine: excuse a sentence this close to a fact sentence under MiniLM) is
    scored; the pair with the most faithful texts accepted among those whose accepted texts
    are at least ``min_precision`` faithful wins, ties going to the stricter pair (fewer
    unstated words, no similarity). Returns the pair with its ``precision``, ``faithful_recall``,
    ``accepted`` and every scored pair under ``grid``. Fit it on a calibration part, never on
    the texts you report figures for.
    """
    from genrec.evaluation.text_metrics import guard_precision_recall

    similarity = encoder_similarity(GroundingConfig().support_encoder)
    cache: dict[tuple[str, str], float] = {}

    def cached(sentences: Sequence[str], facts: Sequence[str]) -> np.ndarray:
        # Every pair of settings asks for the same sentence-fact cosines: compute each once.
        missing = sorted({pair for pair in zip(sentences, facts, strict=True)} - cache.keys())
        if missing:
            scores = similarity([a for a, _ in missing], [b for _, b in missing])
            cache.update(zip(missing, (float(score) for score in scores), strict=True))
        return np.array([cache[pair] for pair in zip(sentences, facts, strict=True)])

    rows = dataset.items.iloc[dataset.item_index(list(item_ids))].to_dict("records")
    resolved = [None if p is None else UserProfile.coerce(p) for p in (profiles or [None] * len(texts))]
    ratings, grid = item_ratings(dataset), []
    for unstated in max_unstated:
        for threshold in support_thresholds:
            config = GroundingConfig(max_unstated=unstated, support_threshold=threshold)
            checker = GroundingChecker(dataset.items, config, ratings=ratings, similarity=cached)
            facts = [ItemFacts.from_row(row, checker.people_columns) for row in rows]
            passed = [check.passed for check in checker.check_many(list(texts), facts, resolved)]
            figures = guard_precision_recall(passed, faithful)
            grid.append(
                {
                    "max_unstated": unstated,
                    "support_threshold": threshold,
                    "precision": figures["acceptance_precision"],
                    "faithful_recall": figures["acceptance_recall"],
                    "accepted": int(sum(passed)),
                }
            )
    # A setting that accepts nothing is precise by default (it shows only the template): eligible, recall 0.
    eligible = [row for row in grid if not row["accepted"] or row["precision"] >= min_precision]
    if not eligible:
        raise ValueError(f"no setting reaches precision {min_precision} on these {len(texts)} labelled texts")
    best = max(eligible, key=lambda row: row["faithful_recall"])
    return {**best, "grid": grid}


def description_figures(
    descriptions: pd.DataFrame,
    baseline: pd.DataFrame,
    report: Mapping[str, Any],
    baseline_report: Mapping[str, Any],
    profiles: Mapping[Any, Any] | None,
    dataset: Dataset,
    personalization_encoder: Any = "minilm",
    request: ParsedRequest | None = None,
) -> dict[str, Any]:
    """metrics.json's ``descriptions``, ``grounding_report`` and ``baseline_grounding_report`` of a
    personalised table and its baseline (as :func:`generate_descriptions` returns or writes them,
    with their reports, for the run's ``request``), measured with ``personalization_encoder`` (an
    encoder preset or object; None skips the personalisation lift). NaN figures are written as None."""
    from genrec.evaluation.text_metrics import description_metrics

    requests = build_requests(descriptions, profiles, dataset)
    users = [request.user_id for request in requests]
    encoder = personalization_encoder
    if isinstance(encoder, str):
        from genrec.encoders import create_encoder

        encoder = create_encoder(encoder)
    figures = description_metrics(
        descriptions["description"].tolist(),
        [request.item for request in requests],
        [request.profile for request in requests],
        description_checker(dataset),  # default checks for every generator, so runs compare
        baseline_texts=baseline["description"].tolist(),
        history_texts=history_texts(dataset, users, profiles) if encoder is not None else None,
        encoder=encoder,
        request=request,
    )
    figures["final_pass_rate"] = figures["guard_pass_rate"]
    figures["llm_pass_rate"] = report["rates"]["llm_pass_rate"]  # None when no language model wrote any
    figures["template_share"] = report["rates"]["template_share"]
    # What "accepted" is worth, with where the figure comes from and how many texts it rests on.
    measured = measured_precision()
    figures["guard_precision"] = None if measured is None else measured["guard_precision"]
    figures["guard_precision_provenance"] = (
        "not measured"
        if measured is None
        else f"{measured['provenance']}; {measured['accepted']} of {measured['texts']} texts accepted, "
        f"{measured['faithful']} faithful"
    )
    return {
        "descriptions": {name: _json_number(value) for name, value in figures.items()},
        "grounding_report": dict(report),
        "baseline_grounding_report": {k: v for k, v in baseline_report.items() if k != "blocked_outputs"},
    }


def _json_number(value: Any) -> Any:
    """NaN is not JSON: None."""
    return None if isinstance(value, float) and np.isnan(value) else value
