"""What every description generator shares: the request, the result, the interface and the registry.

A request pairs one recommended item's metadata (:class:`~genrec.grounding.facts.ItemFacts`) with one
user's preference profile (:class:`~genrec.grounding.facts.UserProfile`); a generator returns one
:class:`Description` per request and a :class:`~genrec.grounding.guard.GroundingReport` counting what
the guard did.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from genrec.config import StrictModel
from genrec.grounding.facts import ItemFacts, UserProfile
from genrec.registry import Registry


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


class TextGenerator(ABC):
    """Base class: subclasses set ``name`` and ``config_class`` and implement :meth:`describe`."""

    name: ClassVar[str]
    config_class: ClassVar[type[TextGeneratorConfig]] = TextGeneratorConfig

    def __init__(self, config: TextGeneratorConfig):
        self.config = config

    @abstractmethod
    def describe(self, requests: Sequence[DescriptionRequest], progress: bool = False):
        """One :class:`Description` per request, in order, and a ``GroundingReport``: ``(list, report)``."""

    def identity(self) -> dict[str, Any]:
        """What produced the texts (name and resolved config), for config.json and the descriptions table."""
        return {"generator": self.name, "config": self.config.model_dump(mode="json")}


TEXT_GENERATORS: Registry[Any] = Registry("text generator")
