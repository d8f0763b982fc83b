"""Image prompts for a (user, item) pair: the item's metadata, styled by the user's preference profile.

A plain, stateless function (no model): the same inputs always give the same prompt. Item
metadata and profile values are untrusted catalogue text, so each is sanitised
(:func:`genrec.untrusted_text.sanitise_untrusted`: special and chat-template tokens, markup, URLs
and e-mail addresses removed), stripped of quotes and length-capped; CLIP reads only 77 tokens,
so the prompt keeps the item first and the user's styling after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genrec.grounding.facts import ItemFacts, UserProfile
from genrec.untrusted_text import sanitise_untrusted

DEFAULT_NEGATIVE_PROMPT = "text, watermark, signature, logo, blurry, low quality, deformed, nsfw"
MAX_TITLE_CHARS = 80
MAX_ATTRIBUTE_CHARS = 30


@dataclass(frozen=True)
class ImagePrompt:
    prompt: str
    negative_prompt: str


def build_image_prompt(
    item: ItemFacts | dict[str, Any],
    profile: UserProfile | Any = None,
    personalize: bool = True,
    max_genres: int = 3,
    max_user_attributes: int = 3,
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT,
) -> ImagePrompt:
    """The prompt for one item, personalised by ``profile`` when ``personalize`` is true.

    Item part: ``"a poster for "<title>" (<year>), <genres> film"``. User part, only when
    personalising: the user's visual attributes first (they describe looks), then favourite
    genres the item does not already have (a Western fan's comedy gets a Western touch),
    then favourite tags, up to ``max_user_attributes``. With ``personalize=False`` or an empty
    profile the prompt depends on the item alone: the non-personalised baseline.
    """
    facts = item if isinstance(item, ItemFacts) else ItemFacts.from_row(item)
    title = _cap(facts.display_title, MAX_TITLE_CHARS)
    genres = [_cap(genre, MAX_ATTRIBUTE_CHARS).lower() for genre in facts.genres if _usable(genre)][:max_genres]
    subject = f'a poster for "{title}"' if title else "a film poster"
    if facts.year is not None:
        subject += f" ({facts.year})"
    parts = [subject + (f", {', '.join(genres)} film" if genres else "")]
    if personalize and profile is not None:
        user = UserProfile.coerce(profile)
        own = {genre.lower() for genre in facts.genres}
        styling = [
            *user.visual,
            *(genre for genre in user.genres if genre.lower() not in own),
            *user.tags,
        ]
        styling = _unique(_cap(value, MAX_ATTRIBUTE_CHARS).lower() for value in styling if _usable(value))
        if styling:
            parts.append("styled for a fan of " + ", ".join(styling[:max_user_attributes]))
    parts.append("cinematic lighting, highly detailed")
    return ImagePrompt(prompt=", ".join(parts), negative_prompt=negative_prompt)


def _cap(text: str, limit: int) -> str:
    """Sanitised, quotes removed (they would end the quoted title) and cut at ``limit``."""
    return sanitise_untrusted(str(text).replace('"', ""), limit)


def _usable(value: str) -> bool:
    return bool(sanitise_untrusted(value)) and str(value) != "(no genres listed)"


def _unique(values) -> list[str]:
    return list(dict.fromkeys(values))
