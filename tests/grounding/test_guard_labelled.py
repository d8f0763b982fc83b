"""The guard on hand-written probes: every planted hallucination is caught for the claim it plants.

tests/grounding/data/labelled_descriptions.csv holds descriptions of bundled items written by
hand: correct ones (naming the title in any case, or paraphrasing the item without naming it),
one hallucination of every claim kind, gibberish, off-topic, injected and profane texts
(obfuscated ones too). The guard's figures that matter are measured on real model output
(tests/grounding/test_guard_real_output.py); these probes check each kind of failure on its
own. Closed world, a paraphrase that tells the plot in words no fact holds ("a doomed ocean
liner") is rejected although true: the probes measure that cost too.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from genrec.evaluation.text_metrics import guard_precision_recall
from genrec.grounding.guard import CLAIM_KINDS
from genrec.pipelines import check_description, check_descriptions

LABELLED = Path(__file__).parent / "data" / "labelled_descriptions.csv"
# Asserted on the test split (the guard as a detector of bad descriptions, and what it lets through).
MIN_PRECISION = 0.8  # rejected texts that are bad (true paraphrases are rejected too, closed world)
MIN_RECALL = 0.9  # bad texts rejected
MIN_ACCEPTANCE_PRECISION = 0.95  # accepted texts that are good
MIN_ACCEPTANCE_RECALL = 0.5  # good texts accepted: hand-written ones use words no fact states
CLAIM_CATEGORIES = set(CLAIM_KINDS) - {"name", "seen"}  # the probes predate these two kinds
OTHER_CATEGORIES = {"correct", "paraphrase", "gibberish", "off_topic", "injected", "profane"}


def labelled(split: str) -> list[dict[str, str]]:
    with LABELLED.open(encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if row["split"] == split]


def test_the_labelled_set_covers_every_category_and_the_splits_are_disjoint():
    test, calibration = labelled("test"), labelled("calibration")
    assert len(test) >= 40
    assert {row["category"] for row in test} == CLAIM_CATEGORIES | OTHER_CATEGORIES
    assert not {row["text"] for row in test} & {row["text"] for row in calibration}
    assert {row["label"] for row in test} == {"pass", "fail"}


def test_guard_precision_and_recall_on_the_test_split(movielens_small):
    rows = labelled("test")
    checks = check_descriptions(movielens_small, [int(row["item_id"]) for row in rows], [row["text"] for row in rows])
    figures = guard_precision_recall([check.passed for check in checks], [row["label"] == "pass" for row in rows])
    wrong = [(row["category"], row["text"], check.reasons()) for row, check in zip(rows, checks, strict=True)
             if check.passed != (row["label"] == "pass")]  # fmt: skip
    assert figures["precision"] >= MIN_PRECISION, wrong
    assert figures["recall"] >= MIN_RECALL, wrong
    assert figures["acceptance_precision"] >= MIN_ACCEPTANCE_PRECISION, wrong
    assert figures["acceptance_recall"] >= MIN_ACCEPTANCE_RECALL, wrong
    # Each paraphrase tells the plot in words no fact states; each hallucination is rejected for the
    # claim it plants, listed as unsupported or unverifiable.
    for row, check in zip(rows, checks, strict=True):
        if row["category"] == "paraphrase":
            assert any(reason.startswith("unstated:") for reason in check.reasons()), (row["text"], check.reasons())
        elif row["category"] in CLAIM_CATEGORIES:
            claims = check.unsupported + check.unverifiable
            # A person the catalogue knows only as a tag ("keanu reeves") is claimed as that tag.
            kinds = ("person", "name", "tag") if row["category"] == "person" else (row["category"],)
            assert any(claim.split(":")[0] in kinds for claim in claims), (row["text"], claims)


def test_check_description_fields(movielens_small):
    check = check_description(movielens_small, 3114, "Toy Story 2: The Lion King premiered in 1997.")
    assert not check.passed and check.about_item and check.fluent
    assert check.unsupported == ["title:The Lion King", "year:1997"] and check.blocked == []
    check = check_description(movielens_small, 2571, "The Matrix won an Oscar, a 1999 sci-fi thriller.")
    assert not check.passed and check.unsupported == [] and check.unverifiable == ["award:Oscar"]
    check = check_description(movielens_small, 2571, "the matrix is a 1999 sci-fi thriller about philosophy.")
    assert check.passed and check.names_title and check.similarity is None  # no encoder needed
    check = check_description(movielens_small, 1, "Toy Story is a sh1t comedy.")
    assert not check.passed and check.blocked == ["profanity:shit"]
    with pytest.raises(KeyError, match="999999999"):
        check_description(movielens_small, 999999999, "Anything.")
