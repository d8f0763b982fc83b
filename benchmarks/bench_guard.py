"""The grounding guard on hand-labelled real output: what it accepts, by label, on the calibration and test parts.

Reads tests/data/descriptions_labelled.jsonl (SmolLM2 output labelled faithful / false_claim /
generic / broken; docs/descriptions.md) and prints, per part and source, how many texts of each
label the guard accepts, the precision of acceptance (accepted texts that are faithful) and the
faithful recall (faithful texts accepted), for today's guard and, beside it, the guard of
``--old-rev`` (its guard.py read from git, so the comparison needs no copy of old code).

``--calibrate`` refits the sentence-support settings on the calibration part
(:func:`genrec.pipelines.describe.calibrate_guard`) and prints them with the grid; the
defaults in :class:`~genrec.grounding.guard.GroundingConfig` should equal them.
``--write-precision`` stores the test part's figures in ``genrec/grounding/guard_precision.json``,
which metrics.json reports as ``guard_precision``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_guard.py --calibrate --write-precision
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from genrec.data import load_dataset
from genrec.evaluation.text_metrics import guard_precision_recall
from genrec.grounding.facts import ItemFacts, UserProfile
from genrec.grounding.guard import GUARD_PRECISION_FILE, item_ratings
from genrec.io import write_json
from genrec.pipelines import check_descriptions
from genrec.pipelines.describe import calibrate_guard

ROOT = Path(__file__).resolve().parents[1]
LABELLED = ROOT / "tests" / "data" / "descriptions_labelled.jsonl"
LABELS = ("faithful", "false_claim", "generic", "broken")
OLD_REV = "9c9bf39"  # main before issue 31: the guard with the MiniLM about-item check


def old_guard_verdicts(dataset, rows: list[dict[str, Any]], revision: str) -> list[bool]:
    """The verdicts of the guard as it was at ``revision`` (its module source from git, run as-is)."""
    source = subprocess.run(
        ["git", "show", f"{revision}:genrec/grounding/guard.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    spec = importlib.util.spec_from_loader("genrec_old_guard", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    exec(compile(source, f"{revision}:genrec/grounding/guard.py", "exec"), module.__dict__)
    checker = module.GroundingChecker(dataset.items, ratings=item_ratings(dataset))
    items = dataset.items.iloc[dataset.item_index([row["item_id"] for row in rows])].to_dict("records")
    facts = [ItemFacts.from_row(item, checker.people_columns) for item in items]
    profiles = [UserProfile.coerce(row["profile"]) for row in rows]
    return [check.passed for check in checker.check_many([row["text"] for row in rows], facts, profiles)]


def figures(rows: list[dict[str, Any]], passed: list[bool]) -> dict[str, Any]:
    faithful = [row["label"] == "faithful" for row in rows]
    scores = guard_precision_recall(passed, faithful)
    accepted = Counter(row["label"] for row, ok in zip(rows, passed, strict=True) if ok)
    return {
        "texts": len(rows),
        "faithful": sum(faithful),
        "accepted": sum(passed),
        "accepted_by_label": {label: accepted.get(label, 0) for label in LABELS},
        "precision": scores["acceptance_precision"],
        "faithful_recall": scores["acceptance_recall"],
    }


def line(name: str, result: dict[str, Any]) -> str:
    by_label = " ".join(f"{label} {count}" for label, count in result["accepted_by_label"].items())
    return (
        f"  {name:<5} accepted {result['accepted']:>3} of {result['texts']:>3} ({by_label}); "
        f"precision {result['precision']:.3f}, faithful recall {result['faithful_recall']:.3f} "
        f"of {result['faithful']} faithful"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-rev", default=OLD_REV, help="git revision whose guard is compared")
    parser.add_argument("--calibrate", action="store_true", help="refit the support settings on calibration")
    parser.add_argument("--write-precision", action="store_true", help=f"write {GUARD_PRECISION_FILE.name}")
    parser.add_argument("--show", choices=("none", "accepted", "faithful"), default="none",
                        help="print the test texts the new guard accepts, or every faithful one")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)

    dataset = load_dataset("movielens-latest-small")
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    unlabelled = [row for row in rows if row["label"] not in LABELS]
    if unlabelled:
        raise ValueError(f"{LABELLED}: {len(unlabelled)} rows have no label, e.g. {unlabelled[0]['text']!r}")
    checks = check_descriptions(
        dataset, [row["item_id"] for row in rows], [row["text"] for row in rows], profiles=[r["profile"] for r in rows]
    )
    new = [check.passed for check in checks]
    old = old_guard_verdicts(dataset, rows, args.old_rev)
    results: dict[str, Any] = {}
    for part in ("calibration", "test"):
        for source in (None, *sorted({row["source"] for row in rows})):
            chosen = [i for i, row in enumerate(rows) if row["split"] == part and source in (None, row["source"])]
            subset = [rows[i] for i in chosen]
            print(f"{part} part, {source or 'all sources'}:")
            for name, verdicts in (("old", old), ("new", new)):
                result = figures(subset, [verdicts[i] for i in chosen])
                results[f"{part}/{source or 'all'}/{name}"] = result
                print(line(name, result))
    if args.show != "none":
        for row, check in zip(rows, checks, strict=True):
            if row["split"] == "test" and (check.passed if args.show == "accepted" else row["label"] == "faithful"):
                print(f"[{row['label']}, {'accepted' if check.passed else 'rejected'}] {row['title']}: {row['text']}")
                print(f"    reasons: {check.reasons()}")
    if args.calibrate:
        calibration = [row for row in rows if row["split"] == "calibration"]
        fitted = calibrate_guard(
            dataset,
            [row["item_id"] for row in calibration],
            [row["text"] for row in calibration],
            [row["label"] == "faithful" for row in calibration],
            [row["profile"] for row in calibration],
        )
        print("calibrated on the calibration part:", {k: v for k, v in fitted.items() if k != "grid"})
        for point in fitted["grid"]:
            print("  ", point)
    if args.write_precision:
        test = results["test/all/new"]
        write_json(
            GUARD_PRECISION_FILE,
            {
                "guard_precision": test["precision"],
                "faithful_recall": test["faithful_recall"],
                "accepted": test["accepted"],
                "faithful": test["faithful"],
                "texts": test["texts"],
                "provenance": (
                    "share of the texts the default guard accepts that a person labelled faithful, on the test "
                    "part of tests/data/descriptions_labelled.jsonl (real SmolLM2-135M output, split by item; "
                    "docs/descriptions.md); written by benchmarks/bench_guard.py --write-precision"
                ),
            },
        )
        print(f"wrote {GUARD_PRECISION_FILE}")


if __name__ == "__main__":
    main()
