"""Generate personalised, grounded descriptions for recommendations; a plain function, no Prefect.

``descriptions.parquet`` is written atomically; each row carries a key of everything that made
it (generator identity, item metadata, profile), so a rerun reuses the rows whose key still
matches and generates only the rest: a killed or edited run resumes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from genrec.data import Dataset
from genrec.encoders.base import batches
from genrec.generators.grounding import DescriptionCheck, GroundingChecker, GroundingConfig, GroundingReport
from genrec.generators.text_base import DescriptionRequest, ItemFacts, TextGenerator, UserProfile
from genrec.io import atomic_path, write_json

DESCRIPTIONS_TABLE = "descriptions.parquet"
DESCRIPTIONS_REPORT = "descriptions_report.json"
LIKED_TITLES = 3  # recent history titles shown when a profile lists none
STORED = ("description", "source", "attempts", "unsupported", "blocked_terms")  # generated columns


def build_requests(
    recommendations: pd.DataFrame, profiles: Mapping[Any, Any] | None, dataset: Dataset
) -> list[DescriptionRequest]:
    """One request per recommendation row: the item's metadata and the user's profile.

    A profile without liked titles gets the user's last few history titles, so the prompt can
    say what the user watched; users absent from ``profiles`` get an empty profile.
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
        if user not in resolved:
            profile = UserProfile.coerce(profiles.get(user), user_id=user)
            if not profile.titles:
                history = dataset.sequence(int(dataset.user_index([user])[0]))[-LIKED_TITLES:]
                titles = tuple(dataset.items["title"].to_numpy()[history][::-1])  # most recent first
                profile = UserProfile(user, profile.genres, profile.tags, titles, profile.visual)
            resolved[user] = profile
        requests.append(DescriptionRequest(user, ItemFacts.from_row(item), resolved[user]))
    return requests


def request_key(generator: TextGenerator, request: DescriptionRequest) -> str:
    """A digest of everything a description depends on: generator, item metadata and profile."""
    payload = json.dumps(
        [generator.identity(), asdict(request.item), asdict(request.profile)], sort_keys=True, default=str
    )
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


def generate_descriptions(
    generator: TextGenerator,
    recommendations: pd.DataFrame,
    profiles: Mapping[Any, Any] | None,
    dataset: Dataset,
    out_dir: str | Path | None = None,
    progress: bool = True,
    checkpoint_every: int = 64,
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

    Returns:
        One row per recommendation: user_id, item_id, (rank,) title, description, source
        (template / llm / llm_retry / fallback / blocked), attempts, unsupported, blocked_terms,
        generator, key, reused. ``attrs["report"]`` holds the grounding report of this call.
    """
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    requests = build_requests(recommendations, profiles, dataset)
    keys = [request_key(generator, request) for request in requests]
    ranks = recommendations["rank"].tolist() if "rank" in recommendations else None
    table_path = None if out_dir is None else Path(out_dir) / DESCRIPTIONS_TABLE
    previous: dict[str, dict[str, Any]] = {}
    if table_path is not None and table_path.exists():
        previous = {row["key"]: row for row in pd.read_parquet(table_path).to_dict("records")}
    done = {index: _stored(previous[key]) for index, key in enumerate(keys) if key in previous}
    todo = [index for index in range(len(requests)) if index not in done]
    report, fresh = GroundingReport(), set()

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

    for chunk in batches(len(todo), checkpoint_every):
        part = todo[chunk]
        descriptions, part_report = generator.describe([requests[index] for index in part], progress=progress)
        report.merge(part_report)
        for index, description in zip(part, descriptions, strict=True):
            done[index] = _stored(asdict(description) | {"description": description.text})
            fresh.add(index)
        if table_path is not None:
            _write(table(sorted(done)), table_path)
    result = table(list(range(len(requests))))
    result.attrs["report"] = report.to_dict()
    if table_path is not None:
        _write(result, table_path)
        write_json(Path(out_dir) / DESCRIPTIONS_REPORT, {"generator": generator.identity(), **report.to_dict()})
    return result


def _stored(row: Mapping[str, Any]) -> dict[str, Any]:
    """The generated part of a row, lists as lists (parquet reads them back as arrays)."""
    return {name: list(row[name]) if name in ("unsupported", "blocked_terms") else row[name] for name in STORED}


def _write(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as temporary:
        table.drop(columns=["reused"]).to_parquet(temporary, index=False)


_CHECKERS: dict[tuple[int, str], tuple[Dataset, GroundingChecker]] = {}


def item_ratings(dataset: Dataset) -> dict[Any, float]:
    """Item id -> mean rating over the interactions that have one (what rating claims are checked against)."""
    rated = dataset.interactions.dropna(subset=["rating"])
    means = rated.groupby("item_idx")["rating"].mean()
    ids = dataset.items["item_id"].to_numpy()
    return {ids[int(index)]: float(mean) for index, mean in means.items()}


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
    dataset: Dataset, item_id: Any, text: str, config: GroundingConfig | None = None
) -> DescriptionCheck:
    """The grounding guard's verdict on ``text`` as a description of ``item_id`` in ``dataset``.

    ``passed`` is true only when the text is about the item (names its title, or is close to
    its facts under MiniLM), fluent, asserts no claim the metadata contradicts (``unsupported``)
    or cannot confirm (``unverifiable``), and the output filter found nothing (``blocked``).
    Works on text from any generator. Unknown ``item_id`` raises a KeyError naming it.
    """
    return check_descriptions(dataset, [item_id], [text], config)[0]


def check_descriptions(
    dataset: Dataset, item_ids: Sequence[Any], texts: Sequence[str], config: GroundingConfig | None = None
) -> list[DescriptionCheck]:
    """:func:`check_description` for many (item, text) pairs; the semantic check runs in one batch."""
    if len(item_ids) != len(texts):
        raise ValueError(f"{len(item_ids)} item ids but {len(texts)} texts")
    checker = description_checker(dataset, config)
    rows = dataset.items.iloc[dataset.item_index(list(item_ids))].to_dict("records")
    facts = [ItemFacts.from_row(row, checker.people_columns) for row in rows]
    return checker.check_many([str(text) for text in texts], facts)


def calibrate_guard(
    dataset: Dataset, item_ids: Sequence[Any], texts: Sequence[str], about: Sequence[bool], fluent: Sequence[bool]
) -> dict[str, float]:
    """Thresholds of the guard from labelled descriptions: ``about_threshold`` and ``fluency_threshold``.

    ``about[i]``: text i is about its item; ``fluent[i]``: it is readable text. The semantic
    threshold is fitted on the fluent texts that do not name their title (only those reach the
    similarity); the fluency threshold on every text. Each is the cut with the best balanced
    accuracy (:func:`genrec.evaluation.text_metrics.calibrate_threshold`). Fit them on a
    calibration split, never on the descriptions you report figures for.
    """
    from genrec.evaluation.text_metrics import calibrate_threshold

    checker = description_checker(dataset)
    rows = dataset.items.iloc[dataset.item_index(list(item_ids))].to_dict("records")
    facts = [ItemFacts.from_row(row, checker.people_columns) for row in rows]
    unnamed = [
        i
        for i, (text, item) in enumerate(zip(texts, facts, strict=True))
        if fluent[i] and not checker.names_title(text, item)
    ]
    similarities = checker.similarities([texts[i] for i in unnamed], [facts[i] for i in unnamed])
    shares = [checker.known_word_share(text)[0] for text in texts]
    return {
        "about_threshold": calibrate_threshold(similarities, [about[i] for i in unnamed]),
        "fluency_threshold": calibrate_threshold(shares, fluent),
    }
