"""Input that used to slip through (issue 10): each case now raises a located error or is
counted in the validation report."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from genrec.data import load_dataset
from tests.data.helpers import HEADER, MlLatest, Write, error_of

# --- CSV records spanning lines -----------------------------------------------------------


def test_quoted_newline_keeps_later_line_numbers(ml_latest: MlLatest) -> None:
    movies = 'movieId,title,genres\n1,"Toy\nStory (1995)",Animation\n2,Heat (1995),Action\n2,Heat again,Action\n'
    root = ml_latest(movies=movies)
    message = error_of(lambda: load_dataset(root))
    # physical lines: 2-3 hold movie 1, 4 holds movie 2, 5 repeats it
    assert message == (
        f"{root / 'movies.csv'}:5: column 'movieId': item id 2 is listed again (first on line 4); "
        "expected each item once"
    )


def test_quoted_blank_line_keeps_the_next_row(ml_latest: MlLatest) -> None:
    movies = 'movieId,title,genres\n1,"Toy\n\nStory (1995)",Animation\n2,Heat (1995),Action\n3,Untitled,Drama\n'
    tags = 'userId,movieId,tag,timestamp\n1,1,"two\n\nparagraphs",100\n1,2,heist,101\n'
    ds = load_dataset(ml_latest(movies=movies, tags=tags))
    assert ds.items["title"].tolist() == ["Toy\n\nStory", "Heat", "Untitled"]
    assert ds.items["tags"].tolist() == [["two\n\nparagraphs"], ["heist"], []]
    # the row after the quoted blank line is not dropped: a repeat of it is found, on its line
    root = ml_latest("dup", movies=movies + "3,Untitled again,Drama\n")
    assert error_of(lambda: load_dataset(root)).startswith(
        f"{root / 'movies.csv'}:7: column 'movieId': item id 3 is listed again (first on line 6)"
    )


def test_record_after_a_multiline_field_is_located_on_its_physical_line(ml_latest: MlLatest) -> None:
    tags = 'userId,movieId,tag,timestamp\n1,1,"a\nb\nc",100\n1,,heist,101\n'
    root = ml_latest(tags=tags)
    assert error_of(lambda: load_dataset(root, strict_metadata=True)).startswith(
        f"{root / 'tags.csv'}:5: column 'movieId': expected an integer movie id"
    )
    assert any("(left missing for those items, on lines 5)" in note for note in load_dataset(root).report.messages)


def test_unclosed_quote_names_the_line_it_opens_on(ml_latest: MlLatest) -> None:
    root = ml_latest(movies='movieId,title,genres\n1,Toy Story (1995),Animation\n2,"Heat (1995),Action\n3,X,Y\n')
    assert error_of(lambda: load_dataset(root)) == (
        f"{root / 'movies.csv'}:3: a quoted field that starts in this record is never closed (expected a closing '\"')"
    )


def test_quoted_record_with_too_many_fields(ml_latest: MlLatest) -> None:
    root = ml_latest(movies='movieId,title,genres\n1,"Toy\nStory",Animation\n2,Heat,Action,extra\n')
    assert error_of(lambda: load_dataset(root)) == (
        f"{root / 'movies.csv'}:4: expected 3 ','-separated fields (as on the first line), found 4"
    )


# --- values accepted silently before ------------------------------------------------------


def test_movielens_user_ids_must_be_integers(ml_latest: MlLatest) -> None:
    root = ml_latest(more_ratings="alice,1,4.0,400\n")
    assert error_of(lambda: load_dataset(root)) == (
        f"{root / 'ratings.csv'}:8: column 'userId': expected an integer user id (this format's ids are "
        "integers), got 'alice'; 1 such rows (use invalid_rows='drop' to drop and report them)"
    )
    ds = load_dataset(root, invalid_rows="drop")
    assert ds.user_ids.tolist() == [1, 2] and ds.report.invalid_rows_dropped == 1


def test_movielens_tag_item_ids_must_be_integers(ml_latest: MlLatest) -> None:
    root = ml_latest(tags="userId,movieId,tag,timestamp\n1,1,fun,100\n1,one,fun,101\n")
    expected = (
        f"{root / 'tags.csv'}:3: column 'movieId': expected an integer movie id (this format's ids are "
        "integers), got 'one'; 1 such rows"
    )
    assert error_of(lambda: load_dataset(root, strict_metadata=True)).startswith(expected)
    ds = load_dataset(root)  # a tag is optional metadata: the row is left out and counted
    assert ds.report.invalid_metadata == {"tags": 1}
    assert ds.items["tags"].tolist()[0] == ["fun"]


@pytest.mark.parametrize("rating", ["1e300", "7", "0", "-1"])
def test_movielens_ratings_outside_the_scale(ml_latest: MlLatest, rating: str) -> None:
    root = ml_latest(more_ratings=f"2,2,{rating},400\n")
    assert error_of(lambda: load_dataset(root)) == (
        f"{root / 'ratings.csv'}:8: column 'rating': expected a rating from 0.5 to 5 (this format's range), "
        f"got '{rating}'; 1 such rows (use invalid_rows='drop' to drop and report them)"
    )


def test_movielens_1m_ratings_are_whole_stars_from_1(write: Write) -> None:
    root = write("ml-1m", {"ratings.dat": "1::2::5::9\n1::2::0.5::10\n", "movies.dat": "2::B::Drama\n"})
    assert error_of(lambda: load_dataset(root)).startswith(
        f"{root / 'ratings.dat'}:2: column 'rating': expected a rating from 1 to 5 (this format's range), got '0.5'"
    )


def test_generic_rating_that_overflows_float32(write: Write) -> None:
    root = write("g", {"interactions.csv": "user_id,item_id,timestamp,rating\n1,a,1,4\n1,b,2,1e300\n1,c,3,-1e39\n"})
    assert error_of(lambda: load_dataset(root)) == (
        f"{root / 'interactions.csv'}:3: column 'rating': expected a number of magnitude at most 3.4e+38, "
        "got '1e300'; 2 such rows (use invalid_rows='drop' to drop and report them)"
    )
    ds = load_dataset(root, invalid_rows="drop", min_user_interactions=1)
    assert ds.interactions["rating"].tolist() == [4.0] and ds.report.invalid_rows_dropped == 2


def test_invalid_year_in_an_items_parquet(tmp_path: Path) -> None:
    root = tmp_path / "pq"
    root.mkdir()
    interactions = {"user_id": [1, 1, 1], "item_id": ["x", "y", "z"], "timestamp": [1, 2, 3]}
    pd.DataFrame(interactions).to_parquet(root / "interactions.parquet")
    items = {"item_id": ["x", "y", "z"], "title": ["X", "Y", "Z"], "year": ["1999", "soon", None]}
    pd.DataFrame(items).to_parquet(root / "items.parquet")
    assert error_of(lambda: load_dataset(root, strict_metadata=True)) == (
        f"{root / 'items.parquet'}:2: column 'year': expected a year (an integer of up to 4 digits) or an empty "
        "cell, got 'soon'; 1 such rows (strict_metadata is on; without it such values are left missing and counted)"
    )
    ds = load_dataset(root)
    assert ds.items["year"].tolist()[0] == 1999 and ds.items["year"].isna().tolist() == [False, True, True]
    assert ds.report.invalid_metadata == {"year": 1}
    assert "invalid metadata left missing: year 1" in str(ds.report)


def test_numeric_year_column_in_parquet_still_loads(tmp_path: Path) -> None:
    root = tmp_path / "pq"
    root.mkdir()
    pd.DataFrame({"user_id": [1], "item_id": ["x"], "timestamp": [1]}).to_parquet(root / "interactions.parquet")
    pd.DataFrame({"item_id": ["x", "y"], "title": ["X", "Y"], "year": [1999.0, None]}).to_parquet(
        root / "items.parquet"
    )
    ds = load_dataset(root, min_user_interactions=1)
    assert ds.items["year"].tolist()[0] == 1999 and ds.items["year"].isna().tolist() == [False, True]


def test_folder_with_two_formats_names_both(ml_latest: MlLatest) -> None:
    root = ml_latest()
    (root / "interactions.csv").write_text("user_id,item_id,timestamp\n1,1,1\n1,2,2\n1,3,3\n")
    assert error_of(lambda: load_dataset(root)) == (
        f"{root}: holds the files of 2 formats: movielens-latest (ratings.csv, movies.csv); "
        f"csv (interactions.csv); pick one as FORMAT:PATH, e.g. movielens-latest:{root}"
    )
    assert load_dataset(f"movielens-latest:{root}").n_interactions == 6
    assert load_dataset(f"csv:{root}", min_user_interactions=1).n_interactions == 3


def test_csv_and_parquet_interaction_files_are_told_apart(write: Write) -> None:
    root = write("g", {"interactions.csv": "user_id,item_id,timestamp\n1,a,1\n"})
    pd.DataFrame({"user_id": [2, 2], "item_id": ["b", "c"], "timestamp": [1, 2]}).to_parquet(
        root / "interactions.parquet"
    )
    assert "holds the files of 2 formats: csv (interactions.csv); parquet (interactions.parquet)" in error_of(
        lambda: load_dataset(root)
    )
    assert load_dataset(f"parquet:{root}", min_user_interactions=1).user_ids.tolist() == [2]
    assert load_dataset(f"csv:{root}", min_user_interactions=1).user_ids.tolist() == [1]


def test_milliseconds_mixed_with_seconds(ml_latest: MlLatest) -> None:
    root = ml_latest(ratings=HEADER + "1,1,4.0,1500000000\n1,2,4.0,1500000100\n1,3,4.0,1500000050000\n")
    assert error_of(lambda: load_dataset(root)) == (
        f"{root / 'ratings.csv'}:4: column 'timestamp': expected a Unix timestamp in seconds like the column's "
        "other 2 rows (the column mixes seconds with milliseconds; convert it to one unit), got '1500000050000'; "
        "1 such rows (use invalid_rows='drop' to drop and report them)"
    )


def test_a_column_of_milliseconds_alone_loads(ml_latest: MlLatest) -> None:
    root = ml_latest(ratings=HEADER + "1,1,4.0,1500000000000\n1,2,4.0,1500000100000\n1,3,4.0,1500000050000\n")
    assert load_dataset(root).sequence(0).tolist() == [0, 2, 1]


def test_items_without_an_image_file_are_counted(ml_latest: MlLatest, tmp_path: Path) -> None:
    images = tmp_path / "posters"
    images.mkdir()
    Image.new("RGB", (4, 4)).save(images / "1.png")
    ds = load_dataset(ml_latest(), images=images)
    assert (ds.report.items_with_image, ds.report.items_without_image, ds.report.items_missing_image) == (1, 2, 0)
    assert "items without image: 2" in str(ds.report)
    assert load_dataset(ml_latest("no-images")).report.items_without_image == 3


def test_repeated_test_items_are_counted(ml_latest: MlLatest) -> None:
    # user 1 consumes item 1 again last; user 2 repeats item 3 in the middle
    root = ml_latest(more_ratings="1,1,4.5,400\n2,3,3.0,165\n")
    ds = load_dataset(root)
    assert (ds.report.repeat_interactions, ds.report.test_items_already_seen) == (2, 1)
    assert (
        "2 interactions repeat an item the user had before; 1 users' leave-one-out test item is already in their "
        "history, so with seen items excluded it can never be hit (split with SplitConfig(allow_repeats=True) "
        "for re-purchase data)"
    ) in ds.report.messages
    assert "test items already seen: 1" in str(ds.report)


# --- errors instead of tracebacks ---------------------------------------------------------


def test_oversized_image_becomes_text_only(ml_latest: MlLatest, tmp_path: Path, monkeypatch) -> None:
    images = tmp_path / "posters"
    images.mkdir()
    Image.new("RGB", (40, 40)).save(images / "1.png")  # 1600 pixels: twice the limit below is a bomb
    Image.new("RGB", (4, 4)).save(images / "2.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 700)
    ds = load_dataset(ml_latest(), images=images)
    assert ds.items["image_path"].tolist() == [None, str(images / "2.png"), None]
    assert (ds.report.items_with_image, ds.report.items_oversized_image, ds.report.items_corrupt_image) == (1, 1, 0)
    assert any(
        m.startswith(f"{images / '1.png'}: image of item 1: more pixels than the decompression-bomb limit (Image size")
        and m.endswith("; kept text-only")
        for m in ds.report.messages
    )


def test_ratings_file_that_is_a_directory(ml_latest: MlLatest) -> None:
    root = ml_latest()
    (root / "ratings.csv").unlink()
    (root / "ratings.csv").mkdir()
    assert error_of(lambda: load_dataset(root)) == f"{root / 'ratings.csv'}: is a directory; expected a file"


def test_symbolic_link_loops(ml_latest: MlLatest, tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    expected = f"{loop}: symbolic link loop (the link leads back to itself)"
    assert error_of(lambda: load_dataset(loop)) == f"{expected}; expected a data file or directory"
    assert error_of(lambda: load_dataset(ml_latest(), images=loop)) == (
        f"{expected}; expected a directory of <item_id>.<ext> images"
    )
    root = ml_latest("tags-loop", tags=None)
    os.symlink(root / "tags.csv", root / "tags.csv")
    assert error_of(lambda: load_dataset(root)) == f"{root / 'tags.csv'}: {expected.split(': ', 1)[1]}; expected a file"
    images = tmp_path / "posters"
    images.mkdir()
    os.symlink(images / "1.jpg", images / "1.jpg")
    ds = load_dataset(ml_latest("b"), images=images)
    assert ds.report.items_corrupt_image == 1
    assert (
        f"{images / '1.jpg'}: image of item 1: symbolic link loop (the link leads back to itself); kept text-only"
        in (ds.report.messages)
    )


# --- vague messages made precise ----------------------------------------------------------


def test_iso_dates_mixed_with_unix_timestamps(ml_latest: MlLatest) -> None:
    root = ml_latest(more_ratings="2,2,3.0,2020-01-01T00:00:00\n")
    assert error_of(lambda: load_dataset(root)) == (
        f"{root / 'ratings.csv'}:8: column 'timestamp': expected a Unix timestamp like the column's other 6 rows "
        "(the column mixes Unix timestamps with ISO-8601 date-times; write one kind throughout), got "
        "'2020-01-01T00:00:00'; 1 such rows (use invalid_rows='drop' to drop and report them)"
    )
    dates = HEADER + "".join(f"1,{i},4.0,2020-01-0{i}T00:00:00\n" for i in (1, 2, 3)) + "2,1,4.0,1577836800\n"
    root = ml_latest("dates", ratings=dates)
    assert error_of(lambda: load_dataset(root)).startswith(
        f"{root / 'ratings.csv'}:5: column 'timestamp': expected an ISO-8601 date-time like the column's other 3 "
        "rows (the column mixes ISO-8601 date-times with Unix timestamps; write one kind throughout), got '1577836800'"
    )


def test_unparsable_timestamp_among_mixed_kinds_is_reported_first(ml_latest: MlLatest) -> None:
    root = ml_latest(more_ratings="2,2,3.0,2020-01-01\n2,1,3.0,soon\n")
    ds = load_dataset(root, invalid_rows="drop")
    path = root / "ratings.csv"
    assert ds.report.invalid_rows_dropped == 2
    assert ds.report.messages[0].startswith(f"{path}:9: column 'timestamp': expected a Unix timestamp in seconds or")
    assert ds.report.messages[1].startswith(f"{path}:8: column 'timestamp': expected a Unix timestamp like the")


@pytest.mark.parametrize("quoted", [False, True])
def test_a_column_named_twice_in_the_header(ml_latest: MlLatest, quoted: bool) -> None:
    title = '"Toy, Story"' if quoted else "Toy Story"
    root = ml_latest(movies=f"movieId,title,movieId\n1,{title},2\n")
    assert error_of(lambda: load_dataset(root)) == (
        f"{root / 'movies.csv'}:1: the header names column 'movieId' twice; expected unique column names"
    )
