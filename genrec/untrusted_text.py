"""Untrusted text (titles, tags, genres, user text) made safe to place in a prompt, a template or an image prompt.

A lower layer shared by every stage that writes prompts: the description generators
(genrec.grounding.text_safety re-exports it) and the LLM ranker, which may not import the
generators. Catalogue metadata is written by whoever fills the catalogue, so it can hold what a
model would read as an instruction or a control token: chat-template markers
(``<|im_start|>system``), other special tokens (``</s>``, ``[INST]``, ``<<SYS>>``), HTML
(``<script>``), Markdown links, URLs and e-mail addresses. :func:`sanitise_untrusted` removes all
of them, plus the special tokens of the tokenizer in use when the caller passes them as
``forbidden`` (``genrec.language_models.special_token_strings``), and caps the length;
:func:`quote_untrusted` then makes the result one JSON string literal, so a quote or a newline
inside it cannot end the literal or start a new turn. :func:`find_unsafe_markup` reports the
same classes in a text without changing it (the output filter of the description generators).

It imports nothing from genrec.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

ELLIPSIS = "…"

# Special tokens of widely used tokenizers and chat formats (Llama 2, Mistral, Gemma, BERT, GPT-2,
# ChatML). Matched case-insensitively; the tokenizer in use adds its own (``forbidden``).
GENERIC_SPECIAL_TOKENS = (
    "<s>",
    "</s>",
    "<unk>",
    "<pad>",
    "<bos>",
    "<eos>",
    "<mask>",
    "[INST]",
    "[/INST]",
    "<<SYS>>",
    "<</SYS>>",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "[PAD]",
    "[UNK]",
    "<start_of_turn>",
    "<end_of_turn>",
)
# <|im_start|>, <|eot_id|>, <|user|>, <|endoftext|>: the shape of chat-template control tokens.
_CHAT_MARKER = re.compile(r"<\|[^<>\n]{0,64}?\|>")
# [INST]-style role markers in any case and spacing: [ inst ], [/SYS], [SYSTEM], [ASSISTANT].
_BRACKET_MARKER = re.compile(r"\[\s*/?\s*(?:inst|sys|system|user|assistant)\s*\]|<<\s*/?\s*sys\s*>>", re.IGNORECASE)
# Elements whose content is code, removed with their content (an unclosed one up to the end).
_CODE_ELEMENT = re.compile(
    r"<\s*(script|style|iframe|object|embed|svg|template)\b.*?(?:<\s*/\s*\1\s*>|$)", re.IGNORECASE | re.DOTALL
)
_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
_TAG = re.compile(r"<\s*/?\s*[A-Za-z!?][^<>]*>")
_MARKDOWN_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\n]*\)")
_URL = re.compile(
    r"(?:\b(?:https?|ftp|file|javascript|data|vbscript|mailto):\S*)"
    r"|(?:\bwww\.\S+)"
    r"|(?:\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|io|ru|cn|xyz|info|biz|top|ly|me|co|app|dev)/\S*)",
    re.IGNORECASE,
)
# A bare domain ("Amazon.com") in generated text: a link to somewhere. Not removed from catalogue titles
# ("Startup.com" is a film), only reported by find_unsafe_markup.
_BARE_DOMAIN = re.compile(r"\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|io|ru|cn|xyz|info|biz|top|ly|app|dev)\b", re.I)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_CODE_MARKS = re.compile(r"`+")
MAX_PASSES = 4  # removals can join fragments into a new marker ("<|im_<|x|>start|>"): repeat until stable


def _without_controls(text: str) -> str:
    """NFKC (fullwidth ``＜｜`` become ``<|``), control and format characters (zero-width, bidi) dropped."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(
        " " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
        for ch in text
        if unicodedata.category(ch) not in ("Cf", "Co", "Cs", "Cn")
    )


def _remove_tokens(text: str, tokens: Iterable[str]) -> str:
    for token in sorted(set(tokens), key=len, reverse=True):
        if token.strip():
            text = re.sub(re.escape(token), " ", text, flags=re.IGNORECASE)
    return text


def sanitise_untrusted(text: Any, max_chars: int | None = None, forbidden: Iterable[str] = ()) -> str:
    """``text`` with every control token, markup, link and address removed, whitespace collapsed, capped.

    Removed: chat-template markers (``<|...|>``), the generic special tokens above and
    ``forbidden`` (the loaded tokenizer's special tokens), bracketed
    role markers (``[INST]``, ``<<SYS>>``), HTML/XML elements (``<script>`` and ``<style>`` with
    their content), comments and entities, Markdown links (their label is kept) and backticks,
    URLs (``http://``, ``www.``, bare domains, ``javascript:``) and e-mail addresses. Control and
    zero-width characters go first, after NFKC, so none of these can be hidden. Longer than
    ``max_chars``: cut with an ellipsis.
    """
    cleaned = "" if text is None else str(text)
    tokens = (*GENERIC_SPECIAL_TOKENS, *forbidden)
    for _ in range(MAX_PASSES):
        before = cleaned
        cleaned = _without_controls(html.unescape(cleaned))
        cleaned = _remove_tokens(cleaned, tokens)
        cleaned = _CHAT_MARKER.sub(" ", cleaned)
        cleaned = _BRACKET_MARKER.sub(" ", cleaned)
        cleaned = _CODE_ELEMENT.sub(" ", cleaned)
        cleaned = _COMMENT.sub(" ", cleaned)
        cleaned = _TAG.sub(" ", cleaned)
        cleaned = _MARKDOWN_LINK.sub(r"\1", cleaned)
        cleaned = _EMAIL.sub(" ", cleaned)
        cleaned = _URL.sub(" ", cleaned)
        cleaned = _CODE_MARKS.sub("", cleaned)
        cleaned = " ".join(cleaned.split())
        if cleaned == before:
            break
    if max_chars is not None and len(cleaned) > max_chars:
        cleaned = cleaned[: max(max_chars - 1, 0)].rstrip() + ELLIPSIS
    return cleaned


def quote_untrusted(text: Any, max_chars: int | None = None, forbidden: Iterable[str] = ()) -> str:
    """One JSON string literal of :func:`sanitise_untrusted`'s result: quotes inside come out escaped."""
    return json.dumps(sanitise_untrusted(text, max_chars, forbidden), ensure_ascii=False)


def find_unsafe_markup(text: str, forbidden: Iterable[str] = ()) -> list[str]:
    """The unsafe pieces of ``text`` as ``kind:piece`` (``special_token``, ``markup``, ``url``, ``email``), in order.

    The classes :func:`sanitise_untrusted` removes; a generated description holding any of
    them was steered by its input or would be rendered as something other than text.
    """
    normalised = _without_controls(html.unescape(text))
    found: list[tuple[int, int, str]] = []
    for token in {*GENERIC_SPECIAL_TOKENS, *forbidden}:
        if token.strip():
            for m in re.finditer(re.escape(token), normalised, re.IGNORECASE):
                found.append((m.start(), m.end(), f"special_token:{m.group(0)}"))
    for kind, pattern in (
        ("special_token", _CHAT_MARKER),
        ("special_token", _BRACKET_MARKER),
        ("markup", _CODE_ELEMENT),
        ("markup", _COMMENT),
        ("markup", _TAG),
        ("markup", _MARKDOWN_LINK),
        ("email", _EMAIL),
        ("url", _URL),
        ("url", _BARE_DOMAIN),
    ):
        found += [(m.start(), m.end(), f"{kind}:{m.group(0)[:40]}") for m in pattern.finditer(normalised)]
    # A piece inside an earlier one (an e-mail's domain, a token inside a tag) is reported once, as the outer.
    pieces: list[str] = []
    covered_until = -1
    for start, end, piece in sorted(found, key=lambda f: (f[0], -f[1])):
        if start >= covered_until:
            pieces.append(piece)
        covered_until = max(covered_until, end)
    return list(dict.fromkeys(pieces))
