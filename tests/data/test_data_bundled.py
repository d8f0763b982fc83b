"""The bundled MovieLens latest-small data set, loaded from the installed package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genrec.data import Dataset, list_datasets, list_formats, load_dataset
from tests.conftest import write_posters


def test_bundled_counts(bundled: Dataset) -> None:
    assert (bundled.n_users, bundled.n_items, bundled.n_interactions) == (610, 9742, 100836)
    assert bundled.name == "movielens-latest-small"
    stats = bundled.stats()
    assert stats["users"] == 610 and stats["has_ratings"] and stats["history_length"]["min"] == 20
    assert "movielens-latest-small" in list_datasets()
    assert {"movielens-latest", "movielens-1m", "movielens-100k", "recbole", "csv", "parquet"} <= set(list_formats())


def test_bundled_report_is_clean(bundled: Dataset) -> None:
    report = bundled.report
    assert sum(report.rows_read.values()) == 100836
    assert report.duplicate_rows_dropped == report.invalid_rows_dropped == report.unknown_item_rows_dropped == 0
    assert report.users_below_min_history == 0
    assert report.items_without_interactions == 18  # listed in movies.csv, never rated


def test_bundled_item_metadata(bundled: Dataset) -> None:
    toy_story = bundled.items.iloc[bundled.item_index([1])[0]]
    assert (toy_story["title"], toy_story["year"]) == ("Toy Story", 1995)
    assert toy_story["genres"] == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    assert toy_story["tags"] == ["pixar", "fun"]  # aggregated from three tag rows, most frequent first
    assert toy_story["image_path"] is None
    assert all(isinstance(genres, list) for genres in bundled.items["genres"])
    assert not any("(no genres listed)" in genres for genres in bundled.items["genres"])
    assert not bundled.items["title"].str.contains(r"\(\d{4}\)\s*$").any()  # years split off everywhere
    assert bundled.items["year"].notna().sum() > 9700


def test_bundled_sequences_are_chronological(bundled: Dataset) -> None:
    table = bundled.interactions
    users = table["user_idx"].to_numpy()
    times = table["timestamp"].to_numpy()
    assert np.all(np.diff(users) >= 0)
    same_user = np.diff(users) == 0
    assert np.all(np.diff(times)[same_user] >= 0)
    assert bundled.user_offsets[-1] == bundled.n_interactions
    for user in (0, 300, bundled.n_users - 1):
        start, stop = bundled.user_offsets[user], bundled.user_offsets[user + 1]
        np.testing.assert_array_equal(bundled.sequence(user), table["item_idx"].to_numpy()[start:stop])


def test_bundled_indices_are_contiguous(bundled: Dataset) -> None:
    table = bundled.interactions
    assert set(np.unique(table["user_idx"])) == set(range(bundled.n_users))
    assert table["item_idx"].between(0, bundled.n_items - 1).all()
    assert list(bundled.items.index) == list(range(bundled.n_items))


def test_bundled_id_maps_round_trip(bundled: Dataset) -> None:
    np.testing.assert_array_equal(bundled.user_index(bundled.user_ids.tolist()), np.arange(bundled.n_users))
    np.testing.assert_array_equal(bundled.item_index(bundled.item_ids.tolist()), np.arange(bundled.n_items))
    assert bundled.user_ids[bundled.user_index([414])[0]] == 414
    assert bundled.item_ids[bundled.item_index([318])[0]] == 318
    assert bundled.item_index(["318"])[0] == bundled.item_index([318])[0]  # ids as text are accepted
    with pytest.raises(KeyError, match=r"unknown user id 99999 \(610 users known\)"):
        bundled.user_index([99999])
    with pytest.raises(KeyError, match="unknown item id 'no-such-movie'"):
        bundled.item_index(["no-such-movie"])


def test_bundled_with_posters(bundled: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Synthetic posters (no ../shared needed) for 40 bundled items, given as a relative directory."""
    write_posters(tmp_path / "posters" / "images", bundled.item_ids[:40].tolist())
    monkeypatch.chdir(tmp_path)
    ds = load_dataset("movielens-latest-small", images="posters/images")
    assert ds.stats()["items_with_image"] == 40
    assert ds.report.items_with_image == 40 and ds.report.items_without_image == ds.n_items - 40
    assert ds.report.items_corrupt_image == ds.report.items_missing_image == 0
    with_image = ds.items.dropna(subset=["image_path"])
    stems = [Path(path).stem for path in with_image["image_path"]]
    assert stems == [str(item) for item in with_image["item_id"]]
