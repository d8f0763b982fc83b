"""The grounding guard: extract the checkable claims of a description and test them against metadata.

A description may only state what the item's metadata supports. The checkable claims are
mentions of catalogue vocabulary (the claim extraction of FActScore, Min et al. 2023, reduced to
what a catalogue can verify):

- ``title``: another catalogue item's title (case-sensitive, so "heat" is a word and "Heat" a
  title); the item's own title and the user's liked titles (their profile) are allowed;
- ``year``: a four-digit year; only the item's year is supported;
- ``genre`` / ``tag``: a catalogue genre or tag (case-insensitive); only the item's own are supported;
- ``person``: a name from the catalogue's people columns, or a tag written as a Capitalised Name
  ("Robin Williams"); only people in the item's metadata are supported.

Matching runs over word n-grams, longest match first, so "Toy Story 2" in a description of
"Toy Story" is a claim about another title, while words inside an allowed title ("Christmas"
in "Christmas Vacation") claim nothing. The check is strict on purpose: a profile genre the item
lacks is unsupported wherever it appears, because the guard cannot tell "you like X" from
"this is X".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pydantic import Field, field_validator

from genrec.config import StrictModel
from genrec.generators.text_base import ItemFacts, UserProfile, display_title

# Punctuation marks are tokens too, so a match never spans "space, action" for the tag "space action".
_WORD = re.compile(r"\w+|[^\w\s]")
_SENTENCE_END = re.compile(r"[.!?:]\s*$")
_YEAR = re.compile(r"^(18[89]\d|19\d\d|20[0-4]\d)$")
CLAIM_KINDS = ("title", "year", "genre", "tag", "person")


class GroundingConfig(StrictModel):
    """What the guard checks and how hard it tries before falling back to the template."""

    max_retries: int = Field(2, ge=0, le=10, description="regenerations of a description with an unsupported claim")
    check: tuple[str, ...] = Field(CLAIM_KINDS, description=f"claim kinds to check, a subset of {CLAIM_KINDS}")
    people_columns: tuple[str, ...] = Field(
        ("people", "cast", "director", "directors", "actors"),
        description="item columns listing people; those present in the catalogue are used",
    )
    min_title_chars: int = Field(4, ge=1, description="shorter one-word titles ('It', 'Up') are not treated as claims")
    min_tag_chars: int = Field(4, ge=1, description="shorter tags are not treated as claims")
    max_ngram: int = Field(
        24, ge=1, le=64, description="longest title/tag (in words and punctuation marks) recognised in a text"
    )

    @field_validator("check")
    @classmethod
    def _known_kinds(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(CLAIM_KINDS))
        if unknown:
            raise ValueError(f"unknown claim kinds {unknown}; valid kinds: {', '.join(CLAIM_KINDS)}")
        return value


@dataclass(frozen=True)
class Claim:
    kind: str  # one of CLAIM_KINDS
    text: str  # as written in the description
    supported: bool

    def __str__(self) -> str:
        return f"{self.kind}:{self.text}"


@dataclass
class GroundingReport:
    """Counts over one batch of descriptions (the guard's and the blocklist's audit trail)."""

    descriptions: int = 0
    template: int = 0  # produced by the template generator directly
    llm_first_try: int = 0  # LLM text accepted as generated
    regenerated: int = 0  # LLM text accepted after at least one rejected attempt
    fallback: int = 0  # every LLM attempt rejected: the template text was used
    blocked: int = 0  # no text survived the blocklist (description left empty)
    llm_attempts: int = 0
    rejected_attempts: int = 0
    unsupported_claims: dict[str, int] = field(default_factory=dict)  # kind -> count over rejected attempts
    blocked_outputs: list[dict[str, Any]] = field(default_factory=list)  # BlockedOutput.to_dict() of each

    def count_claims(self, claims: Iterable[Claim]) -> None:
        for claim in claims:
            self.unsupported_claims[claim.kind] = self.unsupported_claims.get(claim.kind, 0) + 1

    def merge(self, other: GroundingReport) -> None:
        for name in ("descriptions", "template", "llm_first_try", "regenerated", "fallback", "blocked"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.llm_attempts += other.llm_attempts
        self.rejected_attempts += other.rejected_attempts
        for kind, count in other.unsupported_claims.items():
            self.unsupported_claims[kind] = self.unsupported_claims.get(kind, 0) + count
        self.blocked_outputs.extend(other.blocked_outputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "descriptions": self.descriptions,
            "template": self.template,
            "llm_first_try": self.llm_first_try,
            "regenerated": self.regenerated,
            "fallback": self.fallback,
            "blocked": self.blocked,
            "llm_attempts": self.llm_attempts,
            "rejected_attempts": self.rejected_attempts,
            "unsupported_claims": dict(sorted(self.unsupported_claims.items())),
            "blocked_outputs": list(self.blocked_outputs),
        }


class GroundingChecker:
    """Claim extraction and checking against one catalogue's vocabulary (built once, reused)."""

    def __init__(self, items: pd.DataFrame, config: GroundingConfig | None = None):
        self.config = config or GroundingConfig()
        columns = [column for column in self.config.people_columns if column in items.columns]
        self.people_columns = tuple(columns)
        facts = [ItemFacts.from_row(row, self.people_columns) for row in items.to_dict("records")]
        # Keys are word tuples: titles case-sensitive, the rest lower-cased.
        self.titles: dict[tuple[str, ...], str] = {}
        for item in facts:
            for variant in (item.title, display_title(item.title)):
                key = _words(variant)
                one_short_word = len(key) == 1 and len(key[0]) < self.config.min_title_chars
                if key and not one_short_word and len(key) <= self.config.max_ngram:
                    self.titles.setdefault(key, variant)
        self.genres = {_lower_words(g): g for item in facts for g in item.genres}
        self.people = {_lower_words(p): p for item in facts for p in item.people}
        self.tags = {
            _lower_words(t): t
            for item in facts
            for t in item.tags
            if len(t) >= self.config.min_tag_chars and _lower_words(t) not in self.genres
        }
        self.tags = {key: tag for key, tag in self.tags.items() if key and len(key) <= self.config.max_ngram}

    def claims(self, text: str, item: ItemFacts, profile: UserProfile | None = None) -> list[Claim]:
        """Every checkable claim in ``text``, in order, each marked supported or not."""
        profile = profile or UserProfile()
        spans = [(m.start(), m.group(0)) for m in _WORD.finditer(text)]
        words = tuple(word for _, word in spans)
        lower = tuple(word.lower() for word in words)
        allowed = _allowed_spans(words, (item.title, item.display_title, *profile.titles))
        item_genres = {_lower_words(g) for g in item.genres} | {_lower_words(t) for t in item.tags}
        item_tags = {_lower_words(t) for t in item.tags} | item_genres
        item_people = {_lower_words(p) for p in item.people} | {_lower_words(t) for t in item.tags}
        check = set(self.config.check)
        found: list[Claim] = []
        position = 0
        while position < len(words):
            title = self._longest(words, position, self.titles)
            if position in allowed and (title is None or len(title) <= allowed[position]):
                position += allowed[position]  # the item's own title or a liked title: words inside claim nothing
                continue
            sentence_start = position == 0 or bool(_SENTENCE_END.search(text[: spans[position][0]]))
            # A title that is also a genre, tag, name or year ("Romance", "Casino", "1969") is read as that.
            ambiguous = title is not None and (
                any(tuple(w.lower() for w in title) in v for v in (self.genres, self.tags, self.people))
                or (len(title) == 1 and _YEAR.match(title[0]) is not None)
            )
            if title and not ambiguous and (len(title) > 1 or not sentence_start):
                if "title" in check:
                    found.append(Claim("title", " ".join(words[position : position + len(title)]), False))
                position += len(title)  # words inside a title claim nothing else
                continue
            person = self._longest(lower, position, self.people)
            tag = self._longest(lower, position, self.tags)
            genre = self._longest(lower, position, self.genres)
            match = max((m for m in (person, tag, genre) if m), key=len, default=None)
            if match is None:
                if _YEAR.match(words[position]) and "year" in check:
                    found.append(Claim("year", words[position], item.year == int(words[position])))
                position += 1
                continue
            written = words[position : position + len(match)]
            if match == person or (match == tag and len(written) > 1 and all(w[:1].isupper() for w in written)):
                kind, supported = "person", match in item_people
            elif match == genre:
                kind, supported = "genre", match in item_genres
            else:
                kind, supported = "tag", match in item_tags
            if kind in check:
                found.append(Claim(kind, " ".join(written), supported))
            position += len(match)
        return found

    def unsupported(self, text: str, item: ItemFacts, profile: UserProfile | None = None) -> list[Claim]:
        """The claims of ``text`` the item's metadata does not support (empty: the text is grounded)."""
        return [claim for claim in self.claims(text, item, profile) if not claim.supported]

    def _longest(self, words: Sequence[str], start: int, vocabulary: dict) -> tuple[str, ...] | None:
        for length in range(min(self.config.max_ngram, len(words) - start), 0, -1):
            key = tuple(words[start : start + length])
            if key in vocabulary:
                return key
        return None


def _allowed_spans(words: tuple[str, ...], titles: Iterable[str]) -> dict[int, int]:
    """Start position -> length of every occurrence of the allowed titles (any length), longest first."""
    spans: dict[int, int] = {}
    keys = {_words(variant) for title in titles for variant in (title, display_title(title))} - {()}
    for key in sorted(keys, key=len, reverse=True):
        for start in range(len(words) - len(key) + 1):
            if words[start : start + len(key)] == key and start not in spans:
                spans[start] = len(key)
    return spans


def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text))


def _lower_words(text: str) -> tuple[str, ...]:
    return tuple(word.lower() for word in _WORD.findall(text))
