"""Requests in natural language (issue 27): the parsed form a run's ranking and descriptions read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ParsedRequest:
    """A user's free-text request, sanitised and read into what conditions the ranking."""

    text: str
    named_items: tuple[int, ...] = ()
    want_genres: tuple[str, ...] = ()
    avoid_genres: tuple[str, ...] = ()
    years: tuple[int, int] | None = None
    rest: str = ""

    @property
    def empty(self) -> bool:
        return not (self.named_items or self.want_genres or self.avoid_genres or self.years or self.rest)
