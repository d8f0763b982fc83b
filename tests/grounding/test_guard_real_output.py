"""The guard on hand-labelled real SmolLM2 output: figures asserted on the test part, settings fitted on calibration.

tests/data/descriptions_labelled.jsonl (docs/descriptions.md) holds raw first tries of the
``smollm2`` preset and greedy few-shot texts of the same model, each labelled faithful /
false_claim / generic / broken, split by item. What a reader needs from the guard: of what it
accepts, nearly everything is faithful; and it does not refuse most of the faithful texts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genrec.evaluation.text_metrics import guard_precision_recall
from genrec.grounding.guard import GroundingConfig, measured_precision
from genrec.pipelines import check_descriptions
from genrec.pipelines.describe import calibrate_guard

LABELLED = Path(__file__).parents[1] / "data" / "descriptions_labelled.jsonl"
LABELS = {"faithful", "false_claim", "generic", "broken"}
MIN_PRECISION = 0.95  # accepted texts of the test part that are faithful
MIN_FAITHFUL_RECALL = 0.5  # faithful texts of the test part that are accepted

pytestmark = pytest.mark.usefixtures("single_thread")


def labelled(split: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    return [row for row in rows if split in (None, row["split"])]


def verdicts(dataset, rows: list[dict]) -> list[bool]:
    checks = check_descriptions(
        dataset, [r["item_id"] for r in rows], [r["text"] for r in rows], profiles=[r["profile"] for r in rows]
    )
    return [check.passed for check in checks]


def test_the_set_is_real_output_labelled_and_split_by_item():
    rows = labelled()
    assert sum(row["source"] == "smollm2" for row in rows) >= 200  # raw first tries of the preset
    assert all(row["label"] in LABELS and row["reason"] for row in rows)
    calibration, test = labelled("calibration"), labelled("test")
    assert len(calibration) + len(test) == len(rows)
    assert not {row["item_id"] for row in calibration} & {row["item_id"] for row in test}
    assert len({(row["user_id"], row["item_id"], row["source"]) for row in rows}) == len(rows)
    for part in (calibration, test):
        assert {row["label"] for row in part} == LABELS


def test_guard_precision_and_faithful_recall_on_the_test_part(movielens_small):
    rows = labelled("test")
    passed = verdicts(movielens_small, rows)
    figures = guard_precision_recall(passed, [row["label"] == "faithful" for row in rows])
    wrong = [(row["label"], row["text"]) for row, ok in zip(rows, passed, strict=True)
             if ok != (row["label"] == "faithful")]  # fmt: skip
    assert figures["acceptance_precision"] >= MIN_PRECISION, wrong
    assert figures["acceptance_recall"] >= MIN_FAITHFUL_RECALL, wrong
    # The figure the package ships (and metrics.json reports) is this measurement.
    assert measured_precision()["guard_precision"] == pytest.approx(figures["acceptance_precision"])


@pytest.mark.slow
def test_default_support_settings_are_the_ones_fitted_on_the_calibration_part(movielens_small):
    rows = labelled("calibration")
    fitted = calibrate_guard(
        movielens_small,
        [row["item_id"] for row in rows],
        [row["text"] for row in rows],
        [row["label"] == "faithful" for row in rows],
        [row["profile"] for row in rows],
    )
    defaults = GroundingConfig()
    assert (fitted["max_unstated"], fitted["support_threshold"]) == (defaults.max_unstated, defaults.support_threshold)
    assert fitted["precision"] >= MIN_PRECISION
