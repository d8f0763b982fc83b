"""Grounding: what a description may claim about an item, and the guard that checks it.

Below both the generators (which write descriptions and regenerate rejected ones) and the
evaluation (which reports the guard's rates), so neither imports the other for it:

- :mod:`genrec.grounding.facts`: :class:`ItemFacts` (an item's metadata) and :class:`UserProfile`;
- :mod:`genrec.grounding.guard`: :class:`GroundingChecker`, closed-world: about the item, fluent and complete,
  every claim supported, every sentence opinion or stated by the facts (docs/descriptions.md);
- :mod:`genrec.grounding.text_safety`: the output filter (blocklist, profanity) and prompt quoting.
"""

from genrec.grounding.facts import ItemFacts, UserProfile, display_title
from genrec.grounding.guard import DescriptionCheck, GroundingChecker, GroundingConfig, GroundingReport
from genrec.grounding.text_safety import OutputFilter, SafetyConfig

__all__ = [
    "DescriptionCheck",
    "GroundingChecker",
    "GroundingConfig",
    "GroundingReport",
    "ItemFacts",
    "OutputFilter",
    "SafetyConfig",
    "UserProfile",
    "display_title",
]
