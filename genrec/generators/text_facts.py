"""Descriptions that stay within the facts: the code writes the frame, the language model fills its slots.

Free generation from SmolLM2-135M is true about one time in ten (issue 31): invented plots are
built from common words, so neither a prompt nor a word mask keeps it honest. Here the
structure comes from the code (data-to-text) and the model chooses, at each slot, one phrase
among a closed set the code built from the item's facts and the user's profile:

1. plan (code): the item's genres (as words a sentence can use), its descriptive tags, and the
   links to the user: a liked title that shares genres with the item, the genres and tags the
   profile and the item share;
2. write (model): ``<title> (<year>) is`` (or another opening), then a genre phrase decoded over
   a trie of the item's genre words (which genres, their order, an opinion adjective of one of
   them); then, in the order the model prefers, why this user may like it ("If you enjoyed
   <liked title>, this is another <genres they share>", "It suits your taste for <shared>") and
   the viewers' tags (which, in what order, in which case);
3. with the reader's request (``DescriptionRequest.user_request``), right after the opening, a sentence
   for each part of it the item answers (:func:`~genrec.grounding.facts.match_request`), in the
   order the model prefers: a named title it shares genres with ("You asked for something like
   Alien, and this is another science fiction film"), the wanted genres it has ("As you asked, it is
   a comedy"), its year in the requested range, the excluded genres it lacks ("It is not a horror
   film, as you wanted"). A part it does not answer is left out, and the reader's own words are
   never echoed: named titles are the catalogue's.

Each choice scores every candidate phrase by its mean log-probability after the prompt (the
parent :class:`~genrec.generators.text.LLMGenerator`'s, with the facts) and the text so far,
with a repetition penalty over the generated tokens only, and samples one at ``temperature``
(argmax without ``do_sample``), seeded per (user, item, attempt): deterministic whatever the
batching. Every word that can state a fact comes from the facts, so the text cannot invent a
person, place or plot; the guard still checks it, and the parent's loop regenerates or falls
back to the template.

Presets: ``smollm2-facts`` (SmolLM2-135M-Instruct, offline) and ``tiny-facts`` (a random-weight
tiny Llama: its choices are random, its text still true; for tests). Profiles should come from
real signals, e.g. :func:`genrec.grounding.facts.profile_from_history` (plain counts).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import partial

import torch
from pydantic import Field
from transformers import DynamicCache

from genrec.data import Dataset
from genrec.generators.text import LLMConfig, LLMGenerator
from genrec.generators.text_base import TEXT_GENERATOR_TYPES, DescriptionRequest
from genrec.grounding.facts import ItemFacts, RequestMatch, UserProfile, descriptive_tag, display_title, match_request
from genrec.grounding.text_safety import OutputFilter, sanitise_untrusted

# Genre -> (modifier, head noun or None, plural): "a crime thriller" is modifier + head; a genre
# without a head of its own ends its phrase with "film" ("a crime film"). IMAX is a format, not a genre.
GENRE_WORDS = {
    "Action": ("action", None, "action films"),
    "Adventure": ("adventure", "adventure", "adventures"),
    "Animation": ("animated", None, "animated films"),
    "Children": ("family", None, "family films"),
    "Comedy": ("comedy", "comedy", "comedies"),
    "Crime": ("crime", None, "crime films"),
    "Documentary": ("documentary", "documentary", "documentaries"),
    "Drama": ("dramatic", "drama", "dramas"),
    "Fantasy": ("fantasy", "fantasy", "fantasy films"),
    "Film-Noir": ("noir", "film noir", "film noir"),
    "Horror": ("horror", None, "horror films"),
    "Musical": ("musical", "musical", "musicals"),
    "Mystery": ("mystery", "mystery", "mysteries"),
    "Romance": ("romantic", "romance", "romances"),
    "Sci-Fi": ("science fiction", None, "science fiction"),
    "Thriller": (None, "thriller", "thrillers"),
    "War": ("war", None, "war films"),
    "Western": ("western", "western", "westerns"),
}
ADJECTIVAL = frozenset({"animated", "dramatic", "romantic"})  # come before noun modifiers: "romantic crime"
# Opinions a film of the genre invites, everyday words that name no topic. A light word is left
# out when the item has a dark genre: "a charming war drama" would misread Grave of the Fireflies.
GENRE_ADJECTIVES = {
    "Action": ("exciting",),
    "Adventure": ("rousing",),
    "Animation": ("charming",),
    "Children": ("warm", "charming"),
    "Comedy": ("funny", "witty"),
    "Crime": ("gripping",),
    "Documentary": ("eye-opening",),
    "Drama": ("moving", "thoughtful"),
    "Fantasy": ("inventive",),
    "Horror": ("scary",),
    "Musical": ("lively",),
    "Mystery": ("intriguing",),
    "Romance": ("charming", "tender"),
    "Sci-Fi": ("inventive",),
    "Thriller": ("tense", "gripping"),
    "War": ("powerful",),
}
LIGHT_ADJECTIVES = frozenset({"funny", "witty", "charming", "warm", "lively", "tender", "rousing"})
DARK_GENRES = frozenset({"Crime", "Film-Noir", "Horror", "Thriller", "War"})

# The frames the model chooses among; {title}, {year} and {liked} are facts the code fills in.
OPENINGS = ("{title} ({year}) is", "Released in {year}, {title} is", "{title}, from {year}, is")
OPENINGS_WITHOUT_YEAR = ("{title} is",)
# (text, whether the genre phrase after it takes an article): "another crime drama", "it is a crime drama".
LINK_FRAMES = (
    (" If you enjoyed {liked}, this is another", False),
    (" Like {liked}, which you liked, it is", True),
    (" You liked {liked}, and this is another", False),
)
TASTE_FRAMES = (" It suits your taste for", " It fits your liking for", " It matches your love of")
CHANGE_FRAMES = (
    " It is a change from {liked} and your other recent picks.",
    " It is a step away from your usual picks.",
)
TAG_FRAMES = (" Viewers describe it with words like", " Viewers tag it", " Its tags from viewers include")
# Answering the reader's request; {named} is a catalogue title, {decade}, {year} and {genres} facts the code fills in.
ASKED_LINK_FRAMES = (
    (" You asked for something like {named}, and this is another", False),
    (" Like {named}, which you asked about, it is", True),
)
ASKED_GENRE_FRAMES = (" As you asked, it is", " It is what you asked for:", " Just as you wanted, it is")
ASKED_DECADE_FRAMES = (" It is from the {decade}s, as you asked.", " As you asked, it is from the {decade}s.")
ASKED_YEAR_FRAMES = (
    " It is from {year}, within the years you asked for.",
    " Released in {year}, it is within the years you asked for.",
)
ASKED_AVOID_FRAMES = (" As you asked, it is not {genres}.", " It is not {genres}, as you wanted.")


class FactConfig(LLMConfig):
    """The LLM generator's settings (model, prompt, guard, seed) plus the slots' limits."""

    temperature: float = Field(0.7, gt=0.0, le=5.0, description="sampling temperature over a slot's candidates")
    repetition_penalty: float = Field(1.3, ge=1.0, le=3.0, description="penalises tokens already generated (1: off)")
    max_genre_words: int = Field(3, ge=1, le=5, description="most genre words in one genre phrase")
    max_tags: int = Field(3, ge=0, le=6, description="most viewers' tags named")
    tag_choices: int = Field(6, ge=1, le=20, description="tags offered to the model (those the user shares first)")
    max_links: int = Field(2, ge=0, le=5, description="liked titles offered as the reason (most shared genres first)")


class PhraseDecoder:
    """Greedy-by-slot constrained decoding: the model picks each next phrase among candidates.

    Holds the key/value cache of the prompt and the text so far (batch 1). To score N
    candidates, the cache is repeated N times and the right-padded candidates run in one pass;
    the chosen row is kept and its padding cropped, so the chosen phrase is never recomputed.
    """

    def __init__(self, model, tokenizer, prompt: str, temperature: float | None, penalty: float, seed: int):
        self.model, self.tokenizer = model, tokenizer
        self.temperature, self.penalty = temperature, penalty
        self.rng = torch.Generator().manual_seed(seed)
        self.text = ""
        self.generated: list[int] = []  # token ids of the text so far: what the repetition penalty sees
        ids = self.encode(prompt).unsqueeze(0).to(model.device)  # [1, P]
        self.cache = DynamicCache()
        self.last = model(input_ids=ids, cache=self.cache).logits[0, -1]  # [V]

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor(self.tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)

    @torch.inference_mode()
    def choose(self, candidates: Sequence[str]) -> int:
        """Append one of ``candidates`` to the text and return its index.

        Candidates compete by mean log-probability per token, so a long phrase is not penalised
        for its length; one is sampled from their softmax at ``temperature`` (argmax without one).
        """
        encoded = [self.encode(c) for c in candidates]
        lengths = torch.tensor([len(e) for e in encoded])  # [N]
        ids = torch.nn.utils.rnn.pad_sequence(encoded, batch_first=True, padding_value=0).to(self.model.device)
        n, width = ids.shape  # [N, L]
        self.cache.batch_repeat_interleave(n)
        logits = self.model(input_ids=ids, cache=self.cache).logits  # [N, L, V]
        # Position j predicts token j: the prefix's last logits predict each candidate's first token.
        predicted = torch.cat([self.last.expand(n, 1, -1), logits[:, :-1]], dim=1)  # [N, L, V]
        if self.generated and self.penalty != 1.0:  # CTRL's penalty, on the generated text only
            seen = torch.tensor(sorted(set(self.generated)), device=predicted.device)
            values = predicted[..., seen]
            predicted[..., seen] = torch.where(values > 0, values / self.penalty, values * self.penalty)
        token = predicted.log_softmax(-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)  # [N, L]
        scores = (token.cpu() * (torch.arange(width) < lengths.unsqueeze(1))).sum(1) / lengths  # [N] mean
        if self.temperature is None or n == 1:
            index = int(scores.argmax())
        else:
            index = int(torch.multinomial(torch.softmax(scores / self.temperature, 0), 1, generator=self.rng))
        self.cache.batch_select_indices(torch.tensor([index]))
        if width > lengths[index]:
            self.cache.crop(-int(width - lengths[index]))
        self.last = logits[index, lengths[index] - 1]
        self.generated += encoded[index].tolist()
        self.text += candidates[index]
        return index


def with_article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeio" else "a ") + phrase


class FactGenerator(LLMGenerator):
    """Data-to-text descriptions: a frame from the code, phrases from the facts, choices by the model."""

    name = "facts"
    config_class = FactConfig

    def __init__(self, config: FactConfig, dataset: Dataset):
        super().__init__(config, dataset)
        self.output_filter = OutputFilter(config.safety)
        # Liked titles are profile strings: their genres come from the catalogue (a title several
        # items share keeps only the genres all of them have, so a claim about it holds for each).
        self.title_genres: dict[str, set[str]] = {}
        for title, genres in zip(dataset.items["title"], dataset.items["genres"], strict=True):
            known = self.title_genres.get(title)
            self.title_genres[title] = set(genres) if known is None else known & set(genres)

    def write(self, requests: Sequence[DescriptionRequest], attempt: int) -> list[str]:
        return [self.compose(request, attempt) for request in requests]

    def compose(self, request: DescriptionRequest, attempt: int = 0) -> str:
        """One description: the frame and the facts from the code, each choice among them by the model."""
        item, profile, config = request.item, request.profile, self.config
        key = f"{config.seed}|{attempt}|{request.user_id}|{item.item_id}"
        seed = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") >> 1
        temperature = config.temperature if config.do_sample else None
        decoder = PhraseDecoder(
            self.model, self.tokenizer, self.prompt(request), temperature, config.repetition_penalty, seed
        )
        title = sanitise_untrusted(item.display_title, config.template.max_title_chars) or "This film"
        if item.year is None:
            decoder.choose([frame.format(title=title) for frame in OPENINGS_WITHOUT_YEAR])
        else:
            decoder.choose([frame.format(title=title, year=item.year) for frame in OPENINGS])
        self.genre_phrase(decoder, item.genres, article=True, adjectives=True)
        decoder.choose(["."])
        if request.user_request is not None:
            match = match_request(request.user_request, item, self.catalogue)
            self.in_model_order(decoder, self.answers(decoder, item, match))
        # The reason and the tags are two sentences; the model's first choice among both sets the order.
        self.in_model_order(decoder, [self.reasons(decoder, item, profile), self.tag_sentence(decoder, item, profile)])
        return decoder.text

    @staticmethod
    def in_model_order(decoder: PhraseDecoder, parts: Sequence[list]) -> None:
        """Write every non-empty part (options of (frame text, finish)); each choice of a frame picks the next part."""
        parts = [part for part in parts if part]
        while parts:
            options = [(part, option) for part in parts for option in part]
            index = decoder.choose([text for _, (text, _) in options])
            part, (_, finish) = options[index]
            finish()
            parts.remove(part)

    def answers(self, decoder: PhraseDecoder, item: ItemFacts, match: RequestMatch) -> list[list]:
        """Parts (options of (frame text, finish)) saying how the item answers the request: what ``match`` holds."""
        parts: list[list] = []
        for title, shared in match.named:
            shared = [genre for genre in shared if genre in GENRE_WORDS]
            if shared:
                named = sanitise_untrusted(display_title(title), self.config.template.max_title_chars)
                finish = partial(self.closing_genre_phrase, decoder, shared)
                parts.append(
                    [(frame.format(named=named), partial(finish, article)) for frame, article in ASKED_LINK_FRAMES]
                )
        genres = [genre for genre in match.genres if genre in GENRE_WORDS]
        if genres:
            parts.append(
                [(frame, partial(self.closing_genre_phrase, decoder, genres, True)) for frame in ASKED_GENRE_FRAMES]
            )
        if match.years is not None:
            first, last = match.years
            if first % 10 == 0 and last == first + 9:
                parts.append([(frame.format(decade=first), lambda: None) for frame in ASKED_DECADE_FRAMES])
            else:
                parts.append([(frame.format(year=item.year), lambda: None) for frame in ASKED_YEAR_FRAMES])
        # One noun phrase per excluded genre, joined by "or": "not a horror film or a thriller".
        avoided = [
            with_article(GENRE_WORDS[g][1] or f"{GENRE_WORDS[g][0]} film") for g in match.avoided if g in GENRE_WORDS
        ]
        if avoided:
            parts.append([(frame.format(genres=" or ".join(avoided)), lambda: None) for frame in ASKED_AVOID_FRAMES])
        return parts

    def genre_phrase(self, decoder: PhraseDecoder, genres: Sequence[str], article: bool, adjectives: bool) -> None:
        """A noun phrase over a trie of genre words: an optional adjective, modifiers, then a head noun.

        The item's own phrase (``adjectives``) names at least two genres where it has them ("an
        animated family comedy", not "a comedy"): the model's likeliest phrase is the shortest.
        """
        words = [(genre, GENRE_WORDS[genre]) for genre in genres if genre in GENRE_WORDS]
        if not words:
            decoder.choose([" " + (with_article(noun) if article else noun) for noun in ("film", "movie")])
            return
        dark = DARK_GENRES.intersection(genres)
        opinions = [] if not adjectives else list(dict.fromkeys(
            word for genre in genres for word in GENRE_ADJECTIVES.get(genre, ())
            if not (dark and word in LIGHT_ADJECTIVES)
        ))  # fmt: skip
        used: list[str] = []
        least = min(2, len(words)) if adjectives else 1
        first = True
        while True:
            # (text, ends the phrase, genre it uses)
            options = [(adjective, False, None) for adjective in opinions if first]
            if len(used) < self.config.max_genre_words - 1:
                # Adjectival modifiers only before any noun one: "a romantic comedy", not "a comedy romantic movie".
                nouns_used = any(GENRE_WORDS[genre][0] not in ADJECTIVAL for genre in used)
                options += [
                    (modifier, False, genre)
                    for genre, (modifier, _, _) in words
                    if modifier and genre not in used and not (nouns_used and modifier in ADJECTIVAL)
                ]
            if len(used) + 1 >= least:
                options += [(head, True, genre) for genre, (_, head, _) in words if head and genre not in used]
            if len(used) >= least or not options:  # no genre word left to add (e.g. Action|Crime): end the phrase
                options += [("film", True, None), ("movie", True, None)]
            texts = [" " + (with_article(text) if article and first else text) for text, _, _ in options]
            _, ends, genre = options[decoder.choose(texts)]
            first = False
            if genre is not None:
                used.append(genre)
            if ends:
                return

    def phrase_list(self, decoder: PhraseDecoder, phrases: Sequence[str], limit: int) -> None:
        """Up to ``limit`` of ``phrases`` as "a, b and c" (which, in which order: the model's), then a full stop."""
        remaining = list(phrases)

        def pick(prefix: str) -> None:
            remaining.pop(decoder.choose([prefix + phrase for phrase in remaining]))

        pick(" ")
        named, pending_and = 1, False
        while remaining and named < limit:
            options = [" and"] + ([","] if named + 2 <= limit and len(remaining) >= 2 and not pending_and else [])
            options += [] if pending_and else ["."]
            choice = options[decoder.choose(options)]
            if choice == ".":
                return
            pending_and = choice == ","
            pick(" ")
            named += 1
            if not pending_and:
                break
        decoder.choose(["."])

    def tags(self, item: ItemFacts, profile: UserProfile) -> list[str]:
        """The item's tags a description may name: descriptive, not a genre word, not blocked; the user's first."""
        genre_words = {w for words in GENRE_WORDS.values() for w in words if w} | {g.lower() for g in GENRE_WORDS}
        usable = [
            tag for tag in item.tags
            if descriptive_tag(tag) and tag.lower() not in genre_words and not self.output_filter.find(tag)
            and len(tag.split()) <= 4
        ]  # fmt: skip
        liked = {tag.lower() for tag in profile.tags}
        return sorted(usable, key=lambda tag: tag.lower() not in liked)[: self.config.tag_choices]

    def tag_sentence(self, decoder: PhraseDecoder, item: ItemFacts, profile: UserProfile) -> list:
        """Options (frame text, finish) of the tags sentence; the model picks the frame, which tags and their order."""
        tags = self.tags(item, profile)
        if not tags or self.config.max_tags == 0:
            return []
        # Quoted as the viewers wrote them: the catalogue stores tags in lower case, and the model
        # cannot tell a name from a topic ("paul rudd", "heist"): 13 of 26 right on a probe.
        quoted = [f'"{tag}"' for tag in tags]
        finish = partial(self.phrase_list, decoder, quoted, self.config.max_tags)
        return [(frame, finish) for frame in TAG_FRAMES]

    def reasons(self, decoder: PhraseDecoder, item: ItemFacts, profile: UserProfile) -> list:
        """Options (frame text, finish) of why this user may like the item, each true of the profile's facts.

        A liked title that shares genres with the item ("If you enjoyed Heat, this is another crime
        thriller", the phrase over the shared genres only); genres and tags the profile and the item
        share ("It suits your taste for thrillers"); with neither, an honest "a change" sentence.
        """
        links = []
        for recency, liked in enumerate(profile.titles):
            shared = [
                genre for genre in item.genres if genre in self.title_genres.get(liked, ()) and genre in GENRE_WORDS
            ]
            # A liked title must read as one: "9" or "1" would not ("Like 9, which you liked").
            if shared and display_title(liked) != item.display_title and any(c.isalpha() for c in liked):
                links.append((-len(shared), recency, display_title(liked), shared))
        options: list[tuple[str, Callable[[], None]]] = []
        for _, _, liked, shared in sorted(links)[: self.config.max_links]:
            liked = sanitise_untrusted(liked, self.config.template.max_title_chars)
            for frame, article in LINK_FRAMES:
                options.append(
                    (frame.format(liked=liked), partial(self.closing_genre_phrase, decoder, shared, article))
                )
        genres = [GENRE_WORDS[g][2] for g in profile.genres if g in item.genres and g in GENRE_WORDS]
        tags = [tag for tag in self.tags(item, profile) if tag.lower() in {t.lower() for t in profile.tags}]
        shared = [*dict.fromkeys(genres + [f'"{tag}"' for tag in tags])]
        if shared:
            options += [(frame, partial(self.phrase_list, decoder, shared, 2)) for frame in TASTE_FRAMES]
        if not options and profile.titles:
            liked = sanitise_untrusted(display_title(profile.titles[0]), self.config.template.max_title_chars)
            options = [(frame.format(liked=liked), lambda: None) for frame in CHANGE_FRAMES]
        return options

    def closing_genre_phrase(self, decoder: PhraseDecoder, shared: list[str], article: bool) -> None:
        """The end of a sentence: a genre phrase over ``shared`` (the genres a liked or named title and the item
        share, or the wanted genres the item has), then a full stop."""
        self.genre_phrase(decoder, shared, article=article, adjectives=False)
        decoder.choose(["."])


TEXT_GENERATOR_TYPES.register(FactGenerator.name, FactGenerator)
