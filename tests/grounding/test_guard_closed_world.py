"""The closed-world guard: regressions of issue 31 (defects and quirks found on real SmolLM2 output)."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from genrec.cli import app
from genrec.grounding.facts import ItemFacts, UserProfile, profile_from_history
from genrec.grounding.guard import GroundingConfig
from genrec.pipelines import check_description
from genrec.pipelines.describe import description_checker

OFFLINE = GroundingConfig(support_encoder=None)  # the default guard never needs the encoder either


def item(dataset, item_id: int) -> ItemFacts:
    return ItemFacts.from_row(dataset.items.iloc[int(dataset.item_index([item_id])[0])].to_dict())


def test_a_text_cut_in_the_middle_of_a_title_is_judged_not_raised(movielens_small):
    text = "Toy Story is a fun comedy, like Harry Potter and the Deathly Hallows: Part"
    check = check_description(movielens_small, 1, text, OFFLINE)  # raised IndexError in _names
    assert not check.passed and not check.complete and "incomplete:" in check.reasons()


def test_liked_titles_are_facts_when_the_profile_or_user_is_given(movielens_small):
    text = "Since you liked Heat, Toy Story (1995) is a fun animated comedy for you."
    assert check_description(movielens_small, 1, text, OFFLINE).unsupported == ["title:Heat"]
    assert check_description(movielens_small, 1, text, OFFLINE, profile=["Heat"]).passed
    assert check_description(movielens_small, 1, text, OFFLINE, profile={"titles": ["Heat"]}).passed
    user = 1  # rated Heat 4.0: one of their liked titles
    assert "Heat" in profile_from_history(movielens_small, user, max_titles=None).titles
    assert check_description(movielens_small, 1, text, OFFLINE, user_id=user).passed


def test_the_profile_counts_the_history(movielens_small):
    profile = profile_from_history(movielens_small, 1)
    assert profile.user_id == 1 and len(profile.titles) == 3 and len(profile.genres) == 3
    history = movielens_small.items.iloc[movielens_small.sequence(0)]
    counts = pd.Series([g for gs in history["genres"] for g in gs]).value_counts()
    assert profile.genres[0] == counts.index[0]  # the most frequent genre first


def test_check_descriptions_command_reads_a_user_column(movielens_small, tmp_path):
    source = tmp_path / "texts.csv"
    text = "Since you liked Heat, Toy Story (1995) is a fun animated comedy for you."
    pd.DataFrame({"user_id": [1, 2], "item_id": [1, 1], "text": [text, text]}).to_csv(source, index=False)
    result = CliRunner().invoke(app, ["check-descriptions", str(source), "--out", str(tmp_path / "out.parquet")])
    assert result.exit_code == 0, result.output
    checked = pd.read_parquet(tmp_path / "out.parquet")
    assert checked["passed"].tolist() == [True, False]  # user 2 never rated Heat
    result = CliRunner().invoke(app, ["check-descriptions", str(source), "--user-column", "reader"])
    assert result.exit_code == 2 and "missing user column 'reader'" in " ".join(result.output.split())


def test_places_and_events_are_not_people(movielens_small):
    checker = description_checker(movielens_small, OFFLINE)
    text = "Life Is Beautiful is set in Nazi Germany during World War II."
    kinds = {claim.kind for claim in checker.claims(text, item(movielens_small, 2324))}
    assert "person" not in kinds and "name" in kinds  # still unverifiable: the facts only say "holocaust"
    ryan = checker.claims("Saving Private Ryan is set in World War II.", item(movielens_small, 2028))
    assert [(c.kind, c.text, c.supported) for c in ryan if c.text == "World War II"] == [("tag", "World War II", True)]


def test_a_title_without_its_punctuation_is_named(movielens_small):
    checker = description_checker(movielens_small, OFFLINE)
    roger = item(movielens_small, 2987)  # "Who Framed Roger Rabbit?"
    assert checker.names_title("Who Framed Roger Rabbit is a 1988 animated comedy.", roger)
    assert check_description(movielens_small, 2987, "Who Framed Roger Rabbit is a 1988 animated comedy.").passed


def test_praise_and_glad_you_enjoyed_are_not_about_the_item(movielens_small):
    praise = "This movie has been making headlines lately due to its innovative approach to storytelling."
    assert not check_description(movielens_small, 6365, praise).passed  # Matrix Reloaded, nothing about it
    glad = "I'm so glad you enjoyed Toy Story! It's a fun animated comedy."
    check = check_description(movielens_small, 1, glad)
    assert not check.passed and "seen:you enjoyed" in check.unsupported
    liked = "If you enjoyed Heat, Toy Story is a fun animated comedy."
    assert check_description(movielens_small, 1, liked, profile=["Heat"]).passed  # true of a liked title


def test_prompt_echoes_and_cut_texts_fail(movielens_small):
    echo = 'Movie: "Toy Story" (1995), which is a fun animated comedy.'
    assert "meta:movie:" in check_description(movielens_small, 1, echo).reasons()
    cut = "Toy Story is a fun animated comedy starring a young actor named Dr."
    assert not check_description(movielens_small, 1, cut).passed
    placeholder = "Toy Story is a fun comedy. [Your Name] loves it."
    assert not check_description(movielens_small, 1, placeholder).passed


def test_an_invented_plot_of_common_words_fails_sentence_by_sentence(movielens_small):
    plot = "Toy Story is a fun comedy about a young girl named Sarah who becomes a superhero."
    check = check_description(movielens_small, 1, plot)
    assert not check.passed and check.unstated == ["girl, named, Sarah, superhero"]
    opinion = "Toy Story (1995) is a fun animated comedy. It's a must-see that will leave you in awe!"
    assert check_description(movielens_small, 1, opinion).passed


def test_the_template_text_is_still_what_the_guard_accepts(movielens_small):
    text = "Because you enjoy Comedy, Toy Story (1995) is one for you. Genres: Comedy, Animation. People describe it as pixar and fun."  # noqa: E501
    check = check_description(movielens_small, 1, text, profile=UserProfile(genres=("Comedy",)))
    assert check.passed, check.reasons()


def test_the_texts_the_demo_accepted_before_are_refused(movielens_small):
    # Issue 31: `genrec demo` accepted these; the first two invent people and plots, the third says nothing.
    texts = {
        5377: "About a Boy is a comedy-drama that explores the life of a British spy, Nick Hornby, who was murdered "
        "by his own son.",
        3409: "Final Destination is a favorite among those who love children. It shows how a single director can "
        "bring together a diverse range of talented actors.",
        6934: "This movie has been making headlines lately due to its innovative approach to storytelling.",
    }
    for item_id, text in texts.items():
        check = check_description(movielens_small, item_id, text)
        assert not check.passed, (text, check.reasons())


def test_facts_used_names_what_a_description_rests_on():
    from genrec.grounding.facts import ItemFacts
    from genrec.grounding.guard import facts_used

    item = ItemFacts(item_id=1, title="Usual Suspects, The", year=1995, genres=("Crime", "Thriller"), tags=("twist",))
    text = 'The Usual Suspects (1995) is a tense crime film. Like Heat, which you liked, viewers tag it "twist".'
    assert facts_used(text, item, liked_titles=("Heat", "Alien")) == [
        "title",
        "year 1995",
        "genre Crime",
        "genre Thriller",
        'tag "twist"',
        "liked title Heat",
    ]
    assert facts_used("A must-see.", item) == []
    spider = ItemFacts(item_id=2, title="Spider-Man", year=2002, genres=("Action",))
    text = "Spider-Man is an action film. You liked Back to the Future Part III."
    liked = ("Back to the Future", "Back to the Future Part III")
    assert facts_used(text, spider, liked) == ["title", "genre Action", "liked title Back to the Future Part III"]
