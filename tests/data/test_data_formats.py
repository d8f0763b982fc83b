"""Every supported format loads from small files written by the test; format detection and overrides."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from genrec.data import Dataset, DataValidationError, load_dataset, resolve_source
from genrec.data.loaders import ML100K_GENRES, detect_format
from tests.conftest import write_recbole_ml100k

Write = Callable[..., Path]

RECBOLE_INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "1\t10\t4.0\t881250949.0\n"
    "1\t20\t3.0\t881250950\n"
    "2\t10\t5\t881250951\n"
)
RECBOLE_ITEM = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tgenre:token_seq\n"
    "10\tToy Story\t1995\tAnimation Children's Comedy\n"
    "20\tGoldenEye\t1995\tAction Adventure Thriller\n"
    "30\tunknown\tunkonwn\tunknown\n"  # RecBole's ml-100k.item spells item 267's year so
)


def u_item_line(item: int, title: str, genres: list[str]) -> str:
    flags = ["1" if genre in genres else "0" for genre in ML100K_GENRES]
    return "|".join([str(item), title, "01-Jan-1995", "", "http://us.imdb.com/x", *flags])


@pytest.fixture
def ml100k(write: Write) -> Path:
    data = "196\t1\t3\t881250949\n196\t2\t4\t881250950\n22\t2\t1\t881250951\n"
    bad_flag = u_item_line(2, "GoldenEye (1995)", [])[:-1] + "x"  # its last genre flag is not 0/1
    items = "\n".join([u_item_line(1, "Café (1995)", ["Comedy", "Drama"]), bad_flag])
    return write("ml-100k", {"u.data": data, "u.item": (items + "\n").encode("latin-1")})


@pytest.fixture
def ml1m(write: Write) -> Path:
    ratings = "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"
    movies = "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::Amélie (2001)::Comedy|Romance\n7:: ::Drama\n"
    return write("ml-1m", {"ratings.dat": ratings, "movies.dat": movies}, encoding="latin-1")


@pytest.fixture
def recbole(write: Write) -> Path:
    return write("ml-recbole", {"x.inter": RECBOLE_INTER, "x.item": RECBOLE_ITEM})


@pytest.fixture
def generic_csv(write: Write) -> Path:
    root = write(
        "shop",
        {
            "interactions.csv": "uid,sku,ts\nu1,A1,10\nu1,B2,20\nu2,A1,5\n",
            "items.csv": (
                "sku,title,genres,tags,year,description,image\n"
                "A1,Red Lamp (2019),home|light,cozy|red,,A lamp,img/A1.png\n"
                "B2,Blue Chair,home,,2020,A chair,https://example.com/b2.jpg\n"
                "C3,Green Rug,home,,n/a,A rug,\n"
            ),
        },
    )
    (root / "img").mkdir()
    Image.new("RGB", (4, 4), "red").save(root / "img" / "A1.png")
    return root


@pytest.fixture
def generic_parquet(tmp_path: Path) -> Path:
    root = tmp_path / "pq"
    root.mkdir()
    pd.DataFrame(
        {
            "user_id": [7, 7, 8],
            "item_id": ["x", "y", "x"],
            "timestamp": pd.to_datetime(["2021-01-01T00:00:10Z", "2021-01-01T00:00:00Z", "2021-01-02T00:00:00Z"]),
            "rating": [1.0, 2.5, 0.5],
        }
    ).to_parquet(root / "interactions.parquet")
    items = {"item_id": ["x", "y"], "title": ["Ex", "Why (1999)"], "genres": [["a", "b"], []], "year": ["20x1", None]}
    pd.DataFrame(items).to_parquet(root / "items.parquet")
    return root


def by_id(ds: Dataset, item_id: object) -> pd.Series:
    return ds.items.iloc[ds.item_index([item_id])[0]]


def user_items(ds: Dataset, user_id: object) -> list:
    return ds.item_ids[ds.sequence(ds.user_index([user_id])[0])].tolist()


def test_movielens_100k(ml100k: Path) -> None:
    ds = load_dataset(ml100k, min_user_interactions=1)
    assert ds.name == f"movielens-100k:{ml100k}"
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 2, 3)
    cafe = by_id(ds, 1)
    assert (cafe["title"], cafe["year"], cafe["genres"]) == ("Café", 1995, ["Comedy", "Drama"])
    assert by_id(ds, 2)["genres"] == [] and ds.report.invalid_metadata == {"genres": 1}
    assert user_items(ds, 196) == [1, 2]
    assert ds.interactions["rating"].tolist() == [1.0, 3.0, 4.0]  # user 22 sorts first


def test_movielens_1m(ml1m: Path) -> None:
    ds = load_dataset(ml1m, min_user_interactions=1)
    amelie = by_id(ds, 661)
    assert (amelie["title"], amelie["year"], amelie["genres"]) == ("Amélie", 2001, ["Comedy", "Romance"])
    assert by_id(ds, 1193)["title"] == "One Flew Over the Cuckoo's Nest"
    assert by_id(ds, 7)["title"] == "" and ds.report.invalid_metadata == {"title": 1}
    assert user_items(ds, 1) == [1193, 661]
    assert ds.interactions["timestamp"].dtype == np.int64


def test_movielens_latest_with_tags(ml_latest: Callable[..., Path]) -> None:
    ds = load_dataset(ml_latest())
    assert ds.report.invalid_metadata == {"tags": 1}  # the fixture's tag row on movie "n/a"
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 3, 6)
    heat = by_id(ds, 2)
    assert (heat["title"], heat["year"], heat["genres"]) == ("Heat, Part One", 1995, ["Action", "Crime"])
    assert by_id(ds, 1)["tags"] == ["pixar", "fun"]  # lower-cased, counted, most frequent first
    assert by_id(ds, 2)["tags"] == []  # a blank tag is ignored
    untitled = by_id(ds, 3)
    assert (untitled["title"], untitled["genres"]) == ("Untitled", [])
    assert pd.isna(untitled["year"])
    assert user_items(ds, 2) == [1, 3, 2]


def test_movielens_latest_without_tags(ml_latest: Callable[..., Path]) -> None:
    ds = load_dataset(ml_latest(tags=None))
    assert all(tags == [] for tags in ds.items["tags"])


def test_recbole_atomic_files(recbole: Path) -> None:
    ds = load_dataset(recbole, min_user_interactions=1)
    toy = by_id(ds, 10)
    assert (toy["title"], toy["year"], toy["genres"]) == ("Toy Story", 1995, ["Animation", "Children's", "Comedy"])
    assert ds.interactions["timestamp"].tolist() == [881250949, 881250950, 881250951]
    assert ds.interactions["rating"].tolist() == [4.0, 3.0, 5.0]
    assert pd.isna(by_id(ds, 30)["year"]) and ds.report.invalid_metadata == {"year": 1}


def test_recbole_ml100k_with_unknown_years_loads_with_defaults(tmp_path: Path) -> None:
    root = write_recbole_ml100k(tmp_path / "ml-100k")
    ds = load_dataset(f"recbole:{root}")
    assert ds.report.invalid_metadata == {"year": 2}
    assert pd.isna(by_id(ds, 267)["year"]) and by_id(ds, 1)["year"] == 1951
    [note] = [note for note in ds.report.messages if "release_year" in note]
    assert note == (
        f"{root / 'ml-100k.item'}:268: column 'release_year': expected a year (an integer of up to 4 digits) or an "
        "empty cell, got 'unkonwn'; 2 such rows (left missing for those items, on lines 268, 301)"
    )
    with pytest.raises(DataValidationError, match=r"ml-100k\.item:268: column 'release_year'"):
        load_dataset(f"recbole:{root}", strict_metadata=True)


def test_recbole_inter_file_without_item_file(write: Write) -> None:
    root = write("rb", {"only.inter": RECBOLE_INTER})
    ds = load_dataset(root / "only.inter", min_user_interactions=1)
    assert sorted(ds.items["title"]) == ["10", "20"]
    assert any("no item file" in message for message in ds.report.messages)


def test_generic_csv_with_column_mapping(generic_csv: Path) -> None:
    mapping = {"user_id": "uid", "item_id": "sku", "timestamp": "ts"}
    ds = load_dataset(generic_csv, columns=mapping, min_user_interactions=1)
    assert ds.name == f"csv:{generic_csv}"
    assert user_items(ds, "u1") == ["A1", "B2"]
    assert ds.interactions["rating"].isna().all()
    lamp, chair = by_id(ds, "A1"), by_id(ds, "B2")
    assert (lamp["title"], lamp["year"], lamp["genres"]) == ("Red Lamp", 2019, ["home", "light"])
    assert lamp["tags"] == ["cozy", "red"]
    assert (chair["year"], chair["tags"], chair["description"]) == (2020, [], "A chair")
    # relative image paths are relative to items.csv, URLs are kept unverified
    assert lamp["image_path"] == str(generic_csv / "img" / "A1.png")
    assert chair["image_path"] == "https://example.com/b2.jpg"
    assert ds.report.items_with_image == 2
    assert pd.isna(by_id(ds, "C3")["year"]) and ds.report.invalid_metadata == {"year": 1}


def test_generic_single_csv_file_and_iso_timestamps(write: Write) -> None:
    root = write(
        "iso",
        {
            "log.csv": (
                "user_id,item_id,timestamp,rating\n"
                "1,5,2020-01-01T01:00:00+01:00,1\n"  # the same instant as the next row
                "1,6,2020-01-01T00:00:00Z,2\n"
                "1,7,2020-01-02,3\n"
                "1,8,2019-12-31T23:59:59.900Z,4\n"
            )
        },
    )
    ds = load_dataset(root / "log.csv")
    assert ds.interactions["timestamp"].tolist() == [1577836799, 1577836800, 1577836800, 1577923200]
    assert user_items(ds, 1) == [8, 5, 6, 7]
    assert sorted(ds.items["title"]) == ["5", "6", "7", "8"]


def test_generic_parquet(generic_parquet: Path) -> None:
    ds = load_dataset(generic_parquet, min_user_interactions=1)
    assert resolve_source(generic_parquet)[0] == "parquet"
    assert user_items(ds, 7) == ["y", "x"]  # datetime column, sorted by time
    assert ds.interactions["timestamp"].tolist()[:2] == [1609459200, 1609459210]
    assert by_id(ds, "x")["genres"] == ["a", "b"]  # Parquet list column
    why = by_id(ds, "y")
    assert (why["title"], why["year"], why["genres"]) == ("Why", 1999, [])
    assert pd.isna(by_id(ds, "x")["year"]) and ds.report.invalid_metadata == {"year": 1}
    assert sorted(ds.interactions["rating"].tolist()) == [0.5, 1.0, 2.5]


def test_long_integer_ids_do_not_collide(write: Write) -> None:
    root = write("long", {"i.csv": "user_id,item_id,timestamp\n1,9007199254740993,1\n1,9007199254740992,2\n1,,3\n"})
    ds = load_dataset(root / "i.csv", invalid_rows="drop", min_user_interactions=1)
    assert ds.n_items == 2 and ds.n_interactions == 2  # float64 would merge the two ids


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("ml100k", "movielens-100k"),
        ("ml1m", "movielens-1m"),
        ("recbole", "recbole"),
        ("generic_csv", "csv"),
        ("generic_parquet", "parquet"),
    ],
)
def test_detect_format(fixture: str, expected: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(fixture)
    assert detect_format(path) == expected
    assert resolve_source(path) == (expected, path)


def test_detect_format_of_files(write: Write, ml_latest: Callable[..., Path], recbole: Path) -> None:
    assert detect_format(ml_latest()) == "movielens-latest"
    assert detect_format(recbole / "x.inter") == "recbole"
    root = write("files", {"a.csv": "x\n1\n", "b.tsv": "x\n1\n"})
    assert detect_format(root / "a.csv") == detect_format(root / "b.tsv") == "csv"


def test_explicit_format_prefix_and_override(write: Write, recbole: Path) -> None:
    assert resolve_source(f"recbole:{recbole}") == ("recbole", recbole)
    ds = load_dataset(f"recbole:{recbole}", min_user_interactions=1)
    assert ds.name == f"recbole:{recbole}" and ds.n_interactions == 3
    # an undetectable file loads once the format is named; format= wins over the prefix
    root = write("odd", {"events.log": "user_id,item_id,timestamp\n1,2,3\n"})
    assert load_dataset(root / "events.log", format="csv", min_user_interactions=1).n_interactions == 1
    assert resolve_source(f"recbole:{root / 'events.log'}", format="csv") == ("csv", root / "events.log")


def test_path_with_colon_is_not_a_format_prefix(write: Write) -> None:
    root = write("a:b", {"interactions.csv": "user_id,item_id,timestamp\n1,2,3\n"})
    assert resolve_source(root) == ("csv", root)
