"""The fact-bound generator on the tiny random-weight LM: its text states only the facts, whatever the model picks."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from genrec.data import Dataset
from genrec.generators import TEXT_GENERATORS, create_text_generator, list_text_generators, text_facts
from genrec.generators.text_base import DescriptionRequest
from genrec.generators.text_facts import FactGenerator
from genrec.grounding.facts import ItemFacts, UserProfile, display_title, profile_from_history
from genrec.pipelines import check_description, generate_descriptions

pytestmark = pytest.mark.usefixtures("single_thread")

WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
# Items with many genres, tags of every kind (people, places, quotes) and none at all.
ITEMS = (1, 2, 6, 32, 47, 50, 110, 260, 296, 318, 356, 480, 527, 589, 593, 1089, 2571, 2959, 4993, 7153)


@pytest.fixture(scope="module")
def tiny(movielens_small) -> FactGenerator:
    return create_text_generator("tiny-facts", dataset=movielens_small)


def request(dataset: Dataset, item_id, user_id=1, profile: UserProfile | None = None) -> DescriptionRequest:
    row = dataset.items.iloc[dataset.item_index([item_id])[0]].to_dict()
    profile = profile if profile is not None else profile_from_history(dataset, user_id)
    return DescriptionRequest(user_id, ItemFacts.from_row(row), profile)


def frame_words() -> set[str]:
    """Every word the code itself may write: frames, genre words, opinion adjectives."""
    texts = [*text_facts.OPENINGS, *text_facts.OPENINGS_WITHOUT_YEAR, *text_facts.TASTE_FRAMES]
    texts += [*text_facts.CHANGE_FRAMES, *text_facts.TAG_FRAMES, *(frame for frame, _ in text_facts.LINK_FRAMES)]
    texts += [word for words in text_facts.GENRE_WORDS.values() for word in words if word]
    texts += [word for words in text_facts.GENRE_ADJECTIVES.values() for word in words]
    texts += ["a an and film movie this"]
    return {w.lower() for text in texts for w in WORD.findall(re.sub(r"\{\w+\}", "", text))}


def fact_words(item: ItemFacts, profile: UserProfile) -> set[str]:
    """Words of the item's title, year and tags and of the user's liked titles."""
    texts = [item.title, item.display_title, *item.tags, *profile.titles, *map(display_title, profile.titles)]
    return {w.lower() for text in texts for w in WORD.findall(text)} | ({str(item.year)} if item.year else set())


def test_presets_are_registered_and_smollm2_stays_the_free_generator():
    assert {"smollm2", "smollm2-facts", "tiny-facts"} <= set(list_text_generators())
    assert TEXT_GENERATORS.get("smollm2-facts").type == "facts" and TEXT_GENERATORS.get("smollm2").type == "llm"
    assert TEXT_GENERATORS.get("smollm2-facts").config["model"] == "smollm2"


def test_every_word_is_the_frame_or_a_fact_and_every_name_or_number_is_a_fact(tiny, movielens_small):
    allowed = frame_words()
    for item_id in ITEMS:
        for user_id in (1, 414):
            req = request(movielens_small, item_id, user_id)
            text = tiny.compose(req)
            facts = fact_words(req.item, req.profile)
            words = WORD.findall(text)
            assert {w.lower() for w in words} <= allowed | facts, (text, {w.lower() for w in words} - allowed - facts)
            # A capitalised word inside a sentence, or a number, is a name: the facts hold it.
            inner = [w for i, w in enumerate(words) if i and (w[:1].isupper() or w[:1].isdigit())]
            sentence_starts = {m.group(1) for m in re.finditer(r"(?:^|[.!?]\s+)([^\W_]+)", text)}
            names = {w.lower() for w in inner if w not in sentence_starts} - {"it", "if", "like", "you", "viewers"}
            assert names <= facts, (text, names - facts)
            check = check_description(movielens_small, item_id, text, profile=req.profile)
            assert check.passed, (text, check.reasons())


def test_the_reason_names_a_liked_title_that_shares_the_genres_it_states(tiny, movielens_small):
    # Heat (Action|Crime|Thriller): Toy Story shares no genre, The Usual Suspects shares Crime and Thriller.
    profile = UserProfile(7, genres=("Comedy",), titles=("Toy Story", "Usual Suspects, The"))
    for attempt in range(6):
        text = tiny.compose(request(movielens_small, 6, 7, profile), attempt)
        reason = next(s for s in re.split(r"(?<=\.) ", text) if "Usual Suspects" in s)
        assert "Toy Story" not in text and "comed" not in reason
        stated = set(WORD.findall(reason.split("Suspects", 1)[1].lower()))
        assert stated & {"crime", "thriller"} and not stated & {"action", "comedy", "drama"}, text


def test_no_genres_no_tags_no_year_and_no_shared_taste(tiny):
    bare = ItemFacts(item_id=-1, title="Nameless Picture")
    assert tiny.compose(DescriptionRequest(1, bare, UserProfile(1))) in ("Nameless Picture is a film.",
                                                                          "Nameless Picture is a movie.")  # fmt: skip
    text = tiny.compose(DescriptionRequest(1, bare, UserProfile(1, genres=("Drama",), titles=("Heat",))))
    assert text.startswith("Nameless Picture is a") and ("Heat" in text or "usual picks" in text)


@pytest.mark.parametrize("seed", range(8))
def test_a_genre_phrase_always_has_a_way_to_end(seed, movielens_small):
    """Animation|Comedy (Isle of Dogs): after the noun modifier "comedy", "animated" may not follow and Animation
    has no head noun; the phrase must still end ("a comedy film"), not run out of options."""
    generator = create_text_generator("tiny-facts", {"seed": seed}, movielens_small)
    item = ItemFacts(item_id=-1, title="Two Modifiers", year=2001, genres=("Animation", "Comedy"))
    text = generator.compose(DescriptionRequest(1, item, UserProfile(1, genres=("Action",), titles=("Heat",))))
    assert "Two Modifiers" in text and text.endswith(".")


def test_seeded_deterministic_and_independent_of_batching(tiny, movielens_small):
    batch = [request(movielens_small, item_id) for item_id in ITEMS[:4]]
    once = tiny.write(batch, attempt=0)
    assert once == [tiny.write([r], attempt=0)[0] for r in batch]
    assert once == create_text_generator("tiny-facts", dataset=movielens_small).write(batch, attempt=0)
    retries = [tiny.write(batch, attempt=a) for a in range(1, 4)]
    assert any(other != once for other in retries)  # a regeneration is a new draw


def test_describe_and_the_pipeline_report_first_tries(tiny, movielens_small, tmp_path):
    recommendations = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [1, 2571, 318]})
    profiles = {user: profile_from_history(movielens_small, user) for user in (1, 2)}
    table = generate_descriptions(tiny, recommendations, profiles, movielens_small, tmp_path, progress=False)
    assert table["source"].tolist() == ["llm"] * 3, table[["description", "unsupported"]].to_dict("records")
    assert table.attrs["report"]["rates"]["llm_pass_rate"] == 1.0


def test_saved_generator_reloads_to_identical_output(tiny, movielens_small, tmp_path):
    batch = [request(movielens_small, item_id) for item_id in ITEMS[:3]]
    tiny.save_pretrained(tmp_path / "saved")
    reloaded = FactGenerator.from_pretrained(tmp_path / "saved", dataset=movielens_small)
    assert isinstance(reloaded, FactGenerator) and not reloaded.config.random_weights
    assert reloaded.write(batch, attempt=0) == tiny.write(batch, attempt=0)


def test_profile_from_history_counts_genres_and_tags_and_keeps_recent_liked_titles(movielens_small):
    user = 1
    history = movielens_small.histories()
    profile = profile_from_history(movielens_small, user, max_genres=2, max_titles=2)
    row = int(movielens_small.user_index([user])[0])
    items = movielens_small.items.iloc[history[row]]
    counts = pd.Series([g for gs in items["genres"] for g in gs]).value_counts()
    assert profile.genres == tuple(counts.index[:2]) and counts.iloc[1] > counts.iloc[2]
    ratings = history.ratings[history.offsets[row] : history.offsets[row + 1]]
    liked = items["title"].to_numpy()[ratings >= 4.0][::-1]
    assert profile.titles == tuple(liked[:2]) and "in netflix queue" not in profile.tags


def test_profile_from_history_reads_only_the_history_it_is_given(movielens_small):
    from genrec.evaluation import split

    held_out = split(movielens_small)
    row = int(np.flatnonzero(held_out.test.users == movielens_small.user_index([5])[0])[0])
    target = movielens_small.items["title"].to_numpy()[held_out.test.targets[row][0]]
    profile = profile_from_history(movielens_small, 5, held_out.train, max_titles=50)
    assert target not in profile.titles and profile.user_id == 5


def test_the_opinion_adjectives_claim_nothing_the_guard_checks(movielens_small):
    from genrec.pipelines.describe import description_checker

    checker, item = description_checker(movielens_small), ItemFacts(item_id=-1, title="Nameless Picture")
    for adjective in {word for words in text_facts.GENRE_ADJECTIVES.values() for word in words}:
        claims = checker.claims(f"Nameless Picture is a {adjective} film.", item)
        assert [str(claim) for claim in claims if not claim.supported] == [], adjective
