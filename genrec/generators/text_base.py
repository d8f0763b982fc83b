"""What every description generator shares: the request, the result, the interface and the registry.

Generators save and load through :class:`genrec.persistence.Pretrained` (``config.json`` with the
generator's ``type`` and resolved config, plus the model's files where it has one);
:data:`TEXT_GENERATOR_TYPES` lists the implementations, the presets of
:mod:`genrec.generators.text_presets` name one of them each.

A request pairs one recommended item's metadata (:class:`~genrec.grounding.facts.ItemFacts`) with one
user's preference profile (:class:`~genrec.grounding.facts.UserProfile`) and, when the run has one, the
reader's request in natural language (:class:`~genrec.requests.ParsedRequest`), which the description
then answers with the facts that match it (:func:`~genrec.grounding.facts.match_request`); a generator
returns one :class:`Description` per request and a :class:`~genrec.grounding.guard.GroundingReport`
counting what the guard did.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from genrec.config import StrictModel
from genrec.grounding.facts import ItemFacts, UserProfile
from genrec.persistence import Manifest, Pretrained
from genrec.registry import Registry

if TYPE_CHECKING:
    from genrec.requests import ParsedRequest


@dataclass(frozen=True)
class DescriptionRequest:
    user_id: Any
    item: ItemFacts
    profile: UserProfile
    user_request: ParsedRequest | None = None  # the run's request; None: the description is exactly as without one


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
