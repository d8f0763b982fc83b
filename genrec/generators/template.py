"""The grounded template generator: no model, deterministic, the default and the LLM's fallback.

It composes a description from the item's metadata and the user's profile, the attributes the
two share first, and states nothing else, so its output passes the grounding guard by
construction (a test checks this over the whole bundled catalogue). With the reader's request, a
sentence per part of it the item answers (:func:`~genrec.grounding.facts.match_request`), in fixed words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import pandas as pd
from pydantic import Field

from genrec.generators.text_base import (
    TEXT_GENERATOR_TYPES,
    Description,
    DescriptionRequest,
    TextGenerator,
    TextGeneratorConfig,
)
from genrec.grounding.facts import display_title, match_request
from genrec.grounding.guard import GroundingReport
from genrec.grounding.text_safety import BlockedOutput, OutputFilter, SafetyConfig, sanitise_untrusted


class TemplateConfig(TextGeneratorConfig):
    """Settings of the template generator."""

    max_genres: int = Field(4, ge=1, le=20, description="most genres named in a description")
    max_tags: int = Field(4, ge=0, le=20, description="most tags named in a description (0: none)")
    max_title_chars: int = Field(200, ge=8, le=2000, description="longest title written out (longer: cut with …)")
    safety: SafetyConfig = Field(default_factory=SafetyConfig, description="metadata sanitising and the output filter")


def join_words(values: Sequence[str], conjunction: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c`` (or another ``conjunction``: ``a, b or c``)."""
    values = list(values)
    if len(values) <= 1:
        return "".join(values)
    return ", ".join(values[:-1]) + f" {conjunction} " + values[-1]


def shared_first(item_values: Sequence[str], liked: Sequence[str]) -> tuple[list[str], list[str]]:
    """(item values the user likes, in the user's order of preference; the item's other values)."""
    lowered = {value.lower(): value for value in item_values}
    shared = list(dict.fromkeys(lowered[value.lower()] for value in liked if value.lower() in lowered))
    return shared, [value for value in item_values if value not in shared]


class TemplateGenerator(TextGenerator):
    """Grounded descriptions from the item's metadata and the user's profile, no model, deterministic."""

    name = "template"
    config_class = TemplateConfig

    def __init__(self, config: TemplateConfig | None = None, catalogue: pd.DataFrame | None = None):
        super().__init__(config or TemplateConfig())
        self.output_filter = OutputFilter(self.config.safety)
        self.catalogue = catalogue  # Dataset.items: where the titles a request names are looked up

    @classmethod
    def create(cls, config: TemplateConfig, dataset: Any = None) -> Self:
        return cls(config, None if dataset is None else dataset.items)

    def compose(self, request: DescriptionRequest) -> str:
        """The description of one request: shared attributes, then the item's genres and tags."""
        item, profile, config, clean = request.item, request.profile, self.config, self.clean
        title = sanitise_untrusted(item.display_title, config.max_title_chars) or "This title"
        named = f"{title} ({item.year})" if item.year is not None else title
        shared_genres, other_genres = shared_first(clean(item.genres), clean(profile.genres))
        # A tag the output filter would block ("mindfuck") is left out rather than blocking the whole text.
        tags = [tag for tag in clean(item.tags) if not self.output_filter.find(tag)]
        shared_tags, other_tags = shared_first(tags, clean(profile.tags))
        shared = shared_genres + shared_tags[: config.max_tags]
        if shared:
            sentences = [f"Because you enjoy {join_words(shared)}, {named} is one for you."]
        else:
            sentences = [f"{named} is a change from your usual picks."]
        sentences += self.request_sentences(request)
        genres = (shared_genres + other_genres)[: config.max_genres]
        if genres:
            sentences.append(f"It is listed as {join_words(genres)}.")
        tags = (shared_tags + other_tags)[: config.max_tags]
        if tags:
            quoted = [f'"{tag}"' for tag in tags]
            sentences.append(f"Viewers tag it {join_words(quoted)}.")
        return " ".join(sentences)

    def clean(self, values: Sequence[str]) -> list[str]:
        """Metadata values sanitised and capped (untrusted text), the empty ones dropped."""
        limit = self.config.safety.max_field_chars
        return [text for text in (sanitise_untrusted(value, limit) for value in values) if text]

    def request_sentences(self, request: DescriptionRequest) -> list[str]:
        """How the item answers the reader's request, one sentence per part it answers (none without a request)."""
        asked, item = request.user_request, request.item
        if asked is None:
            return []
        if asked.named_items and self.catalogue is None:
            raise ValueError("user_request names titles: the template generator needs the catalogue (dataset=)")
        match, clean = match_request(asked, item, self.catalogue), self.clean
        sentences = []
        for title, shared in match.named:
            named = sanitise_untrusted(display_title(title), self.config.max_title_chars)
            sentences.append(f"Like {named}, which you asked about, it is listed as {join_words(clean(shared))}.")
        if match.genres:
            sentences.append(f"It is listed as {join_words(clean(match.genres))}, as you asked.")
        if match.years is not None:
            first, last = match.years
            decade = first % 10 == 0 and last == first + 9
            sentences.append(
                f"It is from the {first}s, as you asked."
                if decade
                else f"It is from {item.year}, within the years you asked for."
            )
        if match.avoided:
            sentences.append(f"It is listed without {join_words(clean(match.avoided), 'or')}, as you asked.")
        return sentences

    def describe(
        self, requests: Sequence[DescriptionRequest], progress: bool = False
    ) -> tuple[list[Description], GroundingReport]:
        """Template descriptions, each screened by the output filter (a blocked one is recorded and left empty)."""
        report = GroundingReport(descriptions=len(requests))
        descriptions = [self.screened(request, report, source="template") for request in requests]
        report.template = sum(d.source == "template" for d in descriptions)
        return descriptions, report

    def screened(self, request: DescriptionRequest, report: GroundingReport, source: str) -> Description:
        """:meth:`compose` behind the output filter; a blocked text is counted and recorded in ``report``."""
        text = self.compose(request)
        terms = self.output_filter.find(text, titles=(request.item.title, request.item.display_title))
        if not terms:
            return Description(text, source)
        report.blocked += 1
        report.blocked_outputs.append(
            BlockedOutput(request.user_id, request.item.item_id, "template", terms, text).to_dict()
        )
        return Description("", "blocked", blocked_terms=terms)


TEXT_GENERATOR_TYPES.register(TemplateGenerator.name, TemplateGenerator)
