"""An Amazon Reviews data set in each release loads, splits, trains hstu and gets grounded descriptions (issue 26)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from genrec.data import load_dataset
from genrec.pipelines import evaluate_ranker, fit_ranker, split
from genrec.pipelines.settings import RunSettings
from genrec.pipelines.stages import run_pipeline
from genrec.rankers import create_ranker
from genrec.run_directory import RunDirectory
from tests.data.amazon_files import NAMES, write_amazon

pytestmark = pytest.mark.usefixtures("single_thread")
TINY_HSTU = {"max_len": 6, "hidden": 16, "inner": 32, "heads": 2, "layers": 1, "epochs": 2, "patience": 2}


@pytest.mark.parametrize("release", list(NAMES))
def test_each_release_splits_and_trains_hstu(release: str, tmp_path: Path) -> None:
    dataset = load_dataset(write_amazon(tmp_path / release, release), protocol="amazon")
    the_split = split(dataset)
    ranker = create_ranker("hstu", TINY_HSTU)
    report = fit_ranker(ranker, the_split, progress=False)
    assert report.epochs >= 1 and report.best_valid_ndcg10 is not None
    metrics = evaluate_ranker(ranker, the_split, progress=False).metrics
    assert 0.0 <= metrics["NDCG@10"] <= 1.0


def test_generation_uses_the_product_text_as_facts(tmp_path: Path) -> None:
    data = write_amazon(tmp_path / "2023", "2023")
    user = str(load_dataset(data).user_ids[0])
    settings = RunSettings.model_validate(
        {
            "dataset": f"amazon:{data}",
            "ranker": "hstu",
            "ranker_overrides": TINY_HSTU,
            "users": {"mode": "ids", "ids": [user]},
            "k": 2,
            "generation": {"text_generator": "template"},
        }
    )
    out = run_pipeline(settings, tmp_path / "run", progress=False)
    descriptions = pd.read_parquet(out / RunDirectory.DESCRIPTIONS)
    assert len(descriptions) >= 2
    for title, text in zip(descriptions["title"], descriptions["description"], strict=True):
        assert title.startswith("Moisturiser No.") and title in text  # written from the item's facts
    assert (descriptions["unsupported"].map(len) == 0).all()  # the guard found nothing beyond the facts
