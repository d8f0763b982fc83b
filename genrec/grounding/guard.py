"""The grounding guard, closed-world: is a description about its item, readable, and does every sentence
state only opinion or what the item's facts hold? docs/descriptions.md is the rubric it is measured by.

A description passes (:meth:`GroundingChecker.check` -> :class:`DescriptionCheck`) only if

1. it is **about the item**: it names the item's title (any case; a leading or trailing article
   is optional, so "the matrix" and "Matrix" name "Matrix, The"; its punctuation too, so "Who
   Framed Roger Rabbit" names "Who Framed Roger Rabbit?"), or it states a fact only this item
   holds (one of its own tags or people). Praise never makes a text about an item, however
   close its embedding is to the facts. It does not talk about the prompt instead ("This is an
   example of...", "the user", "Movie: ...", "[adjective]"): such ``meta`` phrases fail it;
2. it is **fluent** and **complete**: at least ``min_words`` words, the share of known words
   (wordfreq's English list plus the catalogue's vocabulary) >= ``fluency_threshold``, no word
   repeated ``max_repeat`` times in a row, and it ends with a full sentence;
3. every **checkable claim** is supported by the item's metadata, and it asserts nothing the
   guard cannot check (FActScore's atomic claims, Min et al. 2023, reduced to what a catalogue
   holds). Claim kinds:

   - ``title``: another catalogue item's title, written as a title (capitalised, quoted, or a
     word too rare to be an everyday one); a one-word title at a sentence start counts when it
     is not an everyday word ("Jumanji is" is a claim, "Heat is" is not). The item's own title
     and the user's liked titles are supported;
   - ``year``/``decade``/``date``: checked against the item's year (a day or month is unverifiable);
   - ``genre``: a catalogue genre or its usual form ("animated", "sci-fi", "romantic comedy");
   - ``tag``: a catalogue tag that names a topic (a word rare enough not to be everyday speech,
     so "love", "classic" or "boring" claim nothing), supported by the item's own tags;
   - ``person``: a name the catalogue's people columns hold, or one a role introduces
     ("directed by ..."); ``name``: any other proper name (capitalised words: a person, place
     or event). Supported when the item's people or tags name it, otherwise unverifiable;
   - ``rating``: "4.2 out of 5", "8/10", "4 stars", "highly rated": checked against the item's
     mean rating when the catalogue has ratings; IMDb/Rotten Tomatoes scores are unverifiable;
   - ``award``, ``box_office``, ``relation`` (sequel, remake, "based on", "from the makers of",
     where it was released: Netflix, a TV show, a premiere),
     ``number``: unverifiable unless an item tag states it (an "oscar (...)" tag supports an
     Oscar claim; a "sequel" tag or a numbered title supports "sequel");
   - ``seen``: "I'm so glad you enjoyed <the item>" tells the reader they have seen the film
     recommended to them: unsupported (of a liked title it is true, and no claim);
   - ``request``: with the reader's request (:class:`~genrec.requests.ParsedRequest`), a title it
     names is a fact, but its sentence must state a genre the item and that title share; "as you
     asked", "you wanted", "your request" hold only beside a fact of the item that answers the
     request, and never without one. A denied genre ("not a horror film", "no horror") is a
     ``genre`` claim that holds when the item lacks the genre;

4. **every sentence is opinion or stated by the facts** (:meth:`GroundingChecker.unstated`):
   its content words, less those of supported claims, the facts' own words (and the words
   the item's genres imply, :data:`GENRE_WORDS`), stop words and general language
   (:data:`GENERAL_WORDS`: opinion, recommending and film-talk words), number at most
   ``max_unstated``. A word left over is a plot, person, place, role or event nobody gave
   the writer. ``support_threshold`` (off by default, as calibrated) would excuse a sentence
   whose MiniLM cosine to the nearest fact sentence reaches it.

Unverifiable claims are listed apart and never counted as supported: a text that asserts one
fails. Outputs the :class:`~genrec.grounding.text_safety.OutputFilter` blocks fail too.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import groupby, takewhile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from genrec.config import StrictModel
from genrec.data import Dataset
from genrec.grounding.facts import ItemFacts, UserProfile, display_title, named_facts
from genrec.grounding.text_safety import OutputFilter, SafetyConfig
from genrec.io import read_json

if TYPE_CHECKING:
    from genrec.requests import ParsedRequest

CLAIM_KINDS = (
    "title",
    "year",
    "decade",
    "date",
    "genre",
    "tag",
    "person",
    "name",
    "rating",
    "award",
    "box_office",
    "relation",
    "number",
    "seen",
    "request",
)
SUPPORTED, UNSUPPORTED, UNVERIFIABLE = "supported", "unsupported", "unverifiable"

# Words, numbers with decimals ("4.5"), and single punctuation marks, with their offsets.
_TOKEN = re.compile(r"\d+(?:[.,]\d+)?|[^\W\d_]+(?:['’][^\W\d_]+)*|[^\w\s]")
_SENTENCE_END = re.compile(r"[.!?:;\"“”]\s*$")
_YEAR = re.compile(r"^(18[89]\d|19\d\d|20[0-4]\d)$")
_LEADING_ARTICLES = ("the", "a", "an")
_STOPWORDS_TEXT = (
    "a an the and or but of in on at to for from by with as is are was were be been it its this that "
    "these those you your yours he she they we i his her their our my me him them who whom which what "
    "when where why how if then than so not no yes all any some each every one ones there here very just "
    "also about into over after before while during up down out off again once more most much many few "
    "such only own same can will would should could may might must do does did doing have has had having"
)
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
_MONTHS_TEXT = (
    "january february march april may june july august september october november december jan feb mar "
    "apr jun jul aug sep sept oct nov dec"
)
MONTHS = _MONTHS_TEXT.split()
_WEEKDAYS_TEXT = "monday tuesday wednesday thursday friday saturday sunday"
WEEKDAYS = frozenset(_WEEKDAYS_TEXT.split())
_NUMBER_WORDS_TEXT = (
    "two three four five six seven eight nine ten eleven twelve dozen hundred hundreds thousand thousands"
)
NUMBER_WORDS = frozenset(_NUMBER_WORDS_TEXT.split())
# Everyday forms of MovieLens's genres; a catalogue genre not listed here matches only by its name.
GENRE_FORMS = {
    "Action": ("action", "action-packed", "action packed"),
    "Adventure": ("adventure", "adventures"),
    "Animation": ("animation", "animated", "cartoon"),
    "Children": ("children's film", "children's movie", "kids' film", "kids' movie", "family film", "family movie"),
    "Comedy": ("comedy", "comedies", "comedic", "rom-com", "romcom"),
    "Crime": ("crime",),
    "Documentary": ("documentary", "documentaries"),
    "Drama": ("drama", "dramas"),
    "Fantasy": ("fantasy",),
    "Film-Noir": ("film-noir", "film noir", "noir"),
    "Horror": ("horror",),
    "IMAX": ("imax",),
    "Musical": ("musical", "musicals"),
    "Mystery": ("mystery", "mysteries"),
    "Romance": ("romance", "romantic", "rom-com", "romcom", "love story"),
    "Sci-Fi": ("sci-fi", "scifi", "science fiction", "science-fiction"),
    "Thriller": ("thriller", "thrillers"),
    "War": ("war film", "war movie", "war drama", "war epic", "war story"),
    "Western": ("western", "westerns"),
}
# Words that make a tag an opinion about a film rather than a topic the metadata states.
_OPINION_TEXT = (
    "good great best better bad worst awesome amazing beautiful beautifully brilliant classic clever cool "
    "dark disappointing dull emotional engrossing entertaining epic excellent fantastic favorite favourite "
    "fun funny gorgeous heartwarming hilarious interesting masterpiece moving must nice original overrated "
    "underrated quotable stylish stylized stunning touching visually watch see boring slow acting cast "
    "soundtrack dialogue music cinematography ending plot story scenery visuals effects special performance "
    "performances storytelling pacing atmospheric big provoking gritty suspenseful"
)
OPINION_WORDS = frozenset(_OPINION_TEXT.split())
# Words a description may use when the item has the genre: they restate it, they add no fact.
GENRE_WORDS = {
    "Action": ("action", "fight", "fights", "explosive", "stunts"),
    "Adventure": ("adventure", "adventures", "adventurous", "journey", "quest"),
    "Animation": ("animated", "animation", "cartoon"),
    "Children": ("kids", "children", "family", "families", "young"),
    "Comedy": ("funny", "humor", "humour", "humorous", "laugh", "laughs", "laughter", "comic", "comedic", "witty"),
    "Crime": ("crime", "criminal", "criminals", "gangster", "gangsters"),
    "Documentary": ("documentary", "real"),
    "Drama": ("drama", "dramatic"),
    "Fantasy": ("fantasy", "magic", "magical", "fantastical"),
    "Horror": ("horror", "scary", "terrifying", "frightening", "creepy", "chilling", "fear"),
    "Musical": ("music", "musical", "songs", "singing", "dance", "dancing"),
    "Mystery": ("mystery", "mysterious", "puzzle"),
    "Romance": ("romance", "romantic", "love"),
    "Sci-Fi": ("science", "fiction", "futuristic", "future"),
    "Thriller": ("thriller", "thrilling", "suspense", "suspenseful", "tense", "tension"),
    "War": ("war", "soldiers", "battle"),
    "Western": ("western", "cowboy", "cowboys"),
}
# Evaluative, recommending and film-talk words: they say how good a film is or to whom it appeals, or
# name parts every film has; they state no fact about this one. Found on the calibration part of the
# labelled set (docs/descriptions.md): what stays outside is a plot, person, place, role or event.
_GENERAL_TEXT = (
    # opinion
    "good great best better bad worst awesome amazing beautiful brilliant classic clever cool dark "
    "emotional engaging engrossing entertaining excellent fantastic favorite favourite fun gorgeous "
    "heartwarming interesting masterpiece masterclass moving nice original stylish stunning touching "
    "captivating compelling fascinating gripping exciting enjoyable delightful charming powerful "
    "memorable unique unforgettable remarkable incredible impressive perfect wonderful superb outstanding "
    "refreshing thoughtful poignant intense immersive iconic timeless beloved inspiring uplifting fresh "
    "creative imaginative smart rich deep complex layered nuanced crafted solid strong lighthearted light "
    "hearted heartfelt sweet fine wild thought provoking breathtaking breathless legendary epic hilarious "
    "absolute absolutely truly really true special extraordinary gritty edge seat awe indelible mark "
    "worth worthy enjoy enjoyed enjoying enjoyment treat blast gem joy pleasure delight satisfying wonder "
    "magnificent masterful depth complexity ordinary intriguing authentic relatable sharp greatest "
    "unbeatable unexpected talented example simple huge extra shocking underbelly suspenseful"
    # recommending, addressing the reader
    " recommend recommendation recommended must see watch watching watched viewing check checking miss "
    "sure definitely certainly highly try give chance pick choice option addition list add love like "
    "people describe change usual picks fan fans lover lovers viewer viewers audience audiences everyone "
    "anyone someone somebody whoever reader readers glad happy hope thrilled excited share think say mind "
    "mood looking look want wants need find found go going come coming keep leave make makes made get "
    "gets take takes bring brings offer offers feel feels felt know tell let seen saw consider appeal "
    "appeals suit suits"
    # the frames of the data-to-text generator (genrec.generators.text_facts) and the template: wording, no fact
    " step away recent words tag tags tagged include includes taste liking fits matches another listed released"
    # answering the reader's request ("as you asked", "within the years you asked for"): the claim is the fact beside it
    " ask asked request requested wanted years"
    " warm rousing witty funny eye opening inventive scary lively tender tense"
    # film talk: parts every film has
    " movie movies film films flick cinema cinematic story stories storytelling tale tales plot storyline "
    "narrative characters character cast performance performances acting actors scenes scene moments "
    "moment experience ride visuals visual visually effects soundtrack score dialogue direction "
    "cinematography genre genres style tone atmosphere atmospheric themes theme elements element blend "
    "mix combination combines combine combined touch turns heart charm wit laughs excitement "
    "thrills thrill entertainment screen way ways kind sort type piece work world end ending time times"
    # everyday function-like words
    " also just quite especially particularly even still yet ever never always together whole own new "
    "little lot bit something anything everything nothing thing things much more both either perhaps "
    "maybe sometimes often already well alike full plenty sense across around within without another "
    "other others same different next first one ones all every through since due among itself between "
    "because whether else away back until too rather indeed actually fact entirely possible single "
    "multiple being become becomes use used using create creates ability potential impact context details "
    "focus feature features fit shine reminder opinion careful terms hear soon wait remember suggest "
    "eager seemingly accessible explore explores exploring follows set released"
)
GENERAL_WORDS = frozenset(_GENERAL_TEXT.split())
# Contractions are function words too ("it's", "you'll"), whatever their stem.
_CONTRACTIONS_TEXT = (
    "it's i'm you'll you're don't can't that's there's i've you've won't isn't doesn't let's we're they're "
    "i'd you'd i'll he's she's what's here's who's wouldn't couldn't shouldn't didn't aren't wasn't"
)
_CONTRACTIONS = frozenset(_CONTRACTIONS_TEXT.split())
# Genre names whose plain sense is common: claims only when capitalised mid-sentence or in a GENRE_FORMS phrase.
PLAIN_SENSE_GENRES = frozenset({("children",), ("war",)})
_AWARD = re.compile(
    r"\b(oscars?|academy awards?|golden globes?|baftas?|emmys?|grammys?|palme d['’]or|cannes|sundance|"
    r"berlinale|venice film festival|award[- ]winning|awards?|nominat\w*|best picture|best actor|best actress|"
    r"best director|critically acclaimed|acclaimed|accolades?)\b",
    re.IGNORECASE,
)
_BOX_OFFICE = re.compile(
    r"(\bbox[- ]office\b|\bgross(?:ed|ing|es)?\b|\bhighest[- ]grossing\b|\bblockbuster\b|\bmillions?\b|\bbillions?\b|"
    r"\$\s?\d[\d,.]*|\bbest[- ]?selling\b|\bsold[- ]out\b|\bbudget\b)",
    re.IGNORECASE,
)
_RELATION = re.compile(
    r"\b(sequel|prequel|remake|reboot|spin[- ]?off|follow[- ]up|trilogy|franchise|based on|adapted from|"
    r"adaptation of|adaptation|from the (?:makers|creators|director|studio|team) (?:of|behind)|true story|"
    r"inspired by)\b",
    re.IGNORECASE,
)
# Scale of a stated rating: "4.2 out of 5", "8/10", "4.5 stars", "rated 4", "85%".
_RATING = re.compile(
    r"(?:\b(?:rated|rating of|scored?|score of)\s+)?(?P<value>\d+(?:\.\d+)?)[\s-]*"
    r"(?:(?:/|out of)\s*(?P<scale>5|10|100)\b|(?P<stars>stars?)\b|(?P<percent>%))"
    r"|\b(?:rated|rating of|scored?|score of)\s+(?P<bare>\d+(?:\.\d+)?)\b",
    re.IGNORECASE,
)
# Text about the prompt or the task rather than the item: a small model echoing its instructions.
_META = re.compile(
    r"\b(this (?:is an example|is a piece|piece|item|summary|description|text)|the user(?:'s)?|as an ai|"
    r"tag ?lines?|metadata|the item(?:'s)?|favou?rite genres|liked titles|the description|"
    r"(?:this|the) (?:product|prompt)|here is (?:a|the) description|the reader(?:['’]s)?|favou?rite tags|"
    r"movies the reader liked|two short sentences)\b"
    # Field labels ("Movie: ...", "Director: ...") and placeholders ("[adjective]") written back. The
    # template generator's own "Genres: ..." sentence is prose that lists true genres, so not "genres:".
    r"|\b(?:movie|genre|tags?|actor|director|writer|rating|released?)\s*:|\[[a-z ]+\]",
    re.IGNORECASE,
)
# A description ends with a full sentence; anything else was cut by the token cap or trails off.
_COMPLETE = re.compile(r"[.!?][\"'”’)]*$")
# Where or how it was released or shown: nothing in the metadata says.
_RELEASE = re.compile(
    r"\b(netflix|amazon(?: prime)?|hulu|hbo|disney\+|prime video|apple tv|youtube|streaming|on dvd|blu-ray|"
    r"tv show|tv series|television series|mini-?series|broadway|premiered|world premiere)\b",
    re.IGNORECASE,
)
_RELATIVE_TIME = re.compile(r"\b((?:last|this|next) (?:year|month|week|summer|winter)|recently|nowadays)\b", re.I)
_RATING_SITE = re.compile(r"\b(imdb|rotten tomatoes|metacritic|letterboxd|tomatometer)\b", re.IGNORECASE)
_HIGHLY_RATED = re.compile(r"\b(highly[- ]rated|top[- ]rated|best[- ]rated|five[- ]star|5[- ]star)\b", re.IGNORECASE)
_PERSON_TRIGGER = re.compile(
    r"\b(?:directed by|starring|stars|written by|produced by|voiced by|director|actor|actress|filmmaker)\s*$",
    re.IGNORECASE,
)
_TRAILING_ARTICLE_KEY = re.compile(r",\s*(?:the|a|an)\s*$", re.IGNORECASE)
# The reader told they have seen the film: true of a liked title, false of the recommended item.
_SEEN = re.compile(
    r"\byou(?:['’]ve| have)?\s+(?:already\s+|really\s+|just\s+)?(?:enjoyed|loved|liked|watched|seen|saw|adored)\b",
    re.IGNORECASE,
)
# The reader's request, referred to: true only beside a fact of the item that answers it (a request claim).
_ASKED = re.compile(
    r"\b(?:as you (?:asked|requested|wanted)|you (?:asked|requested|wanted)(?: for| about)?|your request)\b",
    re.IGNORECASE,
)
# Words that deny the genre after them ("no horror", "not a horror film", "without Horror", "neither ... nor").
_NEGATIONS = frozenset({"no", "not", "without", "nor", "neither", "never", "isn't"})
_NUMBERED_TITLE = re.compile(r"(?:\s(?:[2-9]|II|III|IV|V|VI)|:?\s(?:part|chapter|episode)\s\w+)$", re.IGNORECASE)


class GroundingConfig(StrictModel):
    """What the guard checks, its calibrated thresholds and how hard the LLM generator retries."""

    max_retries: int = Field(2, ge=0, le=10, description="regenerations of a description that fails the guard")
    check: tuple[str, ...] = Field(CLAIM_KINDS, description=f"claim kinds to check, a subset of {CLAIM_KINDS}")
    people_columns: tuple[str, ...] = Field(
        ("people", "cast", "director", "directors", "actors"),
        description="item columns listing people; those present in the catalogue are used",
    )
    min_title_chars: int = Field(4, ge=1, description="shorter one-word titles ('It', 'Up') are claims only in quotes")
    everyday_zipf: float = Field(
        4.0, description="wordfreq Zipf frequency from which a word is everyday speech, not a title or topic"
    )
    topic_zipf: float = Field(
        3.5, description="a tag is a topic claim when one of its non-genre words is rarer than this Zipf frequency"
    )
    known_zipf: float = Field(2.0, description="wordfreq Zipf frequency from which a word counts as known (fluency)")
    max_ngram: int = Field(16, ge=1, le=64, description="longest title/tag (in tokens) recognised in a text")
    min_words: int = Field(4, ge=1, description="a fluent description has at least this many words")
    fluency_threshold: float = Field(
        0.53, ge=0.0, le=1.0, description="least share of known words (calibrated on the labelled calibration split)"
    )
    max_repeat: int = Field(3, ge=2, description="a word repeated this many times in a row is not fluent")
    max_unstated: int = Field(
        0, ge=0, description="content words a sentence may hold that no fact states (calibrated on the labelled set)"
    )
    support_encoder: str | None = Field(
        "minilm", description="encoder preset for support_threshold's sentence similarity"
    )
    support_threshold: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description="a sentence with unstated words still passes at this cosine to the nearest fact sentence "
        "(None: never; calibrated on the labelled set)",
    )
    rating_tolerance: float = Field(0.3, ge=0.0, description="a stated rating (5-star scale) may differ this much")
    high_rating: float = Field(4.0, description="mean rating from which 'highly rated' is supported")
    safety: SafetyConfig = Field(default_factory=SafetyConfig, description="the output filter")

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
    status: str  # SUPPORTED, UNSUPPORTED or UNVERIFIABLE

    @property
    def supported(self) -> bool:
        return self.status == SUPPORTED

    def __str__(self) -> str:
        return f"{self.kind}:{self.text}"


@dataclass
class DescriptionCheck:
    """The guard's verdict on one description (see the module docstring); ``passed`` needs every check."""

    passed: bool
    about_item: bool
    fluent: bool
    complete: bool = True  # ends with a full sentence
    unstated: list[str] = field(default_factory=list)  # per failing sentence, its content words no fact states
    unsupported: list[str] = field(default_factory=list)  # "kind:claim" the metadata contradicts
    unverifiable: list[str] = field(default_factory=list)  # "kind:claim" the metadata cannot confirm
    blocked: list[str] = field(default_factory=list)  # what the output filter found
    names_title: bool = False
    similarity: float | None = None  # least cosine of a sentence with unstated words to the facts, when consulted
    known_word_share: float = 0.0
    meta: list[str] = field(default_factory=list)  # phrases about the prompt, not the item: not about it

    def reasons(self) -> list[str]:
        """Why it failed, as ``kind:detail`` strings (empty when it passed)."""
        return [
            *(f"blocked:{term}" for term in self.blocked),
            *([] if self.fluent else ["not_fluent:"]),
            *([] if self.complete else ["incomplete:"]),
            *self.unsupported,
            *self.unverifiable,
            *(f"unstated:{words}" for words in self.unstated),
            *(f"meta:{phrase}" for phrase in self.meta),
            *([] if self.about_item or self.meta else ["off_topic:"]),
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "about_item": self.about_item,
            "fluent": self.fluent,
            "complete": self.complete,
            "unstated": list(self.unstated),
            "unsupported": list(self.unsupported),
            "unverifiable": list(self.unverifiable),
            "blocked": list(self.blocked),
            "names_title": self.names_title,
            "similarity": self.similarity,
            "known_word_share": self.known_word_share,
            "meta": list(self.meta),
        }


@dataclass
class GroundingReport:
    """Counts over a set of descriptions: the guard's and the output filter's audit trail.

    ``llm_first_try`` / ``regenerated`` / ``fallback`` / ``template`` / ``blocked`` count final
    sources; ``llm_attempts`` and ``rejected_attempts`` count every LLM try;
    ``rejection_reasons`` counts the reasons of rejected tries by kind; ``blocked_outputs`` keeps
    every blocked text. :meth:`rates` gives the honest figures (LLM pass rate before any
    fallback, regeneration, fallback and final rates, separately).
    """

    descriptions: int = 0
    template: int = 0  # produced by the template generator directly
    llm_first_try: int = 0  # LLM text accepted as generated
    regenerated: int = 0  # LLM text accepted after at least one rejected attempt
    fallback: int = 0  # every LLM attempt rejected: the template text was used
    blocked: int = 0  # no text survived the output filter (description left empty)
    llm_attempts: int = 0
    rejected_attempts: int = 0
    reused: int = 0  # rows taken from an earlier run (resumed), counted in the figures above
    rejection_reasons: dict[str, int] = field(default_factory=dict)  # kind -> count over rejected attempts
    blocked_outputs: list[dict[str, Any]] = field(default_factory=list)  # BlockedOutput.to_dict() of each

    def count_reasons(self, reasons: Iterable[str]) -> None:
        for reason in reasons:
            kind = reason.split(":", 1)[0]
            self.rejection_reasons[kind] = self.rejection_reasons.get(kind, 0) + 1

    def merge(self, other: GroundingReport) -> None:
        for name in ("descriptions", "template", "llm_first_try", "regenerated", "fallback", "blocked", "reused"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.llm_attempts += other.llm_attempts
        self.rejected_attempts += other.rejected_attempts
        for kind, count in other.rejection_reasons.items():
            self.rejection_reasons[kind] = self.rejection_reasons.get(kind, 0) + count
        known = {_blocked_key(record) for record in self.blocked_outputs}
        self.blocked_outputs.extend(r for r in other.blocked_outputs if _blocked_key(r) not in known)

    def rates(self) -> dict[str, Any]:
        """Shares of all descriptions; ``llm_pass_rate`` is the LLM's own first-try rate, before any fallback."""
        n = self.descriptions
        llm = self.llm_first_try + self.regenerated + self.fallback  # descriptions the LLM was asked for

        def share(count: int, total: int) -> float | None:
            return count / total if total else None

        if n == 0:
            mode = "none"
        elif llm == 0:
            mode = "template only: no language model was used; every description is the template's"
        else:
            mode = "llm"
        return {
            "mode": mode,
            "llm_pass_rate": share(self.llm_first_try, llm),
            "regeneration_rate": share(self.regenerated, llm),
            "pass_rate_after_regeneration": share(self.llm_first_try + self.regenerated, llm),
            "fallback_rate": share(self.fallback, llm),
            "template_rate": share(self.template, n),
            # Template text shown, written directly or as the LLM's fallback: what the reader reads that no model wrote.
            "template_share": share(self.template + self.fallback, n),
            "blocked_rate": share(self.blocked, n),
            "attempt_pass_rate": share(self.llm_attempts - self.rejected_attempts, self.llm_attempts),
        }

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
            "reused": self.reused,
            "rejection_reasons": dict(sorted(self.rejection_reasons.items())),
            "rates": self.rates(),
            "blocked_outputs": list(self.blocked_outputs),
        }


# The default guard's measured precision on the labelled test part, written by benchmarks/bench_guard.py.
GUARD_PRECISION_FILE = Path(__file__).with_name("guard_precision.json")


def measured_precision() -> dict[str, Any] | None:
    """What "accepted" is worth: the default guard's precision on the labelled test part, with its provenance.

    None when the package ships no measurement (benchmarks/bench_guard.py --write-precision makes one).
    """
    if not GUARD_PRECISION_FILE.is_file():
        return None
    return read_json(GUARD_PRECISION_FILE)


def item_ratings(dataset: Dataset) -> dict[Any, float]:
    """Item id -> mean rating over the interactions that have one (what rating claims are checked against)."""
    rated = dataset.interactions.dropna(subset=["rating"])
    means = rated.groupby("item_idx")["rating"].mean()
    ids = dataset.items["item_id"].to_numpy()
    return {ids[int(index)]: float(mean) for index, mean in means.items()}


def _blocked_key(record: Mapping[str, Any]) -> tuple:
    return (str(record.get("user_id")), str(record.get("item_id")), record.get("stage"), record.get("text"))


@lru_cache(maxsize=262144)
def zipf(word: str) -> float:
    """wordfreq's Zipf frequency of a lower-cased English word (0: unknown); 7 for a stop word."""
    from wordfreq import zipf_frequency

    return 7.0 if word in STOPWORDS else zipf_frequency(word, "en")


def _strip_article(words: tuple[str, ...]) -> tuple[str, ...]:
    return words[1:] if len(words) > 1 and words[0] in _LEADING_ARTICLES else words


def _lower_words(text: str) -> tuple[str, ...]:
    return tuple(word.lower() for word in _TOKEN.findall(text))


def title_keys(title: str) -> set[tuple[str, ...]]:
    """Lower-cased word tuples a text may use to name ``title``: as stored, as displayed, without a leading article.

    "Matrix, The" -> ("matrix", ",", "the"), ("the", "matrix"), ("matrix",); "Who Framed Roger
    Rabbit?" also without its punctuation; an alternative title in parentheses ("Twelve Monkeys
    (a.k.a. 12 Monkeys)") gives its own keys too.
    """
    variants = {title, display_title(title)}
    for alternative in re.findall(r"\((?:a\.k\.a\.\s*)?([^()]+)\)", title):
        variants |= {alternative, display_title(alternative)}
    variants |= {unicodedata.normalize("NFKC", variant) for variant in variants}  # "½" as sanitised text writes it
    keys = set()
    for variant in variants:
        words = _lower_words(variant)
        # Texts drop a title's punctuation ("Who Framed Roger Rabbit is ..."): its words alone name it too.
        # A stored trailing article ("Matrix, The") is not how anyone writes it without the comma.
        bare = () if _TRAILING_ARTICLE_KEY.search(variant) else tuple(word for word in words if word[:1].isalnum())
        for key in (words, bare):
            if key:
                keys |= {key, _strip_article(key)}
    return keys


def fact_sentences(item: ItemFacts) -> list[str]:
    """The item's facts as short sentences (title and year, genres, tags, people): what sentences are compared to."""
    sentences = [item.display_title + (f" ({item.year})" if item.year is not None else "")]
    for label, values in (("genres", item.genres), ("tags", item.tags[:12]), ("people", item.people)):
        if values:
            sentences.append(f"{item.display_title}, {label}: {', '.join(values)}")
    if item.description:  # a catalogue's own text about the item (Amazon's description and features)
        sentences.append(item.description)
    return sentences


def stem(word: str) -> str:
    """A crude English stem ("loved", "loves", "loving" -> "lov"; "stories" -> "story"), for text and lexicon alike."""
    word = word.lower().replace("’", "'")
    word = word.removesuffix("'s")
    for suffix, replacement in (("ies", "y"), ("ing", ""), ("ed", ""), ("ly", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)] + replacement
            break
    return word.removesuffix("e") if len(word) > 3 else word


GENERAL_STEMS = frozenset(stem(word) for word in GENERAL_WORDS)


def _unstated(word: str, stated: frozenset[str]) -> bool:
    """Whether ``word`` is content no fact states: not a stop word, not general language, not in ``stated``."""
    lower = word.lower().replace("’", "'")
    if lower in STOPWORDS or lower in _CONTRACTIONS:
        return False
    root = stem(lower)
    return root not in GENERAL_STEMS and root not in stated


@dataclass
class _Span:
    start: int  # token index
    length: int
    kind: str
    text: str
    status: str
    fact: str = ""  # the catalogue genre a genre claim names
    negated: bool = False  # a genre claim that denies the genre ("not a horror film")


class GroundingChecker:
    """Claim extraction and checking against one catalogue (vocabularies built once, reused).

    ``ratings`` maps item id -> mean rating (5-star scale) for rating claims; ``similarity`` is a
    function ``(sentences, fact sentences) -> cosines``, row-paired (default: the ``support_encoder``
    preset, loaded on first use, only when ``support_threshold`` is set and a sentence needs it).
    """

    def __init__(
        self,
        items: pd.DataFrame,
        config: GroundingConfig | None = None,
        ratings: Mapping[Any, float] | None = None,
        similarity: Callable[[Sequence[str], Sequence[str]], np.ndarray] | None = None,
    ):
        self.config = config or GroundingConfig()
        self.catalogue = items  # rows are item indices: where a request's named titles are looked up
        self.people_columns = tuple(c for c in self.config.people_columns if c in items.columns)
        facts = [ItemFacts.from_row(row, self.people_columns) for row in items.to_dict("records")]
        self.ratings = dict(ratings or {})
        self._similarity = similarity
        self.titles: dict[tuple[str, ...], str] = {}
        for item in facts:
            for key in title_keys(item.title):
                if len(key) <= self.config.max_ngram:
                    self.titles.setdefault(key, item.title)
        catalogue_genres = {g for item in facts for g in item.genres}
        self.genres: dict[tuple[str, ...], str] = {}
        for genre in sorted(catalogue_genres):
            for form in (genre, *GENRE_FORMS.get(genre, ())):
                self.genres.setdefault(_lower_words(form), genre)
        self.people = {_lower_words(p): p for item in facts for p in item.people}
        self.tags: dict[tuple[str, ...], str] = {}
        for item in facts:
            for tag in item.tags:
                key = _lower_words(tag)
                if key and len(key) <= self.config.max_ngram and key not in self.genres and self._topical(key):
                    self.tags.setdefault(key, tag)
                    if key[-1].isalpha() and not key[-1].endswith("s"):
                        self.tags.setdefault((*key[:-1], key[-1] + "s"), tag)  # "dinosaurs" for "dinosaur"
        title_words = {word for item in facts for word in _lower_words(item.title) if word.isalpha()}
        self.output_filter = OutputFilter(self.config.safety, frozenset(title_words))
        self.vocabulary = frozenset(
            word
            for item in facts
            for text in (item.title, *item.genres, *item.tags, *item.people)
            for word in _lower_words(text)
            if word.isalpha()
        )

    def _topical(self, key: tuple[str, ...]) -> bool:
        """A tag names a topic ("time travel", "dinosaur", "pixar") rather than an opinion ("great acting", "fun").

        Opinion words (:data:`OPINION_WORDS`) make a tag an opinion; otherwise a tag of several
        words is a topic, and a one-word tag is one when it is rarer than everyday speech.
        """
        genre_words = {word for form in self.genres for word in form}
        words = [word for word in key if word.isalpha() and word not in STOPWORDS]
        if not words or any(word in OPINION_WORDS for word in words):
            return False
        if len(words) > 1:
            return any(word not in genre_words for word in words)
        return words[0] not in genre_words and zipf(words[0]) < self.config.topic_zipf

    # ---------------------------------------------------------------- claims
    def claims(
        self, text: str, item: ItemFacts, profile: UserProfile | None = None, request: ParsedRequest | None = None
    ) -> list[Claim]:
        """Every checkable claim in ``text``, in order of appearance, each supported, unsupported or unverifiable.

        ``request``: the reader's request the text may answer (its named titles are then facts too).
        """
        check = set(self.config.check)
        spans = self._spans(text, item, profile, request)[1]
        return [Claim(s.kind, s.text, s.status) for s in spans if s.kind in check]

    def _spans(
        self, text: str, item: ItemFacts, profile: UserProfile | None = None, request: ParsedRequest | None = None
    ) -> tuple[list[re.Match], list[_Span]]:
        """The tokens of ``text`` and its claims as token spans, in order (every kind, switched off or not)."""
        profile = profile or UserProfile()
        named = [] if request is None else named_facts(request, self.catalogue)
        matches = list(_TOKEN.finditer(text))
        words = tuple(m.group(0) for m in matches)
        lower = tuple(w.lower() for w in words)
        starts = [m.start() for m in matches]
        sentence_start = [i == 0 or bool(_SENTENCE_END.search(text[: starts[i]])) for i in range(len(words))]
        own = {key for title in (item.title,) for key in title_keys(title)}
        liked = {key for title in profile.titles for key in title_keys(title)}
        item_tags = {_lower_words(t) for t in item.tags}
        item_people = {_lower_words(p) for p in item.people} | item_tags
        item_genres = set(item.genres)
        tag_text = " ".join(t.lower() for t in item.tags)
        spans: list[_Span] = []
        covered = [False] * len(words)

        def add(start: int, length: int, kind: str, status: str, fact: str = "", negated: bool = False) -> None:
            written = text[starts[start] : matches[start + length - 1].end()]
            spans.append(_Span(start, length, kind, f"not {written}" if negated else written, status, fact, negated))
            for i in range(start, start + length):
                covered[i] = True

        # The item's own title, the user's liked titles, the titles the reader's request names and the
        # item's own tags, written out, are supported as a whole: the words inside them claim nothing else
        # ("oscar (best picture)", "1990s" as a tag). A named title must still link by a shared genre.
        asked = {key: index for index, other in enumerate(named) for key in title_keys(other.title)}
        allowed_kinds = {key: "tag" for key in item_tags if key} | {key: "title" for key in own | liked | set(asked)}
        own_at: set[int] = set()  # where the item's own title is written
        asked_at: dict[int, int] = {}  # where a title the request names is written -> its index in ``named``
        position = 0
        while position < len(words):
            title = self._longest(lower, position, self.titles)
            allowed = self._longest(lower, position, allowed_kinds, max(map(len, allowed_kinds), default=1))
            if allowed in self.genres and allowed_kinds[allowed] == "tag" and _negated(lower, position, None):
                allowed = None  # "not a horror film" denies a genre, whatever the tags say: checked as a genre below
            if allowed is not None and (title is None or len(title) <= len(allowed)):
                if allowed in own and allowed not in liked:
                    own_at.add(position)
                if allowed in asked and allowed not in own | liked:
                    asked_at[len(spans)] = asked[allowed]
                kind = allowed_kinds[allowed]
                # A tag that spells a genre ("horror") states that genre too: a named title may link by it.
                add(position, len(allowed), kind, SUPPORTED, self.genres.get(allowed, "") if kind == "tag" else "")
                position += len(allowed)
                continue
            # A title that is also a genre, tag or name ("Romance", "Casino") is read as that.
            # So is one that spells an award, a box-office or relation phrase or a review site ("Oscar").
            if title is not None and (
                any(title in vocabulary for vocabulary in (self.genres, self.tags, self.people))
                or any(p.fullmatch(" ".join(title)) for p in (_AWARD, _BOX_OFFICE, _RELATION, _RATING_SITE))
            ):
                title = None
            if title is not None and self._written_as_title(words, position, len(title), sentence_start[position]):
                add(position, len(title), "title", UNSUPPORTED)
                position += len(title)
                continue
            position += 1

        self._regex_claims(text, matches, covered, add, item, tag_text)

        last_denied: int | None = None  # last token of the latest denied genre: "not a horror film or a thriller"
        position = 0
        while position < len(words):
            if covered[position]:
                position += 1
                continue
            person = self._longest(lower, position, self.people)
            genre = self._longest(lower, position, self.genres)
            tag = self._longest(lower, position, self.tags)
            best = max((m for m in (person, genre, tag) if m), key=len, default=None)
            if best is not None and not any(covered[position : position + len(best)]):
                written = words[position : position + len(best)]
                if best == person:
                    add(position, len(best), "person", SUPPORTED if best in item_people else UNVERIFIABLE)
                elif (
                    best == genre
                    and best in PLAIN_SENSE_GENRES
                    and not (written[0][:1].isupper() and not sentence_start[position])
                ):
                    pass  # "for children", "a war hero": the genre only when written as a name ("Children", "War")
                elif best == genre:
                    has = self.genres[best] in item_genres
                    if _negated(lower, position, last_denied):
                        # A denial holds when the item lacks the genre; a catalogue listing none cannot say.
                        status = UNVERIFIABLE if not item_genres else UNSUPPORTED if has else SUPPORTED
                        add(position, len(best), "genre", status, self.genres[best], negated=True)
                        last_denied = position + len(best) - 1
                    else:
                        add(position, len(best), "genre", SUPPORTED if has else UNSUPPORTED, self.genres[best])
                else:
                    stated = _lower_words(self.tags[best])
                    supported = stated in item_tags or self.tags[best].lower() in {g.lower() for g in item.genres}
                    add(position, len(best), "tag", SUPPORTED if supported else UNSUPPORTED)
                position += len(best)
                continue
            if _YEAR.match(words[position]):
                add(position, 1, "year", SUPPORTED if item.year == int(words[position]) else UNSUPPORTED)
            position += 1

        self._names(words, lower, starts, text, sentence_start, covered, add, item_people, item)
        # "I'm so glad you enjoyed <the item>": the reader is being recommended it, so has not seen it.
        for m in _SEEN.finditer(text):
            first, end = bisect_left(starts, m.start()), bisect_left(starts, m.end())
            after = list(takewhile(lambda i: words[i] not in ",.!?;:", range(end, min(end + 4, len(words)))))
            if any(i in own_at for i in after) or (after and lower[after[0]] in ("it", "this")):
                spans.append(_Span(first, end - first, "seen", m.group(0), UNSUPPORTED))
        self._request_claims(text, matches, spans, item, request, named, asked_at)
        spans.sort(key=lambda span: span.start)
        return matches, spans

    def _request_claims(
        self,
        text: str,
        matches: Sequence[re.Match],
        spans: list[_Span],
        item: ItemFacts,
        request: ParsedRequest | None,
        named: Sequence[ItemFacts],
        asked_at: Mapping[int, int],
    ) -> None:
        """Claims about the reader's request, sentence by sentence (the sentence is what a reader links).

        - A title the request names ("like Alien") is a link: its sentence must state a genre the
          item and that title both have, else the title becomes an unsupported ``request`` claim.
        - "as you asked", "the comedy you wanted", "your request" (``request`` claims) hold only
          when a request was made and their sentence states a fact of the item that answers it: a
          wanted genre, a denied genre the request excludes, its year inside the requested years, or
          a linked named title; and no year or decade outside the requested years.
        """
        starts = [m.start() for m in matches]
        in_title = {
            i for span in spans if span.kind in ("title", "tag") for i in range(span.start, span.start + span.length)
        }
        sentence_of, sentence = [], 0
        for index, match in enumerate(matches):
            sentence_of.append(sentence)
            sentence += match.group(0) in ".!?;" and index not in in_title  # "Airplane!" ends no sentence
        supported = [span for span in spans if span.status == SUPPORTED]
        stated: dict[int, set[str]] = {}  # sentence -> the item's genres it states
        for span in supported:
            if span.kind in ("genre", "tag") and span.fact and not span.negated:
                stated.setdefault(sentence_of[span.start], set()).add(span.fact)
        linked: set[int] = set()  # sentences that link a named title by a genre both have
        for position, index in asked_at.items():
            span = spans[position]
            if stated.get(sentence_of[span.start], set()) & set(named[index].genres):
                linked.add(sentence_of[span.start])
            else:
                span.kind, span.status = "request", UNSUPPORTED
        years = None if request is None else request.years
        in_range = years is not None and item.year is not None and years[0] <= item.year <= years[1]
        for m in _ASKED.finditer(text):
            first, end = bisect_left(starts, m.start()), bisect_left(starts, m.end())
            here = [s for s in supported if sentence_of[s.start] == sentence_of[first]]
            dated = [s for s in here if s.kind in ("year", "decade")]
            answers = sentence_of[first] in linked or bool(dated and in_range)
            if request is not None:
                answers |= any(
                    s.kind in ("genre", "tag") and not s.negated and s.fact in request.want_genres for s in here
                )
                answers |= any(s.kind == "genre" and s.negated and s.fact in request.avoid_genres for s in here)
            out_of_range = bool(dated) and years is not None and not in_range
            status = SUPPORTED if request is not None and answers and not out_of_range else UNSUPPORTED
            spans.append(_Span(first, end - first, "request", m.group(0), status))

    def _written_as_title(self, words: Sequence[str], start: int, length: int, at_sentence_start: bool) -> bool:
        """Whether the words at ``start`` are used as a title, not as everyday words that spell one."""
        written = words[start : start + length]
        quoted = (start > 0 and words[start - 1] in "\"“'‘") or (
            start + length < len(words) and words[start + length] == "("
        )
        significant = [w for w in written if w.isalpha() and w.lower() not in STOPWORDS]
        if not significant:
            return quoted
        everyday = [zipf(w.lower()) >= self.config.everyday_zipf for w in significant]
        if length == 1 or len(significant) == 1:
            word = significant[0]
            neighbours = [words[i] for i in (start - 1, start + length) if 0 <= i < len(words)]
            if not quoted and any(
                _name_word(w, w.lower()) and zipf(w.lower()) < self.config.everyday_zipf for w in neighbours
            ):
                return False  # part of a name: "Keanu Reeves" is a person, not the film "Keanu"
            if len(word) < self.config.min_title_chars and not quoted:
                return False
            if quoted:
                return True
            if not word[:1].isupper():
                return not everyday[0] and zipf(word.lower()) < self.config.known_zipf
            return not everyday[0] or not at_sentence_start
        capitalised = [w[:1].isupper() for w in significant]
        if all(capitalised):
            return True
        # Written in lower case: a title only when its rare words make the phrase unmistakable.
        return quoted or not any(everyday)

    def _regex_claims(self, text, matches, covered, add, item: ItemFacts, tag_text: str) -> None:
        """Dates, decades, ratings, awards, box office and relations: phrase patterns over the raw text."""
        offsets = [(m.start(), m.end()) for m in matches]

        def token_range(start: int, end: int) -> tuple[int, int] | None:
            inside = [i for i, (s, e) in enumerate(offsets) if s < end and e > start]
            return (inside[0], len(inside)) if inside else None

        def claim(start: int, end: int, kind: str, status: str) -> None:
            found = token_range(start, end)
            if found is not None and not any(covered[found[0] : found[0] + found[1]]):
                add(found[0], found[1], kind, status)

        lowered = text.lower()
        months = "|".join(MONTHS)
        date = re.compile(
            rf"\b(?:(?:{months})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+(?P<y1>\d{{4}})|\d{{1,2}}(?:st|nd|rd|th)?\s+"
            rf"(?:of\s+)?(?:{months})\.?,?\s+(?P<y2>\d{{4}})|(?:{months})\.?\s+(?P<y3>\d{{4}})|"
            rf"(?P<y4>\d{{4}})-\d{{2}}-\d{{2}})\b"
        )
        for m in date.finditer(lowered):
            year = int(next(y for y in m.group("y1", "y2", "y3", "y4") if y))
            claim(m.start(), m.end(), "date", UNSUPPORTED if item.year != year else UNVERIFIABLE)
        for m in re.finditer(r"(?<![\w'’])(?:(1[89]|20)(\d)0s|['’](\d)0s|(\d)0s)\b", lowered):
            if m.group(1):
                decade = int(m.group(1) + m.group(2) + "0")
            else:
                digit = int(m.group(3) or m.group(4))
                decade = (1900 if digit >= 3 else 2000) + digit * 10
            supported = item.year is not None and decade <= item.year < decade + 10
            claim(m.start(), m.end(), "decade", SUPPORTED if supported else UNSUPPORTED)
        mean = self.ratings.get(item.item_id)
        for m in _RATING.finditer(lowered):
            value = float(m.group("value") or m.group("bare"))
            if m.group("percent"):
                scaled = None  # percentages are review-site scores
            elif m.group("scale"):
                scaled = value * 5.0 / float(m.group("scale"))
            else:
                scaled = value
            if scaled is None or mean is None or scaled > 5.0:
                status = UNVERIFIABLE
            else:
                status = SUPPORTED if abs(scaled - mean) <= self.config.rating_tolerance else UNSUPPORTED
            claim(m.start(), m.end(), "rating", status)
        for m in _HIGHLY_RATED.finditer(lowered):
            status = UNVERIFIABLE if mean is None else SUPPORTED if mean >= self.config.high_rating else UNSUPPORTED
            claim(m.start(), m.end(), "rating", status)
        for m in _RATING_SITE.finditer(lowered):
            claim(m.start(), m.end(), "rating", UNVERIFIABLE)
        for m in _AWARD.finditer(lowered):
            phrase = m.group(0)
            family = "oscar" if phrase.startswith(("oscar", "academy")) else phrase.split()[0].rstrip("s")
            supported = family in tag_text or ("award" in phrase and "award" in tag_text)
            claim(m.start(), m.end(), "award", SUPPORTED if supported else UNVERIFIABLE)
        for m in _BOX_OFFICE.finditer(lowered):
            claim(m.start(), m.end(), "box_office", UNVERIFIABLE)
        for m in _RELEASE.finditer(lowered):
            claim(m.start(), m.end(), "relation", UNVERIFIABLE)
        for m in _RELATIVE_TIME.finditer(lowered):
            claim(m.start(), m.end(), "date", UNVERIFIABLE)
        for m in _RELATION.finditer(lowered):
            phrase = m.group(0)
            key = phrase.split()[0] if not phrase.startswith(("based", "true", "inspired")) else phrase
            supported = key in tag_text or (
                key in ("sequel", "follow-up", "follow up") and _NUMBERED_TITLE.search(item.display_title) is not None
            )
            claim(m.start(), m.end(), "relation", SUPPORTED if supported else UNVERIFIABLE)
        for i, (start, end) in enumerate(offsets):
            word = matches[i].group(0)
            if covered[i] or not word[:1].isdigit() or _YEAR.match(word):
                continue
            claim(start, end, "number", UNVERIFIABLE)

    def _names(self, words, lower, starts, text, sentence_start, covered, add, item_people, item: ItemFacts) -> None:
        """Proper names (runs of capitalised words) no vocabulary matched: people the metadata must name."""
        own_words = {w for key in title_keys(item.title) for w in key}
        item_words = own_words | {w for g in item.genres for w in _lower_words(g)}
        item_words |= {w for t in item.tags for w in _lower_words(t)} | {
            w for p in item.people for w in _lower_words(p)
        }
        position = 0
        while position < len(words):
            run = position
            while run < len(words) and not covered[run] and _name_word(words[run], lower[run]):
                run += 1
            if run == position:
                position += 1
                continue
            first = position
            # A capitalised everyday word opening a sentence ("Follow", "Set") is not part of a name.
            while first < run and sentence_start[first] and zipf(lower[first]) >= self.config.everyday_zipf - 0.5:
                first += 1
            name = lower[first:run]
            # Every word of the run may be an everyday sentence opener ("... Deathly Hallows: Part"): no name.
            triggered = bool(name) and first > 0 and _PERSON_TRIGGER.search(text[: starts[first]]) is not None
            if name and (len(name) > 1 or triggered or self._rare_name(name[0], item_words)):
                known = all(word in item_words for word in name) or name in item_people
                # A person only where the text or the catalogue says so: "Nazi Germany" is a place,
                # "World War II" an event; every other capitalised run is a name of some kind.
                kind = "person" if triggered or tuple(name) in self.people else "name"
                add(first, run - first, kind, SUPPORTED if known else UNVERIFIABLE)
            position = run

    def _rare_name(self, word: str, item_words: set[str]) -> bool:
        """A lone capitalised word is a name when it is not everyday English and not a known word of the catalogue."""
        return zipf(word) < self.config.everyday_zipf - 0.5 and (word in item_words or word not in self.vocabulary)

    def _longest(
        self, words: Sequence[str], start: int, vocabulary: Mapping, limit: int | None = None
    ) -> tuple[str, ...] | None:
        for length in range(min(limit or self.config.max_ngram, len(words) - start), 0, -1):
            key = tuple(words[start : start + length])
            if key in vocabulary:
                return key
        return None

    def unsupported(
        self, text: str, item: ItemFacts, profile: UserProfile | None = None, request: ParsedRequest | None = None
    ) -> list[Claim]:
        """The claims of ``text`` that are not supported: contradicted or unverifiable (empty: grounded)."""
        return [claim for claim in self.claims(text, item, profile, request) if not claim.supported]

    # ---------------------------------------------------------------- the other checks
    def names_title(self, text: str, item: ItemFacts) -> bool:
        """Whether ``text`` names the item's title, in any case, with or without its article."""
        lower = _lower_words(text)
        keys = title_keys(item.title)
        return any(lower[i : i + len(key)] == key for key in keys for i in range(len(lower) - len(key) + 1))

    def known_word_share(self, text: str) -> tuple[float, int]:
        """(share of words that are known English or catalogue words, number of words)."""
        words = [w.lower() for w in _TOKEN.findall(text) if w[:1].isalpha()]
        if not words:
            return 0.0, 0
        known = [w in self.vocabulary or zipf(w.replace("’", "'")) >= self.config.known_zipf for w in words]
        return float(np.mean(known)), len(words)

    def fluent(self, text: str, item: ItemFacts | None = None) -> tuple[bool, float]:
        """(fluent, known-word share); words repeated inside the item's own title ("Tora! Tora! Tora!") are fine."""
        share, count = self.known_word_share(text)
        lower = _lower_words(text)
        if item is not None:
            for key in sorted(title_keys(item.title), key=len, reverse=True):
                lower = _remove_run(lower, key)
        words = [w for w in lower if w[:1].isalpha()]
        longest_run = max((len(list(g)) for _, g in groupby(words)), default=0)
        fluent = count >= self.config.min_words and share >= self.config.fluency_threshold
        return fluent and longest_run < self.config.max_repeat, share

    def unstated(
        self, text: str, item: ItemFacts, profile: UserProfile | None = None, request: ParsedRequest | None = None
    ) -> list[tuple[str, list[str]]]:
        """Each sentence of ``text`` with its content words that no fact states: (sentence, words), in order.

        A word is stated when a claim covers it (the title, a liked title, a genre, tag, person
        or year), when a fact's words hold it (:meth:`fact_words`), or when it is evaluative or
        recommending language that asserts nothing about the film (:data:`GENERAL_WORDS`);
        stop words never count. What remains is a plot, person, place, role or event nobody
        gave the writer: closed world, it fails the sentence.
        """
        matches, spans = self._spans(text, item, profile, request)
        covered = {i for span in spans for i in range(span.start, span.start + span.length)}
        stated = self.fact_words(item, profile)
        sentences: list[tuple[str, list[str]]] = []
        begin, words = 0, []
        for index, match in enumerate(matches):
            word = match.group(0)
            if word in ".!?;" or index == len(matches) - 1:
                end = match.end()
                if word[:1].isalpha() and index not in covered and _unstated(word, stated):
                    words.append(word)
                sentences.append((text[begin:end].strip(), words))
                begin, words = end, []
            elif word[:1].isalpha() and index not in covered and _unstated(word, stated):
                words.append(word)
        return sentences

    def fact_words(self, item: ItemFacts, profile: UserProfile | None = None) -> frozenset[str]:
        """Stems of every word the item's facts and the user's liked titles hold, and the words its genres imply.

        The user's favourite genres and tags are not among them: they are true of the reader, not of
        the film, and a small model's commonest error is to give the film the reader's tastes.
        """
        profile = profile or UserProfile()
        genre_words = (word for genre in item.genres for word in GENRE_WORDS.get(genre, ()))
        texts = (item.title, *item.genres, *item.tags, *item.people, *profile.titles)
        forms = (form for genre in item.genres for form in GENRE_FORMS.get(genre, ()))
        return frozenset(
            [stem(word) for text in (*texts, *forms) for word in _lower_words(text) if word[:1].isalpha()]
            + [stem(word) for word in genre_words]
        )

    def similarities(self, texts: Sequence[str], items: Sequence[ItemFacts]) -> np.ndarray:
        """Each text's cosine to its item's nearest fact sentence (:func:`fact_sentences`), with the support encoder."""
        if self._similarity is None:
            if self.config.support_encoder is None:
                raise ValueError("the sentence similarity needs support_encoder (e.g. 'minilm') or similarity=")
            self._similarity = encoder_similarity(self.config.support_encoder)
        pairs = [(row, fact) for row, item in enumerate(items) for fact in fact_sentences(item)]
        scores = np.asarray(
            self._similarity([texts[row] for row, _ in pairs], [fact for _, fact in pairs]), dtype=np.float64
        )
        best = np.full(len(texts), -1.0)
        np.maximum.at(best, [row for row, _ in pairs], scores)
        return best

    def check(
        self,
        text: str,
        item: ItemFacts,
        profile: UserProfile | None = None,
        special_tokens: tuple[str, ...] = (),
        request: ParsedRequest | None = None,
    ) -> DescriptionCheck:
        """The guard's verdict on one description; see the module docstring. ``request``: the reader's
        request the text may answer (None: none was made, so "as you asked" is unsupported)."""
        return self.check_many([text], [item], [profile], special_tokens, [request])[0]

    def check_many(
        self,
        texts: Sequence[str],
        items: Sequence[ItemFacts],
        profiles: Sequence[UserProfile | None] | None = None,
        special_tokens: tuple[str, ...] = (),
        requests: Sequence[ParsedRequest | None] | None = None,
    ) -> list[DescriptionCheck]:
        """:meth:`check` for many texts; the similarity embeds, in one batch, only the sentences that need it."""
        profiles = list(profiles) if profiles is not None else [None] * len(texts)
        requests = list(requests) if requests is not None else [None] * len(texts)
        if not len(texts) == len(items) == len(profiles) == len(requests):
            raise ValueError(
                f"{len(texts)} texts, {len(items)} items, {len(profiles)} profiles, {len(requests)} requests: "
                "expected equal counts"
            )
        results, failing = [], []  # failing: (text index, sentence, its unstated words)
        for index, (text, item, profile, request) in enumerate(zip(texts, items, profiles, requests, strict=True)):
            text = text or ""
            blocked = self.output_filter.find(text, special_tokens, (item.title, item.display_title))
            fluent, share = self.fluent(text, item)
            claims = self.claims(text, item, profile, request) if fluent else []
            names = self.names_title(text, item)
            # Facts only this item has (its own tags or people) make a text about it without its title.
            specific = any(claim.supported and claim.kind in ("tag", "person") for claim in claims)
            meta = list(dict.fromkeys(m.group(0).lower() for m in _META.finditer(text)))
            if fluent:
                failing += [
                    (index, sentence, words)
                    for sentence, words in self.unstated(text, item, profile, request)
                    if len(words) > self.config.max_unstated
                ]
            results.append(
                DescriptionCheck(
                    passed=False,
                    about_item=(names or specific) and not meta,
                    meta=meta,
                    fluent=fluent,
                    complete=_COMPLETE.search(text.strip()) is not None,
                    unsupported=[str(c) for c in claims if c.status == UNSUPPORTED],
                    unverifiable=[str(c) for c in claims if c.status == UNVERIFIABLE],
                    blocked=blocked,
                    names_title=names,
                    known_word_share=share,
                )
            )
        if failing and self.config.support_threshold is not None:
            scores = self.similarities([sentence for _, sentence, _ in failing], [items[i] for i, _, _ in failing])
            for (index, _, _), score in zip(failing, scores, strict=True):
                current = results[index].similarity
                results[index].similarity = float(score) if current is None else min(current, float(score))
            failing = [row for row, score in zip(failing, scores, strict=True) if score < self.config.support_threshold]
        for index, _, words in failing:
            results[index].unstated.append(", ".join(words))
        for r in results:
            r.passed = (
                r.about_item
                and r.fluent
                and r.complete
                and not r.unsupported
                and not r.unverifiable
                and not r.unstated
                and not r.blocked
            )
        return results


def _negated(lower: Sequence[str], position: int, last_denied: int | None) -> bool:
    """Whether the genre at token ``position`` is denied: "no horror", "not a horror film", and a genre
    joined by "or" or a comma to the denied one before it ("not a horror film or a thriller")."""
    back = position - 1
    while back >= 0 and lower[back] in ("a", "an"):
        back -= 1
    if back < 0 or lower[back] in _NEGATIONS:
        return back >= 0
    if lower[back] not in ("or", ","):
        return False
    back -= 1
    while back >= 0 and lower[back] in ("film", "films", "movie", "movies"):
        back -= 1
    return back == last_denied


def _remove_run(words: tuple[str, ...], key: tuple[str, ...]) -> tuple[str, ...]:
    """``words`` without every occurrence of the sequence ``key``."""
    out: list[str] = []
    position = 0
    while position < len(words):
        if key and words[position : position + len(key)] == key:
            position += len(key)
            continue
        out.append(words[position])
        position += 1
    return tuple(out)


def _name_word(word: str, lower: str) -> bool:
    """A capitalised word that can be part of a proper name (not a stop word, month or weekday)."""
    if not word[:1].isupper() or not word.isalpha():
        return False
    return lower not in STOPWORDS and lower not in MONTHS and lower not in WEEKDAYS and lower not in NUMBER_WORDS


@lru_cache(maxsize=2)
def encoder_similarity(preset: str) -> Callable[[Sequence[str], Sequence[str]], np.ndarray]:
    """``(texts, others) -> cosines`` (row-paired) with an encoder preset, loaded once per process."""
    from genrec.encoders import create_encoder

    encoder = create_encoder(preset)

    def similarity(texts: Sequence[str], others: Sequence[str]) -> np.ndarray:
        vectors = encoder.encode_texts([*texts, *others]).numpy()  # [2N, D], unit rows
        return (vectors[: len(texts)] * vectors[len(texts) :]).sum(axis=1)  # [N]

    return similarity


def facts_used(text: str, item: ItemFacts, liked_titles: Sequence[str] = ()) -> list[str]:
    """Which of the item's facts (title, year, genres, tags, people) and the user's liked titles ``text`` states.

    For a reader of the report: what a description rests on. A genre counts when its name or one
    of the words that restate it (:data:`GENRE_WORDS`) appears; the rest by their words in order.
    """
    lower = " " + " ".join(re.findall(r"[\w'’]+", text.lower())) + " "  # "Spider-Man": spider man

    def says(phrase: str) -> bool:
        words = " ".join(re.findall(r"[\w'’]+", phrase.lower()))
        return bool(words) and f" {words} " in lower

    used = ["title"] if any(says(" ".join(key)) for key in title_keys(item.title)) else []
    if item.year is not None and says(str(item.year)):
        used.append(f"year {item.year}")
    for genre in item.genres:
        if says(genre.replace("-", " ")) or says(genre) or any(says(word) for word in GENRE_WORDS.get(genre, ())):
            used.append(f"genre {genre}")
    used += [f'tag "{tag}"' for tag in item.tags if says(tag)]
    used += [f"person {person}" for person in item.people if says(person)]
    liked = [display_title(title) for title in liked_titles if says(display_title(title))]
    # "Back to the Future" inside "Back to the Future Part III" is the longer title, named once
    used += [f"liked title {title}" for title in liked if not any(title != other and title in other for other in liked)]
    return used
