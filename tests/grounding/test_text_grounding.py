"""Claim extraction and checking (every kind), title matching, and the template generator that passes the guard."""

from __future__ import annotations

import pandas as pd
import pytest

from genrec.config import ConfigError
from genrec.generators.template import TemplateGenerator, join_words, shared_first
from genrec.generators.text_base import DescriptionRequest
from genrec.grounding.facts import ItemFacts, UserProfile, display_title
from genrec.grounding.guard import GroundingChecker, GroundingConfig
from genrec.pipelines.describe import description_checker


@pytest.fixture(scope="module")
def checker(movielens_small) -> GroundingChecker:
    return description_checker(movielens_small, GroundingConfig(support_encoder=None))


@pytest.fixture(scope="module")
def toy_story(movielens_small) -> ItemFacts:
    return ItemFacts.from_row(movielens_small.items.iloc[0].to_dict())  # Toy Story (1995), tags pixar, fun


def kinds(claims) -> list[tuple[str, str, str]]:
    return [(claim.kind, claim.text, claim.status) for claim in claims]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Toy Story 2 continues it.", [("title", "Toy Story 2", "unsupported")]),
        ("Released in 1999.", [("year", "1999", "unsupported")]),
        ("A gripping Western.", [("genre", "Western", "unsupported")]),
        ("Full of time travel.", [("tag", "time travel", "unsupported")]),
        ("Robin Williams shines.", [("tag", "Robin Williams", "unsupported")]),  # a name-like tag
        ("Like GoldenEye, but gentler.", [("title", "GoldenEye", "unsupported")]),
        ("Jumanji is gentler.", [("title", "Jumanji", "unsupported")]),  # a one-word title opening a sentence
        ("Set in the 1980s.", [("decade", "1980s", "unsupported")]),
        ("It opened on March 3, 1995.", [("date", "March 3, 1995", "unverifiable")]),
        ("It won two Oscars.", [("award", "Oscars", "unverifiable")]),
        ("It grossed a lot.", [("box_office", "grossed", "unverifiable")]),
        ("A remake, of course.", [("relation", "remake", "unverifiable")]),
        ("It runs 81 minutes.", [("number", "81", "unverifiable")]),
        ("Rated 2 out of 5.", [("rating", "Rated 2 out of 5", "unsupported")]),
        (
            "Scored 90% on Rotten Tomatoes.",
            [("rating", "Scored 90%", "unverifiable"), ("rating", "Rotten Tomatoes", "unverifiable")],
        ),
    ],
)
def test_planted_claims_of_every_kind_are_caught(checker, toy_story, text, expected):
    assert kinds(checker.unsupported(text, toy_story)) == expected


def test_true_claims_pass(checker, toy_story):
    text = "Toy Story (1995) is a fun pixar Comedy with Adventure and Animation for Children, rated 3.9 out of 5."
    claims = checker.claims(text, toy_story)
    assert {claim.kind for claim in claims} == {"title", "year", "tag", "genre", "rating"}
    assert all(claim.supported for claim in claims)
    assert checker.unsupported("Because you liked Heat, try this.", toy_story, UserProfile(titles=("Heat",))) == []
    assert checker.unsupported("A 1990s animated classic.", toy_story) == []


def test_titles_match_in_any_case_and_without_their_article(checker, movielens_small):
    matrix = ItemFacts.from_row(movielens_small.items[movielens_small.items["item_id"] == 2571].iloc[0].to_dict())
    for text in ("The Matrix is here.", "the matrix is here.", "THE MATRIX is here.", "Matrix is here."):
        assert checker.names_title(text, matrix), text
        assert checker.unsupported(text, matrix) == []
    assert not checker.names_title("A film about a matrix of numbers.", ItemFacts(item_id=0, title="Heat"))


def test_everyday_words_that_are_tags_claim_nothing(checker, toy_story):
    assert checker.unsupported("A classic you will love; never boring, with a twist.", toy_story) == []
    assert checker.unsupported("Great acting and a great soundtrack.", toy_story) == []


def test_words_inside_an_allowed_title_claim_nothing(checker, movielens_small):
    vacation = movielens_small.items[movielens_small.items["title"].str.startswith("Christmas Vacation (")]
    item = ItemFacts.from_row(vacation.iloc[0].to_dict())  # genre Comedy only: "Vacation" is a title too
    assert checker.unsupported("Christmas Vacation (1989), a Christmas Comedy.", item) == []
    assert kinds(checker.unsupported("Christmas Vacation, or rather Vacation.", item)) == [
        ("title", "Vacation", "unsupported")
    ]


def test_matches_do_not_cross_punctuation(checker, toy_story):
    assert kinds(checker.unsupported("It has space, action and fun.", toy_story)) == [
        ("genre", "action", "unsupported"),
    ]


def test_lower_case_words_and_everyday_words_are_not_titles(checker, toy_story):
    assert checker.unsupported("Feel the heat of this one.", toy_story) == []
    assert checker.unsupported("Heat is not mentioned as a title here.", toy_story) == []  # everyday word
    assert kinds(checker.unsupported("It beats Heat.", toy_story)) == [("title", "Heat", "unsupported")]
    assert checker.unsupported("A war hero and the children love it.", toy_story) == []


def test_people_columns_are_checked():
    items = pd.DataFrame(
        {
            "item_id": [1, 2],
            "title": ["Alpha", "Beta"],
            "genres": [["Drama"], ["Drama"]],
            "tags": [[], []],
            "year": [2001, 2002],
            "director": [["Ada Lovelace"], ["Alan Turing"]],
        }
    )
    checker = GroundingChecker(items)
    alpha = ItemFacts.from_row(items.iloc[0].to_dict(), checker.people_columns)
    assert checker.unsupported("Directed by Ada Lovelace in 2001.", alpha) == []
    assert kinds(checker.unsupported("Directed by Alan Turing.", alpha)) == [("person", "Alan Turing", "unverifiable")]


def test_claim_kinds_can_be_switched_off_and_unknown_kinds_are_rejected(movielens_small, toy_story):
    lenient = GroundingChecker(movielens_small.items, GroundingConfig(check=("title",)))
    assert lenient.unsupported("A 1999 Western.", toy_story) == []
    with pytest.raises(ConfigError, match="unknown claim kinds"):
        GroundingConfig.from_dict({"check": ["title", "rumour"]})


def test_display_title_moves_trailing_articles_and_drops_alternative_titles():
    assert display_title("Usual Suspects, The") == "The Usual Suspects"
    assert display_title("City of Lost Children, The (Cité des enfants perdus, La)") == "The City of Lost Children"
    assert display_title("Heat") == "Heat"


def test_template_puts_shared_attributes_first_and_is_deterministic(toy_story):
    profile = UserProfile(genres=("Drama", "Comedy", "Animation"), tags=("fun",))
    request = DescriptionRequest(1, toy_story, profile)
    text = TemplateGenerator().compose(request)
    assert text.startswith("Because you enjoy Comedy, Animation and fun, Toy Story (1995) is one for you.")
    assert "It is listed as Comedy, Animation, Adventure and Children." in text
    assert text == TemplateGenerator().compose(request)
    stranger = TemplateGenerator().compose(DescriptionRequest(2, toy_story, UserProfile(genres=("Horror",))))
    assert stranger.startswith("Toy Story (1995) is a change from your usual picks.")
    assert "Horror" not in stranger


def test_template_output_is_grounded_across_the_catalogue(checker, movielens_small):
    generator = TemplateGenerator()
    profile = UserProfile(genres=("Drama", "Comedy", "Sci-Fi"), tags=("atmospheric", "funny", "twist ending"))
    rows = movielens_small.items.iloc[::7].to_dict("records")
    requests = [DescriptionRequest(1, ItemFacts.from_row(row), profile) for row in rows]
    descriptions, report = generator.describe(requests)
    checks = checker.check_many(
        [d.text for d in descriptions], [r.item for r in requests], [r.profile for r in requests]
    )
    failures = [(d.text, c.reasons()) for d, c in zip(descriptions, checks, strict=True) if not c.passed]
    assert failures == []
    assert report.template == len(requests) and report.blocked == 0


def test_template_helpers():
    assert join_words([]) == "" and join_words(["a"]) == "a" and join_words(["a", "b", "c"]) == "a, b and c"
    assert shared_first(["Drama", "Comedy"], ["comedy", "War"]) == (["Comedy"], ["Drama"])
