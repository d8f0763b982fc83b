"""A user's free-text request ("something like Alien, but funny, no horror") read into what conditions a ranking.

:func:`parse_request` turns untrusted text into a :class:`ParsedRequest`:

- the text is sanitised and capped first (:func:`genrec.untrusted_text.sanitise_untrusted`: chat and
  special tokens, markup, links; :data:`REQUEST_MAX_CHARS`), so nothing an attacker writes reaches a
  prompt, a report or a log as anything but plain words;
- **named titles**: the phrase after "like", "similar to", "as good as", "in the vein of", ... or a
  quoted phrase is matched to catalogue titles (normalised: accents, case and punctuation dropped, a
  leading or MovieLens-style trailing article dropped, "Matrix, The" = "the matrix" = "matrix"; an
  alternative title in brackets, "(a.k.a. Alien 3)", matches too). The longest prefix of the phrase
  that matches wins: exactly, or as the start of a series ("Star Wars"), before any by ``difflib``
  similarity (a misspelling: "Alienz"). A year after the title ("Alien (1979)", "Hamlet 1996")
  chooses among equal titles, otherwise the most rated; a list goes on ("like Alien or Aliens").
  A phrase of only genre and filler words in lower case ("like a heist movie") names no title;
- **genres**: words and phrases mapped to the catalogue's genre names by :data:`GENRE_WORDS` (only
  genres the data set has); a genre word within a few words after a negation ("no horror", "not
  scary", "without romance", "nothing animated") is avoided instead of wanted;
- **years**: a decade ("90s", "1990s", "the early eighties"), "from/in 1995", "since/after/before
  1995", "between 1980 and 1990", "1980-1990", and "recent" (the catalogue's last ten years);
- **rest**: the text without the named titles and the avoided genres, for content similarity
  (avoided words left in would pull the similarity towards what the user excludes).

What the parser drops, guesses or cannot resolve is said in :attr:`ParsedRequest.notes` (the
commands print them; the run directory records them), never silently.
"""

from __future__ import annotations

import bisect
import dataclasses
import difflib
import re
import unicodedata
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from genrec.untrusted_text import ELLIPSIS, sanitise_untrusted

if TYPE_CHECKING:
    from genrec.data import Dataset

REQUEST_MAX_CHARS = 300  # a request is a sentence or two; longer text is cut (with a note), not refused
FUZZY_CUTOFF = 0.84  # difflib ratio for a misspelt title: "alienz" -> "alien" (0.91), "funny" -> "fury" (0.67)
MAX_TITLE_WORDS = 12  # the longest phrase tried as a title (each prefix is one lookup)
RECENT_YEARS = 10  # "recent": the catalogue's newest ten years
NEGATION_REACH = 3  # a negation covers the genre words up to this many words after it ("no horror or gore")


def _phrases(text: str) -> tuple[str, ...]:
    return tuple(phrase.strip() for phrase in text.split(","))


# Words and phrases -> the genre they ask for. A data set's own genre names match too, so this table holds
# only synonyms; a genre the data set lacks is left out for that data set (genre_table).
GENRE_WORDS: dict[str, tuple[str, ...]] = {
    "Comedy": _phrases(
        "comedy, comedies, funny, hilarious, humor, humour, humorous, laugh, laughs, comic, witty, lighthearted, "
        "light hearted, romcom, rom com"
    ),
    "Horror": _phrases("horror, scary, frightening, terrifying, creepy, spooky, gory, gore, slasher"),
    "Animation": _phrases("animation, animated, cartoon, cartoons, anime"),
    "Sci-Fi": _phrases("sci fi, scifi, science fiction, space, futuristic, robots"),
    "Romance": _phrases("romance, romantic, love story, romcom, rom com"),
    "Action": _phrases("action, explosions, martial arts"),
    "Thriller": _phrases("thriller, thrillers, suspense, suspenseful, tense"),
    "Drama": _phrases("drama, dramas, dramatic"),
    "Adventure": _phrases("adventure, adventures, adventurous, quest"),
    "Crime": _phrases("crime, heist, gangster, gangsters, mafia, mob"),
    "Fantasy": _phrases("fantasy, magic, magical, wizards, dragons"),
    "Children": _phrases("children, childrens, kids, family, family friendly, kid friendly"),
    "Mystery": _phrases("mystery, mysteries, whodunit, detective"),
    "Documentary": _phrases("documentary, documentaries, docs"),
    "War": _phrases("war, wartime, military"),
    "Musical": _phrases("musical, musicals, singing"),
    "Western": _phrases("western, westerns, cowboy, cowboys"),
    "Film-Noir": _phrases("noir, film noir"),
    "IMAX": _phrases("imax"),
}
NEGATIONS = frozenset(
    _phrases(
        "no, not, nothing, without, avoid, except, skip, never, hate, dislike, non, none, neither, nor, less, fewer, "
        "dont, don't, isnt, isn't, arent, aren't, doesnt, doesn't, wont, won't"
    )
)
# "like" starts a title unless it is the verb of a wish ("I'd like a comedy", "would like to see").
TITLE_TRIGGERS = _phrases(
    "similar to, as good as, in the vein of, reminds me of, reminding me of, along the lines of, in the style of, "
    "such as, the likes of, like"
)
WISH_BEFORE_LIKE = frozenset(_phrases("i, i'd, id, we, we'd, you, you'd, would, should, they, feel, feels"))
# Where a title phrase ends: punctuation or a contrast word; not the comma of a MovieLens "Matrix, The (1999)".
TITLE_END = re.compile(
    r",(?!\s*(?:the|a|an)\b\s*(?:\(|\d|,|\.|$))|[;.!?]|\s(?:but|except|though|although|yet|only|or something)\b",
    re.IGNORECASE,
)
LIST_NEXT = re.compile(r"\s*(?:,|\bor\b|\band\b|&)\s*(?!(?:but|except|though|although|yet|only)\b)", re.IGNORECASE)
LEADING_FILLER = re.compile(r"^(?:(?:the|a|an)\s+)?(?:movies?|films?|one)\s+", re.IGNORECASE)
QUOTED = re.compile(r"[\"“”«»]([^\"“”«»]{1,120})[\"“”«»]|(?<!\w)'([^']{1,120})'(?!\w)")
YEAR_AFTER_TITLE = re.compile(r"^\s*\(?\s*((?:19|20)\d{2})\s*\)?")
ARTICLES = ("the", "a", "an", "les", "la", "le", "l", "el", "il", "der", "die", "das")
# Words that say nothing an item's facts could match: a rest of only these is no content request.
FILLER = frozenset(
    _phrases(
        "a, an, the, and, or, but, of, to, for, with, some, something, anything, movie, movies, film, films, me, i, "
        "i'd, id, want, would, like, please, show, recommend, give, watch, see, one, ones, that, is, it, its, be, "
        "more, kind, sort, type, also, maybe, really, very, just, good, great, nice"
    )
)


@dataclasses.dataclass(frozen=True)
class ParsedRequest:
    """A user's free-text request, sanitised and read into what conditions the ranking."""

    text: str  # the sanitised, length-capped request as given
    named_items: tuple[int, ...] = ()  # item indices (Dataset.items row = item_idx) of titles it names ("like Alien")
    want_genres: tuple[str, ...] = ()  # catalogue genre names it asks for ("funny" -> "Comedy")
    avoid_genres: tuple[str, ...] = ()  # catalogue genre names it excludes ("no horror" -> "Horror")
    years: tuple[int, int] | None = None  # inclusive release-year range it states ("from the 90s" -> (1990, 1999))
    rest: str = ""  # the text left after removing named titles (and avoided genres), for content similarity
    # Beyond the shared interface: the named titles as "Title (year)" (readable without the data set), and what
    # the parser cut, guessed or could not resolve (printed by the commands, shown in the report).
    named_titles: tuple[str, ...] = ()
    notes: tuple[str, ...] = dataclasses.field(default=(), compare=False)

    @property
    def empty(self) -> bool:
        """Nothing to condition on: no title, genre, year or content word."""
        return not (self.named_items or self.want_genres or self.avoid_genres or self.years or self.rest)


def read_as(request: ParsedRequest | dict) -> str:
    """What a request was read as, in one line (a ParsedRequest or its recorded dict, request.json)."""
    values = dataclasses.asdict(request) if isinstance(request, ParsedRequest) else request
    parts = []
    if values.get("named_titles"):
        parts.append("like " + "; ".join(values["named_titles"]))
    if values.get("want_genres"):
        parts.append("genres " + ", ".join(values["want_genres"]))
    if values.get("avoid_genres"):
        parts.append("no " + ", ".join(values["avoid_genres"]))
    if values.get("years"):
        low, high = values["years"]
        parts.append(f"released {low}" if low == high else f"released {low}-{high}")
    if values.get("rest"):
        parts.append(f"matching {values['rest']!r}")
    return "; ".join(parts) if parts else "nothing to condition the ranking on"


def request_line(request: ParsedRequest | dict) -> str:
    """``'the text' read as ...``: a request and its reading, for a log or a terminal."""
    text = request.text if isinstance(request, ParsedRequest) else request["text"]
    return f"{text!r} read as {read_as(request)}"


def parsed_request(record: Mapping[str, Any] | None) -> ParsedRequest | None:
    """The :class:`ParsedRequest` a run recorded (``RunDirectory.read_request()``: its fields as JSON); None: none."""
    if record is None:
        return None
    known = set(ParsedRequest.__dataclass_fields__)
    unknown = sorted(set(record) - known)
    if unknown or "text" not in record:
        raise ValueError(f"request.json: expected the fields {sorted(known)} (text required), got {sorted(record)}")
    years = record.get("years")
    if years is not None and (len(years) != 2 or int(years[0]) > int(years[1])):
        raise ValueError(f"request.json: years must be [first, last] with first <= last, got {years!r}")
    return ParsedRequest(
        text=str(record["text"]),
        named_items=tuple(int(index) for index in record.get("named_items", ())),
        want_genres=tuple(str(genre) for genre in record.get("want_genres", ())),
        avoid_genres=tuple(str(genre) for genre in record.get("avoid_genres", ())),
        years=None if years is None else (int(years[0]), int(years[1])),
        rest=str(record.get("rest", "")),
        named_titles=tuple(str(title) for title in record.get("named_titles", ())),
        notes=tuple(str(note) for note in record.get("notes", ())),
    )


def parse_request(text: str | None, dataset: Dataset) -> ParsedRequest | None:
    """``text`` read against ``dataset``'s catalogue (module docstring); None for None or blank text."""
    if text is None:
        return None
    cleaned, notes = clean_request(text)
    if not cleaned:
        return None
    index = catalogue_index(dataset)
    named, remaining, title_notes = _named_titles(cleaned, index)
    avoid, want, remaining, genre_notes = _genres(remaining, index.genres, dataset.name)
    years, remaining, year_notes = _years(remaining, index.year_bounds)
    rest = _tidy(remaining)
    if not set(_words(rest)) - FILLER:
        rest = ""
    if not (named or want or avoid or years or rest):
        notes.append("nothing in the request names a title, a genre, a year or anything to match; it changes nothing")
    return ParsedRequest(
        text=cleaned,
        named_items=tuple(named),
        want_genres=tuple(want),
        avoid_genres=tuple(avoid),
        years=years,
        rest=rest,
        named_titles=tuple(index.labels[item] for item in named),
        notes=(*notes, *title_notes, *genre_notes, *year_notes),
    )


def clean_request(text: str) -> tuple[str, list[str]]:
    """The request sanitised and capped at :data:`REQUEST_MAX_CHARS`, with a note when anything was removed or cut."""
    cleaned = sanitise_untrusted(text)
    notes = []
    if cleaned != " ".join(str(text).split()):
        notes.append("markup, links or control tokens were removed from the request")
    capped = sanitise_untrusted(cleaned, REQUEST_MAX_CHARS)
    if capped != cleaned or (len(capped) == REQUEST_MAX_CHARS and capped.endswith(ELLIPSIS)):
        notes.append(f"the request was cut to {REQUEST_MAX_CHARS} characters")
    return capped, notes


# -- titles ---------------------------------------------------------------------------------------


def normalise_title(text: str) -> str:
    """Lower case, accents and punctuation dropped, a leading or trailing (", The") article dropped."""
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii").lower()
    text = " ".join(re.sub(r"[^a-z0-9]+", " ", text.replace("'", "")).split())
    for article in ARTICLES:
        if text.startswith(article + " "):
            text = text[len(article) + 1 :]
        if text.endswith(" " + article):
            text = text[: -len(article) - 1]
    return text


@dataclasses.dataclass
class CatalogueIndex:
    """What :func:`parse_request` reads a request against, built once per data set: normalised titles, genres,
    years."""

    exact: dict[str, list[int]]  # normalised title (and alternative titles) -> item indices
    forms: list[str]  # the normalised titles, sorted: a phrase's prefix matches ("star wars" -> "star wars episode iv")
    by_initial: dict[str, list[str]]  # first character -> normalised titles: the fuzzy candidates
    genres: dict[str, tuple[str, ...]]  # genre_table
    years: np.ndarray  # [n_items] float, NaN where unknown
    popularity: np.ndarray  # [n_items] interactions
    labels: list[str]  # "Title (year)" per item, for notes
    year_bounds: tuple[int, int] | None  # the catalogue's oldest and newest year

    def lookup(self, phrase: str, fuzzy: bool = False) -> tuple[list[int], str]:
        """Items whose title is ``phrase`` (normalised): exactly, else the titles a phrase of two words or more
        begins (a series: "star wars"); with ``fuzzy``, the closest title by difflib instead (a misspelling).
        Returns the items and how they matched (``exact``, ``prefix``, ``fuzzy``; ``""``: none)."""
        if len(phrase) < 4:  # a short word is too easily the start or a near miss of some title
            return self.exact.get(phrase, []), "exact" if phrase in self.exact else ""
        if fuzzy:
            close = difflib.get_close_matches(phrase, self.by_initial.get(phrase[0], []), n=1, cutoff=FUZZY_CUTOFF)
            return (self.exact[close[0]], "fuzzy") if close else ([], "")
        if phrase in self.exact:
            return self.exact[phrase], "exact"
        first = bisect.bisect_left(self.forms, phrase + " ")
        last = bisect.bisect_left(self.forms, phrase + "!")  # "!" sorts right after " ": every "phrase ..." form
        if " " in phrase and last > first:
            return list(dict.fromkeys(item for form in self.forms[first:last] for item in self.exact[form])), "prefix"
        return [], ""

    def choose(self, items: list[int], year: int | None) -> int:
        """One of several matching items: the one of ``year`` when given, else the most rated."""
        if year is not None:
            of_year = [item for item in items if self.years[item] == year]
            items = of_year or items
        return max(items, key=lambda item: (self.popularity[item], -item))


_INDEXES: dict[int, tuple[weakref.ref, CatalogueIndex]] = {}


def catalogue_index(dataset: Dataset) -> CatalogueIndex:
    """The :class:`CatalogueIndex` of ``dataset``, built on first use and kept while the data set lives."""
    cached = _INDEXES.get(id(dataset))
    if cached is not None and cached[0]() is dataset:
        return cached[1]
    items = dataset.items
    titles = items["title"].fillna("").astype(str).tolist() if "title" in items else [""] * len(items)
    years = (
        pd.to_numeric(items["year"], errors="coerce").to_numpy(float)
        if "year" in items
        else np.full(len(items), np.nan)
    )
    exact: dict[str, list[int]] = {}
    for item, title in enumerate(titles):
        for form in _title_forms(title):
            if form and item not in exact.setdefault(form, []):
                exact[form].append(item)
    by_initial: dict[str, list[str]] = {}
    for form in exact:
        by_initial.setdefault(form[0], []).append(form)
    known = years[~np.isnan(years)]
    index = CatalogueIndex(
        exact=exact,
        forms=sorted(exact),
        by_initial=by_initial,
        genres=genre_table(dataset),
        years=years,
        popularity=np.bincount(dataset.interactions["item_idx"].to_numpy(), minlength=len(items)),
        labels=[
            title if np.isnan(year) else f"{title} ({int(year)})" for title, year in zip(titles, years, strict=True)
        ],
        year_bounds=(int(known.min()), int(known.max())) if len(known) else None,
    )
    _INDEXES.clear()  # one catalogue at a time, like the pipelines' data set memo
    _INDEXES[id(dataset)] = (weakref.ref(dataset), index)
    return index


def _title_forms(title: str) -> list[str]:
    """A title's normalised forms: the whole, the main title, and each bracketed alternative ("a.k.a. X")."""
    main = re.sub(r"\s*\([^)]*\)", "", title)
    alternatives = [
        re.sub(r"^\s*a\.k\.a\.\s*", "", part, flags=re.IGNORECASE) for part in re.findall(r"\(([^)]*)\)", title)
    ]
    return list(dict.fromkeys(normalise_title(form) for form in (title, main, *alternatives)))


def _named_titles(text: str, index: CatalogueIndex) -> tuple[list[int], str, list[str]]:
    """Items the request names, the text with their phrases (and the words that introduced them) removed, notes.

    A phrase's prefixes are tried longest first, exactly (or as the start of a series) before any by difflib,
    so "Inception or Interstellar" finds "Inception" rather than a near miss of "Inception or". After a title,
    a list goes on: "like Alien, Aliens or Predator".
    """
    named: list[int] = []
    notes: list[str] = []
    spans: list[list[int]] = []  # [start, end) of each resolved phrase in ``text``

    def resolve(start: int, phrase: str, quoted: bool, listed: bool = False) -> bool:
        words = phrase.split()[:MAX_TITLE_WORDS]
        for fuzzy in (False, True):
            for end in range(len(words), 0, -1):
                candidate = " ".join(words[:end])
                if not quoted and _plain_words(candidate):
                    continue  # "like a heist movie" asks for a kind of film, not for the film "Heist"
                items, how = index.lookup(normalise_title(candidate), fuzzy)
                if items:
                    year_match = YEAR_AFTER_TITLE.match(phrase[len(candidate) :])
                    year = int(year_match.group(1)) if year_match else None
                    spans.append([start, start + len(candidate) + (year_match.end() if year_match else 0)])
                    named_item(candidate, items, how, year)
                    return True
        if (quoted or not _plain_words(phrase)) and not listed:
            notes.append(f"no catalogue title matches '{phrase}'")
        return False

    def named_item(candidate: str, items: list[int], how: str, year: int | None) -> None:
        item = index.choose(items, year)
        if item not in named:
            named.append(item)
        if how == "fuzzy":
            notes.append(f"'{candidate}' read as the catalogue title {index.labels[item]}")
        elif how == "prefix" and len(items) > 1:
            notes.append(f"'{candidate}' begins {len(items)} titles; took {index.labels[item]} (the most rated)")
        elif len({index.labels[i] for i in items}) > 1 and (year is None or index.years[item] != year):
            notes.append(
                f"'{candidate}' matches {len(items)} titles; took {index.labels[item]} (the most rated); "
                "give the year to choose another"
            )

    def resolve_tail(start: int, listed: bool) -> bool:
        tail = text[start:]
        stop = TITLE_END.search(tail)
        phrase = tail[: stop.start() if stop else len(tail)]
        filler = LEADING_FILLER.match(phrase)
        offset = filler.end() if filler else 0
        return bool(phrase[offset:].strip()) and resolve(start + offset, phrase[offset:].rstrip(), False, listed)

    quotes = list(QUOTED.finditer(text))
    for match in quotes:
        group = 1 if match.group(1) is not None else 2
        if resolve(match.start(group), match.group(group).strip(), quoted=True):
            spans[-1] = [match.start(), max(spans[-1][1], match.end())]
    for trigger in TITLE_TRIGGERS:
        for match in re.finditer(rf"\b{trigger}\b\s*", text, re.IGNORECASE):
            inside = [span for span in spans if span[0] <= match.end() < span[1]]
            if inside:  # the trigger of a quoted title ("like 'Alien'") goes with it
                inside[0][0] = min(inside[0][0], match.start())
                continue
            if any(start <= match.start() < end for start, end in spans) or any(
                quote.start() <= match.end() < quote.end() for quote in quotes
            ):
                continue  # inside a title, or before a quoted phrase that named none (said already)
            if trigger == "like" and _is_wish(text[: match.start()], text[match.end() :]):
                continue
            if not resolve_tail(match.end(), listed=False):
                continue
            spans[-1][0] = match.start()
            while (more := LIST_NEXT.match(text, spans[-1][1])) and resolve_tail(more.end(), listed=True):
                spans[-1][0] = more.start()  # the "or" goes with the title it introduces
    return named, _cut(text, [(start, end) for start, end in spans]), notes


def _plain_words(phrase: str) -> bool:
    """Whether ``phrase`` is only filler and genre words in lower case: a kind of film, not a title."""
    return phrase == phrase.lower() and set(_words(phrase)) <= FILLER | _genre_vocabulary()


def _is_wish(before: str, after: str) -> bool:
    """ "I'd like a comedy", "would like to", "feel like something": "like" as a verb, not "similar to"."""
    previous = _words(before)[-1:]
    return bool(previous and previous[0] in WISH_BEFORE_LIKE) or after.lower().startswith("to ")


# -- genres ---------------------------------------------------------------------------------------


def _genre_key(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower().replace("'", "")).split())


def genre_table(dataset: Dataset) -> dict[str, tuple[str, ...]]:
    """Word or phrase (normalised) -> the data set's genre names it means: the data set's own genre names, and
    :data:`GENRE_WORDS`' synonyms of those ("romcom" -> Comedy and Romance)."""
    column = dataset.items["genres"] if "genres" in dataset.items else pd.Series(dtype=object)
    present = sorted({genre for genres in column for genre in genre_names(genres)})
    by_key = {_genre_key(genre): genre for genre in present}
    table: dict[str, tuple[str, ...]] = {key: (genre,) for key, genre in by_key.items()}
    for genre, words in GENRE_WORDS.items():
        target = by_key.get(_genre_key(genre))
        for word in words if target is not None else ():
            key = _genre_key(word)
            if target not in table.get(key, ()):
                table[key] = (*table.get(key, ()), target)
    return table


def _genre_vocabulary() -> set[str]:
    return {word for words in GENRE_WORDS.values() for phrase in words for word in _words(phrase)}


def _genres(
    text: str, table: dict[str, tuple[str, ...]], dataset_name: str
) -> tuple[list[str], list[str], str, list[str]]:
    """(avoided genres, wanted genres, the text without the avoided phrases, notes); ``table``: genre_table."""
    tokens = list(re.finditer(r"[A-Za-z0-9']+(?:-[A-Za-z0-9']+)*|[^\sA-Za-z0-9']", text))  # "sci-fi": one word
    keys = [_genre_key(token.group()) or token.group() for token in tokens]
    avoid: list[str] = []
    want: list[str] = []
    cut: list[tuple[int, int]] = []
    longest = max((len(phrase.split()) for phrase in table), default=1)
    position = 0
    while position < len(tokens):
        size = next(
            (
                n
                for n in range(min(longest, len(tokens) - position), 0, -1)
                if " ".join(keys[position : position + n]) in table
            ),
            0,
        )
        if not size:
            position += 1
            continue
        genres = table[" ".join(keys[position : position + size])]
        negation = _negation_before(keys, position)
        if negation is None:
            want.extend(genres)
        else:
            avoid.extend(genres)
            cut.append((tokens[negation].start(), tokens[position + size - 1].end()))
        position += size
    avoid = list(dict.fromkeys(avoid))
    notes = [f"'{genre}' is both asked for and excluded; excluded" for genre in dict.fromkeys(want) if genre in avoid]
    want = [genre for genre in dict.fromkeys(want) if genre not in avoid]
    if not table and set(_words(text)) & _genre_vocabulary():
        notes.append(f"{dataset_name} has no genres; genre words count only as words")
    return avoid, want, _cut(text, cut), notes


def _negation_before(keys: list[str], position: int) -> int | None:
    """The token index of a negation within :data:`NEGATION_REACH` words before ``position`` in the same clause."""
    for back in range(position - 1, max(position - NEGATION_REACH, 0) - 1, -1):
        if keys[back] in NEGATIONS or keys[back].replace(" ", "") in NEGATIONS:
            return back
        if keys[back] in (",", ";", ".", "!", "?", "but", "just", "only"):
            return None
    return None


# -- years ----------------------------------------------------------------------------------------

DECADE_WORDS = {
    "twenties": 1920,
    "thirties": 1930,
    "forties": 1940,
    "fifties": 1950,
    "sixties": 1960,
    "seventies": 1970,
    "eighties": 1980,
    "nineties": 1990,
}
_PART = r"(?:(?P<part>early|mid|late)[\s-]+)?"
_DECADE = re.compile(
    rf"\b{_PART}(?:(?P<century>19|20)(?P<tens>\d)0\s?'?s|'?(?P<short>\d)0\s?'?s|(?P<word>{'|'.join(DECADE_WORDS)}))(?!\w)",
    re.IGNORECASE,
)
_BETWEEN = re.compile(r"\b(?:between\s+)?(?P<a>(?:19|20)\d{2})\s*(?:-|–|to|and|until)\s*(?P<b>(?:19|20)\d{2})\b", re.I)
_BOUND = re.compile(
    r"\b(?P<word>from|in|since|after|before|until|till|up to|newer than|older than)\s+(?:the\s+year\s+)?"
    r"(?P<year>(?:19|20)\d{2})\b(?P<on>\s+(?:on(?:wards?)?|or later|and later|or newer|or after))?",
    re.IGNORECASE,
)
_RECENT = re.compile(r"\b(?:recent|latest|newest|new releases?)\b", re.IGNORECASE)
_BARE_YEAR = re.compile(r"(?<![\w'-])((?:19|20)\d{2})(?![\w'-])")


def _years(text: str, bounds: tuple[int, int] | None) -> tuple[tuple[int, int] | None, str, list[str]]:
    """The release-year range the text states (every stated range intersected), the text, notes."""
    ranges: list[tuple[int, int, str]] = []
    covered: list[tuple[int, int]] = []
    oldest, newest = bounds if bounds is not None else (1800, 2100)
    for match in _DECADE.finditer(text):
        covered.append((match.start(), match.end()))
        if match.group("word"):
            start = DECADE_WORDS[match.group("word").lower()]
        elif match.group("century"):
            start = int(match.group("century")) * 100 + int(match.group("tens")) * 10
        else:
            short = int(match.group("short")) * 10
            start = 1900 + short if short >= 20 else 2000 + short  # "90s": 1990s; "00s", "10s": 2000s, 2010s
        part = (match.group("part") or "").lower()
        low, high = {"early": (0, 3), "mid": (3, 6), "late": (6, 9)}.get(part, (0, 9))
        ranges.append((start + low, start + high, match.group()))
    for match in _BETWEEN.finditer(text):
        a, b = sorted((int(match.group("a")), int(match.group("b"))))
        ranges.append((a, b, match.group()))
    decades = len(ranges)
    covered += [(m.start(), m.end()) for m in _BETWEEN.finditer(text)]
    for match in _BOUND.finditer(text):
        if any(start <= match.start() < end for start, end in covered):
            continue
        word, year = match.group("word").lower(), int(match.group("year"))
        if match.group("on") or word in ("since", "newer than"):
            ranges.append((year, newest, match.group()))
        elif word == "after":
            ranges.append((year + 1, newest, match.group()))
        elif word in ("before", "older than"):
            ranges.append((oldest, year - 1, match.group()))
        elif word in ("until", "till", "up to"):
            ranges.append((oldest, year, match.group()))
        else:  # "from 1995", "in 1995": released that year
            ranges.append((year, year, match.group()))
        covered.append((match.start(), match.end()))
    for match in _BARE_YEAR.finditer(text):
        if not any(start <= match.start() < end for start, end in covered):
            ranges.append((int(match.group(1)), int(match.group(1)), match.group()))
    if _RECENT.search(text):
        ranges.append((newest - RECENT_YEARS + 1, newest, _RECENT.search(text).group()))
    if not ranges:
        return None, text, []
    if bounds is None:
        return None, text, [f"the catalogue has no release years; {', '.join(repr(r[2]) for r in ranges)} ignored"]
    if decades == len(ranges):  # "the 80s or 90s": any of them
        low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
    else:  # "90s films from after 1995": all of them
        low, high = max(r[0] for r in ranges), min(r[1] for r in ranges)
    if low > high:
        said = " and ".join(repr(r[2]) for r in ranges)
        return None, text, [f"the years {said} exclude each other; no year filter"]
    return (low, high), text, []


# -- text helpers ---------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _cut(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` without the character ``spans``."""
    kept, position = [], 0
    for start, end in sorted(spans):
        if start >= position:
            kept.append(text[position:start])
            position = end
        else:
            position = max(position, end)
    kept.append(text[position:])
    return " ".join("".join(kept).split())


def _tidy(text: str) -> str:
    """Dangling punctuation and connectives left where phrases were cut: ", but funny ," -> "funny"."""
    text = re.sub(r"\s+([,;.!?])", r"\1", text)
    text = re.sub(r"([,;])(\s*[,;.!?])+", r"\1", text)
    text = re.sub(r"^(?:[\s,;.!?-]|\b(?:but|and|or|with|yet)\b)+", "", text, flags=re.IGNORECASE)
    return re.sub(r"(?:[\s,;-]|\b(?:but|and|or|with)\b)+$", "", text, flags=re.IGNORECASE).strip()


def genre_names(value: object) -> list[str]:
    """An items-table ``genres`` cell (a list, an array, one string or missing) as a list of names."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, np.ndarray | list | tuple):
        return [str(v) for v in value]
    return []
