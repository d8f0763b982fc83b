"""The guard on sentences that answer the reader's request (issue 27): true ones pass, false ones fail for the
claim they make, labelled like tests/grounding/data/labelled_descriptions.csv (item, request, text, label, reason)."""

from __future__ import annotations

import pytest

from genrec.grounding.facts import ItemFacts
from genrec.grounding.guard import CLAIM_KINDS, GroundingConfig
from genrec.pipelines import check_description, check_descriptions
from genrec.pipelines.describe import description_checker
from genrec.requests import ParsedRequest

OFFLINE = GroundingConfig(support_encoder=None)
ALIEN, ALIENS, MARS_ATTACKS, GALAXY_QUEST, AIRPLANE = 1214, 1200, 1391, 3175, 2791


def asked(dataset, name: str) -> ParsedRequest | None:
    row = {item_id: int(dataset.item_index([item_id])[0]) for item_id in (ALIEN, AIRPLANE)}
    return {
        "none": None,
        "like Alien, but funny": ParsedRequest(
            "like Alien, but funny", named_items=(row[ALIEN],), want_genres=("Comedy",)
        ),
        "a 90s comedy, no horror or thrillers": ParsedRequest(
            "a 90s comedy, no horror or thrillers", want_genres=("Comedy",), avoid_genres=("Horror", "Thriller"),
            years=(1990, 1999),
        ),
        "a 70s comedy": ParsedRequest("a 70s comedy", want_genres=("Comedy",), years=(1970, 1979)),
        "something scary": ParsedRequest("something scary", want_genres=("Horror",)),
        "like Airplane!": ParsedRequest("like Airplane!", named_items=(row[AIRPLANE],)),
    }[name]  # fmt: skip


TRUE = [
    (MARS_ATTACKS, "like Alien, but funny",
     "You asked for something like Alien, but funny: Mars Attacks! is a sci-fi comedy from 1996."),
    (MARS_ATTACKS, "like Alien, but funny",
     "Mars Attacks! (1996) is an action comedy. You asked for something like Alien, and this is another science "
     "fiction film. As you asked, it is a comedy."),
    (ALIENS, "like Alien, but funny",
     "Aliens (1986) is an action science fiction film. Like Alien, which you asked about, it is a horror film."),
    (AIRPLANE, "like Alien, but funny", "Airplane! (1980) is a funny comedy. It is what you asked for: a comedy."),
    (MARS_ATTACKS, "a 90s comedy, no horror or thrillers",
     "Mars Attacks! (1996) is an action comedy. It is from the 1990s, as you asked. As you asked, it is not a "
     "horror film or a thriller."),
    (GALAXY_QUEST, "a 90s comedy, no horror or thrillers",
     "Galaxy Quest (1999) is an adventure comedy. It is listed without Horror or Thriller, as you asked."),
    (GALAXY_QUEST, "like Airplane!",
     "Galaxy Quest (1999) is an adventure comedy. Like Airplane!, which you asked about, it is a comedy."),
]  # fmt: skip
# (item, request, text, the reason it must fail for)
FALSE = [
    (ALIEN, "a 90s comedy, no horror or thrillers",
     "Alien (1979) is a science fiction film. It is the comedy you asked for.", "genre:comedy"),
    (ALIEN, "a 90s comedy, no horror or thrillers",
     "Alien (1979) is a science fiction film. It is from the 90s, as you asked.", "decade:90s"),
    (MARS_ATTACKS, "like Alien, but funny",
     "Mars Attacks! (1996) is a comedy. Like Alien, which you asked about, it is a comedy.", "request:Alien"),
    (ALIENS, "like Alien, but funny",
     "Aliens (1986) is an action film. Like Alien, which you asked about, it is a comedy.", "genre:comedy"),
    (MARS_ATTACKS, "none", "Mars Attacks! (1996) is a comedy. As you asked, it is a comedy.", "request:As you asked"),
    (MARS_ATTACKS, "none", "Like Alien, Mars Attacks! (1996) is a science fiction film.", "title:Alien"),
    (AIRPLANE, "something scary", "Airplane! (1980) is a comedy. It is the comedy you asked for.",
     "request:you asked for"),
    (ALIEN, "a 90s comedy, no horror or thrillers",
     "Alien (1979) is a science fiction film. As you asked, it is not a horror film.", "genre:not horror"),
    (MARS_ATTACKS, "a 90s comedy, no horror or thrillers",
     "Mars Attacks! (1996) is an action film. It is not a comedy or a horror film, as you asked.",
     "genre:not comedy"),
    (MARS_ATTACKS, "a 70s comedy", "Mars Attacks! (1996) is an action film. It is a 1996 comedy, as you asked.",
     "request:as you asked"),
]  # fmt: skip


@pytest.mark.parametrize(("item_id", "request_name", "text"), TRUE)
def test_true_request_sentences_pass(item_id, request_name, text, movielens_small):
    check = check_description(movielens_small, item_id, text, OFFLINE, request=asked(movielens_small, request_name))
    assert check.passed, check.reasons()


@pytest.mark.parametrize(("item_id", "request_name", "text", "reason"), FALSE)
def test_false_request_claims_fail_for_the_claim_they_make(item_id, request_name, text, reason, movielens_small):
    check = check_description(movielens_small, item_id, text, OFFLINE, request=asked(movielens_small, request_name))
    assert not check.passed and reason in check.reasons(), check.reasons()


def test_a_denial_of_a_genre_the_catalogue_does_not_list_is_unverifiable(movielens_small):
    checker = description_checker(movielens_small, OFFLINE)
    bare = ItemFacts(item_id=-1, title="Nameless Picture", year=1995)
    request = asked(movielens_small, "a 90s comedy, no horror or thrillers")
    claims = checker.claims("Nameless Picture is not a horror film, as you asked.", bare, request=request)
    assert [(c.kind, c.text, c.status) for c in claims if c.kind == "genre"] == [
        ("genre", "not horror", "unverifiable")
    ]


def test_request_claims_are_a_kind_the_config_can_switch_off(movielens_small):
    assert "request" in CLAIM_KINDS
    text = "Mars Attacks! (1996) is a comedy. As you asked, it is a comedy."
    unchecked = GroundingConfig(support_encoder=None, check=tuple(k for k in CLAIM_KINDS if k != "request"))
    assert check_description(movielens_small, MARS_ATTACKS, text, unchecked).passed
    assert not check_description(movielens_small, MARS_ATTACKS, text, OFFLINE).passed


def test_check_descriptions_judges_every_text_against_the_one_request(movielens_small):
    texts = [text for item_id, _, text in TRUE[:4]]
    ids = [item_id for item_id, _, _ in TRUE[:4]]
    request = asked(movielens_small, "like Alien, but funny")
    assert all(check.passed for check in check_descriptions(movielens_small, ids, texts, OFFLINE, request=request))
    assert not any(check.passed for check in check_descriptions(movielens_small, ids, texts, OFFLINE))
