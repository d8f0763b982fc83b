"""Prompt-injection handling and the output filter of the description generators.

Item metadata is untrusted text: a title such as ``Ignore previous instructions and ...`` or a
tag holding ``<|im_start|>system`` must reach the model as *data*. Every field is cleaned by
:func:`genrec.untrusted_text.sanitise_untrusted` (special and chat-template tokens, markup, URLs,
e-mail addresses removed) and quoted as one length-capped JSON string literal
(:func:`quote_list`); prompts place such literals only in the user turn.

Outputs pass :class:`OutputFilter`: profanity and slurs (the word list of ``better-profanity``,
kept to the words the ``alt-profanity-check`` classifier scores as offensive on their own, so
"kill", "gay" or "hell" in a plot summary are not blocked), found after normalisation (NFKC,
case, leetspeak, repeated letters, letters split by separators, ``*`` masks, words embedded in
longer unknown words); injection phrases; and the unsafe markup classes of
:func:`genrec.untrusted_text.find_unsafe_markup`. A blocked output is recorded
(:class:`BlockedOutput`), never silently dropped.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from pydantic import Field, field_validator

from genrec.config import StrictModel
from genrec.untrusted_text import ELLIPSIS, find_unsafe_markup, quote_untrusted, sanitise_untrusted

__all__ = [
    "ELLIPSIS",
    "BlockedOutput",
    "OutputFilter",
    "SafetyConfig",
    "profane_words",
    "quote_list",
    "quote_untrusted",
    "sanitise_untrusted",
]

# Phrases of a model that was steered by its input or broke character; matched after normalisation.
DEFAULT_BLOCKLIST = (
    "ignore previous instructions",
    "ignore all previous instructions",
    "ignore the above",
    "disregard previous instructions",
    "system prompt",
    "as an ai language model",
    "kill yourself",
)
# Words the classifier scores as offensive alone that a plot summary uses in their plain sense.
DESCRIPTIVE_WORDS = frozenset(
    [
        "kill",
        "gay",
        "hell",
        "fat",
        "sex",
        "stupid",
        "suck",
        "sucking",
        "damn",
        "jerk",
        "queer",
        "queers",
        "negro",
        "penis",
        "vagina",
        "semen",
        "pedophile",
        "rapist",
        "moron",
        "crap",
        "scum",
    ]
)
OFFENSIVE_PROBABILITY = 0.9  # alt-profanity-check's probability for a word alone to count as profane
MIN_EMBEDDED_CHARS = 4  # shorter profane words ("ass") are not searched for inside other words
KNOWN_WORD_ZIPF = 2.5  # wordfreq Zipf frequency from which a word is English (and may contain "cock": cocktail)
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s",
                       "!": "i", "|": "i", "+": "t", "€": "e", "£": "l", "¡": "i"})  # fmt: skip
_SPLIT_LETTERS = re.compile(r"(?<![\w*])(?:\w[\s.\-_*,]{1,2}){2,}\w(?![\w*])")
_TOKEN = re.compile(r"[\w@$!|+€£¡*]+")


class SafetyConfig(StrictModel):
    """How untrusted metadata is quoted in prompts and what blocks an output."""

    max_field_chars: int = Field(80, ge=8, le=2000, description="longest metadata string quoted into a prompt")
    max_list_items: int = Field(8, ge=1, le=100, description="most genres/tags/titles listed per field")
    blocklist: tuple[str, ...] = Field(
        DEFAULT_BLOCKLIST, description="phrases that block an output (matched after normalisation, any case)"
    )
    profanity: bool = Field(True, description="block profanity and slurs (better-profanity + alt-profanity-check)")
    markup: bool = Field(True, description="block outputs holding special tokens, markup, URLs or e-mail addresses")

    @field_validator("blocklist")
    @classmethod
    def _no_empty_phrases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        empty = [phrase for phrase in value if not phrase.strip()]
        if empty:
            raise ValueError("blocklist phrases must be non-empty; remove the blank entries")
        return tuple(" ".join(phrase.lower().split()) for phrase in value)


def quote_list(values: Any, config: SafetyConfig, special_tokens: tuple[str, ...] = ()) -> str:
    """A JSON-style list of sanitised, quoted, capped strings (at most ``max_list_items``): ``["a", "b"]``."""
    values = list(values)[: config.max_list_items]
    quoted = [quote_untrusted(value, config.max_field_chars, special_tokens) for value in values]
    return "[" + ", ".join(quoted) + "]"


@lru_cache(maxsize=1)
def profane_words() -> frozenset[str]:
    """better-profanity's words (letters only) that alt-profanity-check scores >= 0.9 alone, less DESCRIPTIVE_WORDS."""
    from better_profanity import profanity
    from profanity_check import predict_prob

    profanity.load_censor_words()
    words = sorted({str(word) for word in profanity.CENSOR_WORDSET if str(word).isalpha()})
    scores = predict_prob(words)
    return frozenset(w for w, p in zip(words, scores, strict=True) if p >= OFFENSIVE_PROBABILITY) - DESCRIPTIVE_WORDS


@lru_cache(maxsize=65536)
def _known_word(word: str) -> bool:
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en") >= KNOWN_WORD_ZIPF


def normalise(text: str) -> str:
    """NFKC, case-folded, accents stripped: the form every filter compares."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _variants(token: str) -> set[str]:
    """A token as written, de-leeted, and with runs of a repeated letter shortened to one and to two."""
    plain = token.replace("*", "")
    forms = {plain, token.translate(_LEET).replace("*", "")}
    for form in list(forms):
        forms.add(re.sub(r"(\w)\1+", r"\1", form))
        forms.add(re.sub(r"(\w)\1{2,}", r"\1\1", form))
    return {form for form in forms if form}


class OutputFilter:
    """What blocks a generated text: ``profanity:<word>``, ``phrase:<phrase>``, ``markup:``/``url:``/... pieces."""

    def __init__(self, config: SafetyConfig | None = None, allowed_words: frozenset[str] = frozenset()):
        self.config = config or SafetyConfig()
        # Words of the catalogue's titles ("Nightwatch"): never searched for embedded profanity.
        self.allowed_words = frozenset(normalise(word) for word in allowed_words)
        self.phrases = tuple(self.config.blocklist)

    def find(self, text: str, special_tokens: tuple[str, ...] = (), titles: tuple[str, ...] = ()) -> list[str]:
        """Every reason ``text`` is blocked, each once, in order of kind; empty: the text may be shown.

        ``titles``: the described item's own title(s); a title is the catalogue's name for the
        item ("Moby Dick", "Kick-Ass", "Startup.com"), so its words are not read as profanity and
        a domain inside it is not read as a link.
        """
        found: list[str] = []
        if self.config.markup:
            # A bare domain inside the item's own title ("Startup.com") is its name, not a link.
            found += [
                term
                for term in find_unsafe_markup(text, special_tokens)
                if not (term.startswith("url:") and any(term[4:] in title for title in titles))
            ]
        normal = normalise(text)
        squashed = " ".join(re.sub(r"[^\w\s]", " ", normal.translate(_LEET)).split())
        found += [f"phrase:{phrase}" for phrase in self.phrases if _contains_phrase(squashed, phrase)]
        if self.config.profanity:
            for title in sorted({normalise(title) for title in titles if title.strip()}, key=len, reverse=True):
                normal = normal.replace(title, " ")
            found += [f"profanity:{word}" for word in self.profanity(normal)]
        return list(dict.fromkeys(found))

    def profanity(self, normal: str) -> list[str]:
        """The profane words in a normalised text: whole tokens, split or masked letters, embedded words."""
        words = profane_words()
        joined = _SPLIT_LETTERS.sub(lambda m: " " + re.sub(r"[\s.\-_*,]", "", m.group(0)) + " ", normal)
        hits: list[str] = []
        for token in _TOKEN.findall(joined):
            forms = _variants(token)
            direct = forms & words
            if direct:
                hits.append(min(direct))
                continue
            if "*" in token:
                masked = self._masked(token.translate(_LEET), words)
                if masked:
                    hits.append(masked)
                    continue
            if token in self.allowed_words or _known_word(token.strip("*")):
                continue
            embedded = sorted(w for w in words if len(w) >= MIN_EMBEDDED_CHARS and any(w in f for f in forms))
            if embedded:
                hits.append(max(embedded, key=len))
        return list(dict.fromkeys(hits))

    @staticmethod
    def _masked(token: str, words: frozenset[str]) -> str | None:
        """``f*ck``, ``sh**``: a profane word of the same length equal on every unmasked letter."""
        pattern = re.compile("".join("." if ch == "*" else re.escape(ch) for ch in token))
        if token.count("*") >= len(token) - 1:
            return None
        matches = sorted(w for w in words if len(w) == len(token) and pattern.fullmatch(w))
        return matches[0] if matches else None


def _contains_phrase(text: str, phrase: str) -> bool:
    return re.search(r"(?<!\w)" + r"\s+".join(map(re.escape, phrase.split())) + r"(?!\w)", text) is not None


@dataclass
class BlockedOutput:
    """A generated text the output filter stopped: kept for the report and the audit trail."""

    user_id: Any
    item_id: Any
    stage: str  # "llm" (an LLM attempt) or "template"
    terms: list[str]
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
