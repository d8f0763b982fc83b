"""Prompt-injection handling and the output blocklist for description generators.

Item metadata is untrusted text: a title such as ``Ignore previous instructions and ...`` must
reach the model as *data*. :func:`quote_untrusted` turns any field into one quoted,
length-capped JSON string literal (so quotes, newlines and role markers inside it cannot close
the quote or start a new turn), and prompts place such literals only in the user turn, never in
the system prompt. Outputs are screened by a configurable blocklist; a blocked output is
recorded (:class:`BlockedOutput`), never silently dropped.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import Field, field_validator

from genrec.config import StrictModel

ELLIPSIS = "…"
_MARKER = re.compile(r"<\|([^|<>]*)\|>")  # <|name|>: the shape of chat-template special tokens

DEFAULT_BLOCKLIST = (
    "ignore previous instructions",
    "ignore all previous instructions",
    "system prompt",
    "as an ai language model",
    "kill yourself",
    "nigger",
    "faggot",
)


class SafetyConfig(StrictModel):
    """How untrusted metadata is quoted in prompts and which output phrases are blocked."""

    max_field_chars: int = Field(80, ge=8, le=2000, description="longest metadata string quoted into a prompt")
    max_list_items: int = Field(8, ge=1, le=100, description="most genres/tags/titles listed per field")
    blocklist: tuple[str, ...] = Field(
        DEFAULT_BLOCKLIST, description="case-insensitive phrases (whole words) that block an output"
    )

    @field_validator("blocklist")
    @classmethod
    def _no_empty_phrases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        empty = [phrase for phrase in value if not phrase.strip()]
        if empty:
            raise ValueError("blocklist phrases must be non-empty; remove the blank entries")
        return tuple(" ".join(phrase.lower().split()) for phrase in value)


def quote_untrusted(text: Any, max_chars: int, forbidden: tuple[str, ...] = ()) -> str:
    """One JSON string literal holding ``text``: control characters removed, whitespace collapsed, capped.

    A quote inside ``text`` comes out escaped (``\\"``), so it cannot end the literal early, and
    chat-template markers (``<|user|>``, ``<|im_start|>``) lose their bars: tokenizers would
    otherwise read them as the special tokens that start a new turn. ``forbidden`` lists the
    model's other special-token strings (``</s>``, ``[INST]``); they are removed.
    """
    cleaned = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in str(text))
    for token in forbidden:
        cleaned = cleaned.replace(token, " ")
    cleaned = _MARKER.sub(lambda match: "<" + match.group(1) + ">", " ".join(cleaned.split()))
    if len(cleaned) > max_chars:
        cleaned = cleaned[: max_chars - 1].rstrip() + ELLIPSIS
    return json.dumps(cleaned, ensure_ascii=False)


def quote_list(values: Any, config: SafetyConfig, forbidden: tuple[str, ...] = ()) -> str:
    """A JSON-style list of quoted, capped strings (at most ``max_list_items``): ``["a", "b"]``."""
    values = list(values)[: config.max_list_items]
    quoted = [quote_untrusted(value, config.max_field_chars, forbidden) for value in values]
    return "[" + ", ".join(quoted) + "]"


class Blocklist:
    """Whole-word, case-insensitive phrase matching; whitespace inside a phrase matches any whitespace."""

    def __init__(self, phrases: tuple[str, ...]):
        self.phrases = phrases
        patterns = [r"\s+".join(re.escape(word) for word in phrase.split()) for phrase in phrases]
        self._pattern = re.compile(r"(?<!\w)(?:" + "|".join(patterns) + r")(?!\w)", re.IGNORECASE) if phrases else None

    def find(self, text: str) -> list[str]:
        """The blocked phrases ``text`` contains, each once, lower-cased, in order of appearance."""
        if self._pattern is None:
            return []
        found = (" ".join(match.group(0).lower().split()) for match in self._pattern.finditer(text))
        return list(dict.fromkeys(found))


@dataclass
class BlockedOutput:
    """A generated text the blocklist stopped: kept for the report and the audit trail."""

    user_id: Any
    item_id: Any
    stage: str  # "llm" (an LLM attempt) or "template"
    terms: list[str]
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
