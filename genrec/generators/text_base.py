"""What every description generator shares: the request, the result, the interface and the registry.

Generators save and load through :class:`genrec.persistence.Pretrained` (``config.json`` with the
generator's ``type`` and resolved config, plus the model's files where it has one);
:data:`TEXT_GENERATOR_TYPES` lists the implementations, the presets of
:mod:`genrec.generators.text_presets` name one of them each.

A request pairs one recommended item's metadata (:class:`ItemFacts`) with one user's preference
profile (:class:`UserProfile`); a generator returns one :class:`Description` per request and a
:class:`~genrec.generators.grounding.GroundingReport` counting what the guard did.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from genrec.config import StrictModel
from genrec.persistence import Manifest, Pretrained
from genrec.registry import Registry

# MovieLens (and many catalogues) store "Usual Suspects, The"; people write "The Usual Suspects".
_TRAILING_ARTICLE = re.compile(r"^(?P<main>.+), (?P<article>The|A|An|L'|La|Le|Les|Il|El|Los|Las|Das|Der|Die|Den|Det)$")


NO_GENRES = "(no genres listed)"  # MovieLens's placeholder, not a genre


def display_title(title: str) -> str:
    """The title as people write it: alternative titles in parentheses dropped, a trailing article moved first."""
    main = title.split(" (")[0].strip() or title.strip()
    match = _TRAILING_ARTICLE.match(main)
    if match is None:
        return main
    article = match["article"]
    return f"{article}{'' if article.endswith(chr(39)) else ' '}{match['main']}"


def _as_strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, np.ndarray | list | tuple):
        return [str(v) for v in value if v is not None and str(v).strip()]
    return [] if pd.isna(value) else [str(value)]


@dataclass(frozen=True)
class ItemFacts:
    """The metadata a description may state: the only source of truth the grounding guard accepts."""

    item_id: Any
    title: str
    year: int | None = None
    genres: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    people: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: Mapping[str, Any], people_columns: Sequence[str] = ()) -> ItemFacts:
        """From a row of ``Dataset.items``; ``people_columns`` name columns listing people (cast, director)."""
        year = row.get("year")
        return cls(
            item_id=row.get("item_id"),
            title=str(row.get("title") or ""),
            year=None if year is None or pd.isna(year) else int(year),
            genres=tuple(g for g in _as_strings(row.get("genres")) if g != NO_GENRES),
            tags=tuple(_as_strings(row.get("tags"))),
            people=tuple(person for column in people_columns for person in _as_strings(row.get(column))),
        )

    @property
    def display_title(self) -> str:
        return display_title(self.title)


@dataclass(frozen=True)
class UserProfile:
    """A user's preferences as a description may use them: favourite genres and tags, a few liked titles."""

    user_id: Any = None
    genres: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    titles: tuple[str, ...] = ()
    visual: tuple[str, ...] = ()

    @classmethod
    def coerce(cls, profile: Any, user_id: Any = None) -> UserProfile:
        """A :class:`UserProfile` from the encoders' preference profile (attributes) or a mapping with the same keys.

        Keys: ``genres``/``top_genres``, ``tags``/``top_tags``, ``titles``/``liked_titles``, ``visual``.
        """
        if isinstance(profile, UserProfile):
            return profile
        if profile is None:
            return cls(user_id=user_id)

        def get(*names: str) -> tuple[str, ...]:
            for name in names:
                value = profile.get(name) if isinstance(profile, Mapping) else getattr(profile, name, None)
                if value is not None:
                    # Profiles may carry (attribute, weight) pairs; the name is what a description uses.
                    return tuple(str(v[0]) if isinstance(v, tuple | list) else str(v) for v in value)
            return ()

        return cls(
            user_id=user_id,
            genres=get("genres", "top_genres"),
            tags=get("tags", "top_tags"),
            titles=get("titles", "liked_titles"),
            visual=get("visual", "visual_attributes"),
        )

    @property
    def attributes(self) -> tuple[str, ...]:
        """Genres and tags: what preference coverage counts."""
        return self.genres + self.tags


@dataclass(frozen=True)
class DescriptionRequest:
    user_id: Any
    item: ItemFacts
    profile: UserProfile


@dataclass
class Description:
    """One generated description and how it came to be.

    ``source`` is ``template`` (the template generator), ``llm`` (accepted on the first try),
    ``llm_retry`` (accepted after regeneration), ``fallback`` (every LLM attempt failed the
    guard; the template text replaced it) or ``blocked`` (even the template text hit the blocklist;
    ``text`` is empty and the attempt is recorded in the report).
    """

    text: str
    source: str
    attempts: int = 1
    unsupported: list[str] = field(default_factory=list)  # "kind:claim" of every rejected attempt
    blocked_terms: list[str] = field(default_factory=list)


class TextGeneratorConfig(StrictModel):
    """Settings every description generator has; generators add their own."""


class TextGenerator(Pretrained, ABC):
    """Base class: subclasses set ``name`` and ``config_class`` and implement :meth:`describe`."""

    kind = "text_generator"
    name: ClassVar[str]
    config_class: ClassVar[type[TextGeneratorConfig]] = TextGeneratorConfig

    def __init__(self, config: TextGeneratorConfig):
        self.config = config

    @classmethod
    def create(cls, config: TextGeneratorConfig, dataset: Any = None) -> Self:
        """Build from a validated config; ``dataset`` is the catalogue a generator checks claims against."""
        return cls(config)

    @property
    def type_name(self) -> str:
        return self.name

    def save_weights(self, directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """No weights by default (the template generator): the manifest alone rebuilds it."""
        return {}, {}

    @classmethod
    def implementation(cls, type_name: str, source: Path) -> type[TextGenerator]:
        return TEXT_GENERATOR_TYPES.get(type_name)

    @classmethod
    def from_saved(cls, config: TextGeneratorConfig, manifest: Manifest, directory: Path, **context: Any) -> Self:
        return cls.create(config, **context)

    @abstractmethod
    def describe(self, requests: Sequence[DescriptionRequest], progress: bool = False):
        """One :class:`Description` per request, in order, and a ``GroundingReport``: ``(list, report)``."""

    def identity(self) -> dict[str, Any]:
        """What produced the texts (name and resolved config), for config.json and the descriptions table."""
        return {"generator": self.name, "config": self.config.model_dump(mode="json")}


TEXT_GENERATOR_TYPES: Registry[type[TextGenerator]] = Registry(
    "text generator type", stage="text-generator-types", description="description generator implementations"
)
