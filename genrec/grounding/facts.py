"""What a description may state: :class:`ItemFacts`, :class:`UserProfile` and :class:`RequestMatch`.

The one source of truth both sides use: the generators write descriptions from these facts,
the grounding guard (:mod:`genrec.grounding.guard`) and the evaluation check descriptions against them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from genrec.data import Dataset
    from genrec.data.sequences import Sequences
    from genrec.requests import ParsedRequest

# MovieLens (and many catalogues) store "Usual Suspects, The"; people write "The Usual Suspects".
_TRAILING_ARTICLE = re.compile(r"^(?P<main>.+), (?P<article>The|A|An|L'|La|Le|Les|Il|El|Los|Las|Das|Der|Die|Den|Det)$")


NO_GENRES = "(no genres listed)"  # MovieLens's placeholder, not a genre
# Tags that are a viewer's note to self or a bare verdict, not something the film is about or like
# ("in netflix queue" is ml-latest-small's most frequent tag): never a fact to describe a film by.
_NOTE_TAG = re.compile(
    r"\b(netflix|queue|dvd|bd-r|blu-?ray|tivo|imdb|seen|to see|watch(?:ed|list)?|own(?:ed)?|library|might like|"
    r"bad|boring|overrated|stupid|awful|worst|predictable|disappointing|waste|pointless|sucks?)\b"
)


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


def descriptive_tag(tag: str) -> bool:
    """Whether a tag describes the film (a topic, a person, a mood), not a viewer's note or verdict."""
    return bool(tag.strip()) and _NOTE_TAG.search(tag.lower()) is None and "(" not in tag


@dataclass(frozen=True)
class ItemFacts:
    """The metadata a description may state: the only source of truth the grounding guard accepts."""

    item_id: Any
    title: str
    year: int | None = None
    genres: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    people: tuple[str, ...] = ()
    description: str = ""  # the catalogue's own text about the item (Amazon's description and features)

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
            description=" ".join(_as_strings(row.get("description"))),
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
        A sequence of strings is the user's liked titles alone.
        """
        if isinstance(profile, UserProfile):
            return profile
        if profile is None:
            return cls(user_id=user_id)
        if isinstance(profile, str):
            raise TypeError(
                f"profile: expected a profile, a mapping or a list of liked titles, got the string {profile!r}"
            )
        if isinstance(profile, Sequence):
            return cls(user_id=user_id, titles=tuple(str(title) for title in profile))

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


def profile_from_history(
    dataset: Dataset,
    user_id: Any,
    history: Sequences | None = None,
    max_genres: int = 3,
    max_tags: int = 3,
    max_titles: int | None = 3,
    min_rating: float = 4.0,
) -> UserProfile:
    """A :class:`UserProfile` from plain counts over a user's history, no model involved.

    Genres and tags: the most frequent over the history's items (ties: the more recent first;
    tags that are viewers' notes, see :func:`descriptive_tag`, skipped); titles: the most
    recent items rated at least ``min_rating``, newest first, ``max_titles`` of them (None: all;
    every item counts as liked where the log has no rating). ``history`` holds one row per
    ``user_idx`` (e.g. ``split.train``, so
    held-out items stay out of the profile); default the full log.
    """
    history = dataset.histories() if history is None else history
    row = int(dataset.user_index([user_id])[0])
    start, stop = history.offsets[row], history.offsets[row + 1]
    items = history.items[start:stop][::-1]  # newest first
    ratings = None if history.ratings is None else history.ratings[start:stop][::-1]
    rows = dataset.items.iloc[items]
    genres = Counter(g for values in rows["genres"] for g in _as_strings(values) if g != NO_GENRES)
    tags = Counter(t for values in rows["tags"] for t in dict.fromkeys(_as_strings(values)) if descriptive_tag(t))
    liked = np.ones(len(items), bool) if ratings is None else ~(ratings < min_rating)  # NaN: no rating, kept
    titles = list(dict.fromkeys(rows["title"].to_numpy()[liked]))
    return UserProfile(
        user_id=user_id,
        genres=tuple(g for g, _ in genres.most_common(max_genres)),
        tags=tuple(t for t, _ in tags.most_common(max_tags)),
        titles=tuple(str(t) for t in titles[:max_titles]),
    )


@dataclass(frozen=True)
class RequestMatch:
    """How an item answers the reader's request (:class:`~genrec.requests.ParsedRequest`), only the parts that hold.

    A part of the request the item does not answer is left out, never negated: asked for a comedy,
    a drama has no ``genres`` here, and its description says nothing about comedy.
    """

    genres: tuple[str, ...] = ()  # wanted genres the item has, in the request's order
    years: tuple[int, int] | None = None  # the requested range, when the item's year falls in it
    named: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (a named title as the catalogue writes it, genres both have)
    avoided: tuple[str, ...] = ()  # genres the request excludes and the item, whose genres are listed, lacks

    @property
    def empty(self) -> bool:
        return not (self.genres or self.years or self.named or self.avoided)


def named_facts(request: ParsedRequest, items: pd.DataFrame) -> list[ItemFacts]:
    """The catalogue's facts of the titles a request names (``named_items`` are rows of ``items``)."""
    for index in request.named_items:
        if not 0 <= index < len(items):
            raise ValueError(f"named_items: item index {index} is not a row of the {len(items)}-item catalogue")
    return [ItemFacts.from_row(items.iloc[index].to_dict()) for index in request.named_items]


def match_request(request: ParsedRequest | None, item: ItemFacts, items: pd.DataFrame) -> RequestMatch:
    """What ``item`` truly has of what ``request`` asks: wanted genres it has, its year in the requested
    range, the genres it shares with each named title (by the catalogue's facts of that title; the item
    itself and a title sharing nothing are left out), and the avoided genres it lacks."""
    if request is None:
        return RequestMatch()
    in_range = request.years is not None and item.year is not None
    in_range = in_range and request.years[0] <= item.year <= request.years[1]
    named = []
    for other in named_facts(request, items):
        shared = tuple(genre for genre in item.genres if genre in other.genres)
        if shared and other.item_id != item.item_id:
            named.append((other.title, shared))
    return RequestMatch(
        genres=tuple(genre for genre in request.want_genres if genre in item.genres),
        years=request.years if in_range else None,
        named=tuple(named),
        # An item the catalogue lists no genres for may be anything: nothing is avoided for sure.
        avoided=tuple(genre for genre in request.avoid_genres if item.genres and genre not in item.genres),
    )
