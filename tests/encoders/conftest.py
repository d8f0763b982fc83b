"""Fixtures for encoder tests: hand-made catalogues, image files of every kind, the tiny encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genrec.data import Dataset, LoadOptions, ValidationReport
from genrec.data.dataset import build_dataset
from genrec.encoders import Encoder, create_encoder


def make_dataset(items: list[dict], interactions: list[tuple] | None = None, name: str = "test") -> Dataset:
    """A Dataset from item dicts (item_id, title, genres, tags, year, image_path) and
    (user_id, item_id, timestamp, rating) rows; default: user 1 saw every item in order."""
    table = pd.DataFrame(
        {
            "item_id": [item["item_id"] for item in items],
            "title": [item.get("title", "") for item in items],
            "genres": [item.get("genres", []) for item in items],
            "tags": [item.get("tags", []) for item in items],
            "year": pd.array([item.get("year") for item in items], dtype="Int64"),
            "image_path": pd.Series([item.get("image_path") for item in items], dtype=object),
        }
    )
    rows = interactions or [(1, item["item_id"], 1000 + step, 4.0) for step, item in enumerate(items)]
    log = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])
    log["timestamp"] = log["timestamp"].astype(np.int64)
    log["rating"] = log["rating"].astype(float)
    log["line"] = np.arange(2, len(log) + 2)
    options = LoadOptions(min_user_interactions=1)
    return build_dataset(name, log, table, options, ValidationReport(), "test interactions")


def write_jpeg(path: Path, size: tuple[int, int] = (40, 60), colour=(200, 30, 30), mode: str = "RGB") -> str:
    from PIL import Image

    Image.new(mode, size, colour).save(path, format="JPEG")
    return str(path)


@pytest.fixture(name="make_dataset")
def make_dataset_fixture():
    return make_dataset


@pytest.fixture(name="write_jpeg")
def write_jpeg_fixture():
    return write_jpeg


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    """Every encoder test runs on one torch thread (``single_thread``, tests/conftest.py)."""


@pytest.fixture(scope="session")
def tiny() -> Encoder:
    return create_encoder("tiny", {"num_workers": 0})


@pytest.fixture(scope="session")
def minilm() -> Encoder:
    return create_encoder("minilm", {"batch_size": 8})
