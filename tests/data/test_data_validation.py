"""Bad input: every problem raises a DataValidationError naming file, line or column and the
expectation, or, under a drop/keep policy, is counted and located in the ValidationReport."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pydantic import ValidationError

from genrec.data import LoadOptions, load_dataset
from genrec.data.loaders import ML100K_GENRES
from tests.data.helpers import HEADER, MlLatest, Write, error_of


def jpeg_bytes(size: tuple[int, int] = (120, 80)) -> bytes:
    """A real JPEG of noise, large enough that cutting off its tail leaves the headers intact."""
    noise = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="JPEG")
    return buffer.getvalue()


# --- interaction files --------------------------------------------------------------------


def test_missing_columns(ml_latest: MlLatest) -> None:
    root = ml_latest(ratings="userId,movieId,rating\n1,1,4.0\n")
    message = error_of(lambda: load_dataset(root))
    assert message == (
        f"{root / 'ratings.csv'}: missing required column(s) ['timestamp']; found ['userId', 'movieId', 'rating']"
    )


def test_empty_user_id(ml_latest: MlLatest) -> None:
    root = ml_latest(ratings=HEADER + "1,1,4.0,100\n ,2,3.5,200\n")
    message = error_of(lambda: load_dataset(root))
    assert message.startswith(f"{root / 'ratings.csv'}:3: column 'userId': expected a non-empty user id, got ' '")
    assert "invalid_rows='drop'" in message


def test_unparsable_timestamp(ml_latest: MlLatest) -> None:
    root = ml_latest(more_ratings="2,2,3.0,yesterday\n")
    message = error_of(lambda: load_dataset(root))
    assert message.startswith(
        f"{root / 'ratings.csv'}:8: column 'timestamp': expected a Unix timestamp in seconds or an ISO-8601 "
        "date-time, got 'yesterday'; 1 such rows"
    )


def test_timestamp_out_of_range(ml_latest: MlLatest) -> None:
    root = ml_latest(more_ratings="2,2,3.0,1e30\n")
    assert error_of(lambda: load_dataset(root)).startswith(f"{root / 'ratings.csv'}:8: column 'timestamp': expected")


def test_unparsable_rating(ml_latest: MlLatest) -> None:
    root = ml_latest(ratings=HEADER + "1,1,4.0,100\n1,2,five,200\n1,3,nan,300\n")
    message = error_of(lambda: load_dataset(root))
    assert message.startswith(f"{root / 'ratings.csv'}:3: column 'rating': expected a number, got 'five'; 2 such rows")


def test_invalid_rows_drop_is_reported(ml_latest: MlLatest) -> None:
    root = ml_latest(more_ratings=",1,4.0,400\n2,2,bad,500\n")
    ds = load_dataset(root, invalid_rows="drop")
    assert ds.report.invalid_rows_dropped == 2
    assert ds.n_interactions == 6
    path = root / "ratings.csv"
    assert any(m.startswith(f"{path}:8: column 'userId': expected a non-empty user id") for m in ds.report.messages)
    assert any(m.startswith(f"{path}:9: column 'rating': expected a number") for m in ds.report.messages)
    assert "invalid rows dropped: 2" in str(ds.report)


def test_duplicates_raise(ml_latest: MlLatest) -> None:
    root = ml_latest(more_ratings="1,2,1.0,200\n")
    message = error_of(lambda: load_dataset(root, duplicates="raise"))
    assert message.startswith(
        f"{root / 'ratings.csv'}:8: duplicate (user, item, timestamp) = (1, 2, 200), expected each at most once"
    )


def test_duplicates_dropped_by_default_and_reported(ml_latest: MlLatest) -> None:
    root = ml_latest(more_ratings="1,2,1.0,200\n2,3,1.0,160\n")
    ds = load_dataset(root)
    assert ds.report.duplicate_rows_dropped == 2
    assert ds.n_interactions == 6
    assert ds.interactions["rating"].tolist().count(1.0) == 1  # the first of each duplicate is kept
    [note] = [note for note in ds.report.messages if "duplicate (user, item" in note]
    assert note.startswith(f"{root / 'ratings.csv'}:8: duplicate") and note.endswith("(kept the first of each)")


def test_unknown_item_raises(ml_latest: MlLatest) -> None:
    root = ml_latest(more_ratings="1,99,4.0,400\n")
    message = error_of(lambda: load_dataset(root))
    assert message.startswith(
        f"{root / 'ratings.csv'}:8: column 'movieId': item id 99 is not in the item table (expected a listed item)"
    )
    assert "unknown_items='drop'" in message


def test_unknown_items_dropped_and_reported(ml_latest: MlLatest) -> None:
    root = ml_latest(more_ratings="1,99,4.0,400\n2,98,4.0,400\n")
    ds = load_dataset(root, unknown_items="drop")
    assert ds.report.unknown_item_rows_dropped == 2
    assert ds.n_interactions == 6
    assert any(m.startswith(f"{root / 'ratings.csv'}:8: column 'movieId'") for m in ds.report.messages)


def test_empty_file(ml_latest: MlLatest) -> None:
    root = ml_latest(ratings=" \n\n")
    assert error_of(lambda: load_dataset(root)) == f"{root / 'ratings.csv'}: file is empty"


def test_header_only_file(ml_latest: MlLatest) -> None:
    root = ml_latest(ratings=HEADER + "\n")
    assert error_of(lambda: load_dataset(root)) == f"{root / 'ratings.csv'}: file has a header but no data rows"


def test_invalid_utf8_names_the_line(ml_latest: MlLatest) -> None:
    root = ml_latest(ratings=(HEADER + "1,1,4.0,100\n").encode() + b"1,2,\xff4.0,200\n")
    message = error_of(lambda: load_dataset(root))
    offset = len(HEADER) + len("1,1,4.0,100\n1,2,")
    assert message == (
        f"{root / 'ratings.csv'}:3: byte 0xff at offset {offset} is not valid utf-8 (expected utf-8-encoded text)"
    )


def test_wrong_field_count(ml_latest: MlLatest, write: Write) -> None:
    root = ml_latest(more_ratings="1,2,3.0,400,extra\n")
    message = error_of(lambda: load_dataset(root))
    assert message == f"{root / 'ratings.csv'}:8: expected 4 ','-separated fields (as on the first line), found 5"
    # header-less files: an extra field would silently shift every column
    root = write("ml-100k", {"u.data": "1\t1\t5\t10\t0\n", "u.item": "1|A|||x|" + "|".join("0" * 19) + "\n"})
    message = error_of(lambda: load_dataset(root))
    assert message == (
        f"{root / 'u.data'}:1: expected 4 '\\t'-separated fields (user_id, item_id, rating, timestamp), found 5"
    )
    root = write("ml-1m", {"ratings.dat": "1::2::5::9\n1::2::5\n", "movies.dat": "2::B::Drama\n"})
    message = error_of(lambda: load_dataset(root))
    assert (
        message == f"{root / 'ratings.dat'}:2: column 'timestamp': expected a Unix timestamp in seconds or an "
        "ISO-8601 date-time, got ''; 1 such rows (use invalid_rows='drop' to drop and report them)"
    )
    root = write("ml-1m-b", {"ratings.dat": "1::2::5\n", "movies.dat": "2::B::Drama\n"})
    message = error_of(lambda: load_dataset(f"movielens-1m:{root}"))
    assert message.startswith(f"{root / 'ratings.dat'}:1: expected 4 '::'-separated fields")


def test_blank_lines_do_not_shift_line_numbers(ml_latest: MlLatest) -> None:
    root = ml_latest(ratings=HEADER + "1,1,4.0,100\n\n\n1,2,oops,200\n")
    assert error_of(lambda: load_dataset(root)).startswith(f"{root / 'ratings.csv'}:5: column 'rating'")


def test_users_below_min_history(ml_latest: MlLatest) -> None:
    root = ml_latest(more_ratings="3,1,4.0,1\n4,1,4.0,1\n4,2,4.0,2\n")
    ds = load_dataset(root)
    assert (ds.report.users_below_min_history, ds.report.interactions_of_filtered_users) == (2, 3)
    assert ds.user_ids.tolist() == [1, 2]
    assert ds.n_interactions == 6
    assert "2 users with fewer than 3 interactions removed (3 interactions)" in ds.report.messages
    message = error_of(lambda: load_dataset(root, min_user_interactions=10))
    assert message == f"{root / 'ratings.csv'}: no user has at least 10 interactions"


# --- item tables --------------------------------------------------------------------------


def test_item_table_with_duplicate_ids(ml_latest: MlLatest) -> None:
    root = ml_latest(more_movies="2,Heat again (1995),Action\n")
    message = error_of(lambda: load_dataset(root))
    assert message == (
        f"{root / 'movies.csv'}:5: column 'movieId': item id 2 is listed again (first on line 3); "
        "expected each item once"
    )


def test_missing_item_file(ml_latest: MlLatest) -> None:
    root = ml_latest()
    (root / "movies.csv").unlink()
    assert error_of(lambda: load_dataset(f"movielens-latest:{root}")) == f"{root / 'movies.csv'}: file not found"


def test_recbole_header_without_type(write: Write) -> None:
    root = write("rb", {"x.inter": "user_id\titem_id:token\ttimestamp:float\n1\t2\t3\n"})
    message = error_of(lambda: load_dataset(root))
    assert message.startswith(f"{root / 'x.inter'}:1: header field 'user_id' lacks a RecBole type; expected name:token")


def test_recbole_needs_exactly_one_inter_file(write: Write) -> None:
    root = write("rb", {"a.inter": "user_id:token\n1\n", "b.inter": "user_id:token\n1\n"})
    assert error_of(lambda: load_dataset(f"recbole:{root}")) == f"{root}: expected exactly one *.inter file, found 2"


def test_ml100k_bad_genre_flags(write: Write) -> None:
    flags = ["0"] * len(ML100K_GENRES)
    flags[3] = "2"
    item = "|".join(["1", "Café (1995)", "", "", "http://x", *flags]) + "\n"
    root = write("ml-100k", {"u.data": "1\t1\t5\t10\n", "u.item": item.encode("latin-1")})
    message = error_of(lambda: load_dataset(root, strict_metadata=True))
    expected = f"{root / 'u.item'}:1: column 'genres': expected 19 genre flags of 0/1, got \"['0', '0', '0', '2'"
    assert message.startswith(expected)
    ds = load_dataset(root, min_user_interactions=1)
    assert ds.items["genres"].tolist() == [[]] and ds.report.invalid_metadata == {"genres": 1}


def test_unknown_column_mapping_keys(write: Write) -> None:
    root = write("g", {"interactions.csv": "uid,item_id,timestamp\n1,2,3\n"})
    message = error_of(lambda: load_dataset(root, columns={"user": "uid", "titel": "name"}))
    assert message.startswith(f"{root}: column mapping: unknown key(s) ['titel', 'user']; valid keys: ['genres',")


def test_mapped_column_must_exist(write: Write) -> None:
    root = write("g", {"interactions.csv": "uid,item_id,timestamp\n1,2,3\n", "items.csv": "item_id,title\n2,B\n"})
    message = error_of(lambda: load_dataset(root, columns={"user_id": "uid", "rating": "score"}))
    assert (
        message
        == f"{root / 'interactions.csv'}: missing required column(s) ['score']; found ['uid', 'item_id', 'timestamp']"
    )
    message = error_of(lambda: load_dataset(root, columns={"user_id": "uid", "genres": "category"}))
    assert message == f"{root / 'items.csv'}: missing required column(s) ['category']; found ['item_id', 'title']"


def test_parquet_null_rating_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2], "timestamp": [1, 2], "rating": [4.0, None]}).to_parquet(path)
    assert error_of(lambda: load_dataset(path)).startswith(f"{path}:2: column 'rating': expected a number, got ''")


def test_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    assert error_of(lambda: load_dataset(path)).startswith(f"{path}: cannot read as Parquet: ")


# --- sources and formats ------------------------------------------------------------------


def test_undetectable_format_lists_formats(write: Write) -> None:
    root = write("mystery", {"readme.txt": "hello"})
    message = error_of(lambda: load_dataset(root))
    assert message == (
        f"{root}: cannot detect the data format; give it as FORMAT:PATH with FORMAT one of "
        "amazon, csv, movielens-100k, movielens-1m, movielens-latest, parquet, recbole"
    )


def test_unknown_format_names(ml_latest: MlLatest) -> None:
    root = ml_latest()
    message = error_of(lambda: load_dataset(f"movielens-2m:{root}"))
    assert message.startswith(
        f"movielens-2m:{root}: unknown data format 'movielens-2m' in FORMAT:PATH; valid formats: amazon, csv"
    )
    message = error_of(lambda: load_dataset(root, format="movielens"))
    assert message.startswith(f"{root}: unknown data format 'movielens'; valid formats: amazon, csv, movielens-100k")


def test_no_such_source(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    message = error_of(lambda: load_dataset(missing))
    assert message == f"{missing}: not a bundled data set (movielens-latest-small) and no such path"
    assert error_of(lambda: load_dataset(f"csv:{missing}")) == f"{missing}: no such file or directory"


# --- images -------------------------------------------------------------------------------


def test_missing_image_in_column_keeps_item(write: Write) -> None:
    root = write(
        "g",
        {
            "interactions.csv": "user_id,item_id,timestamp\n1,a,1\n1,b,2\n1,c,3\n",
            "items.csv": "item_id,title,image\na,A,posters/a.jpg\nb,B,\nc,C,posters/c.png\n",
        },
    )
    (root / "posters").mkdir()
    Image.new("RGB", (4, 4)).save(root / "posters" / "c.png")
    ds = load_dataset(root)
    assert ds.n_items == 3
    assert ds.items["image_path"].tolist() == [None, None, str(root / "posters" / "c.png")]
    assert (ds.report.items_with_image, ds.report.items_missing_image, ds.report.items_corrupt_image) == (1, 1, 0)
    assert f"{root / 'posters' / 'a.jpg'}: image of item 'a': file not found; kept text-only" in ds.report.messages


def test_corrupt_images_keep_items_text_only(ml_latest: MlLatest, tmp_path: Path) -> None:
    images = tmp_path / "posters"
    images.mkdir()
    (images / "1.jpg").write_bytes(b"")  # zero bytes
    (images / "2.jpg").write_bytes(b"\x00garbage, not a JPEG" * 20)
    whole = jpeg_bytes()
    (images / "3.jpg").write_bytes(whole[: int(len(whole) * 0.9)])  # headers intact, tail cut off
    ds = load_dataset(ml_latest(), images=images)
    assert ds.n_items == 3 and ds.items["image_path"].isna().all()
    assert (ds.report.items_with_image, ds.report.items_corrupt_image, ds.report.items_missing_image) == (0, 3, 0)
    notes = "\n".join(ds.report.messages)
    assert f"{images / '1.jpg'}: image of item 1: empty file; kept text-only" in notes
    assert f"{images / '2.jpg'}: image of item 2: not a readable image (UnidentifiedImageError" in notes
    assert f"{images / '3.jpg'}: image of item 3: truncated JPEG (no end-of-image marker)" in notes
    assert ds.stats()["items_with_image"] == 0


def test_valid_images_are_attached(ml_latest: MlLatest, tmp_path: Path) -> None:
    images = tmp_path / "posters"
    images.mkdir()
    (images / "1.jpg").write_bytes(jpeg_bytes())
    Image.new("RGB", (4, 4)).save(images / "2.PNG")
    (images / "notes.txt").write_text("not an image")
    ds = load_dataset(ml_latest(), images=images)
    assert ds.items["image_path"].tolist() == [str(images / "1.jpg"), str(images / "2.PNG"), None]
    assert (ds.report.items_with_image, ds.report.items_corrupt_image, ds.report.items_missing_image) == (2, 0, 0)


def test_unverified_images_are_not_opened(ml_latest: MlLatest, tmp_path: Path) -> None:
    images = tmp_path / "posters"
    images.mkdir()
    (images / "1.jpg").write_bytes(b"")
    ds = load_dataset(ml_latest(), images=images, verify_images=False)
    assert ds.items["image_path"].tolist()[0] == str(images / "1.jpg")
    assert ds.report.items_with_image == 1


def test_image_directory_not_found(ml_latest: MlLatest, tmp_path: Path) -> None:
    missing = tmp_path / "no-posters"
    message = error_of(lambda: load_dataset(ml_latest(), images=missing))
    assert message == f"{missing}: image directory not found; expected a directory of <item_id>.<ext> images"


# --- options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"min_user_interactions": 0},
        {"min_user_interactions": "many"},
        {"duplicates": "maybe"},
        {"invalid_rows": "skip"},
        {"unknown_items": "keep"},
        {"verify_images": "perhaps"},
        {"min_history": 3},  # unknown option names are rejected, not ignored
    ],
)
def test_load_options_reject_bad_values(bad: dict, ml_latest: MlLatest) -> None:
    field = next(iter(bad))
    with pytest.raises(ValidationError, match=field):
        LoadOptions(**bad)
    with pytest.raises(ValidationError, match=field):  # keyword overrides of load_dataset are validated too
        load_dataset(ml_latest(), **bad)


def test_load_option_overrides_are_coerced(ml_latest: MlLatest) -> None:
    ds = load_dataset(ml_latest(), options=LoadOptions(min_user_interactions=5), min_user_interactions="2")
    assert ds.n_users == 2
    message = error_of(lambda: load_dataset(ml_latest("b"), options=LoadOptions(min_user_interactions=4)))
    assert message.endswith("no user has at least 4 interactions")  # the options object alone applies too


def test_messages_use_the_files_column_names(write: Write) -> None:
    mapping = {"user_id": "uid", "item_id": "sku", "timestamp": "ts"}
    root = write("g", {"interactions.csv": "uid,sku,ts\nu1,A,1\nu1,B,later\n", "items.csv": "sku,title\nA,a\nB,b\n"})
    message = error_of(lambda: load_dataset(root, columns=mapping))
    assert message.startswith(f"{root / 'interactions.csv'}:3: column 'ts': expected a Unix timestamp")
    root = write("h", {"interactions.csv": "uid,sku,ts\nu1,A,1\nu1,C,2\n", "items.csv": "sku,title\nA,a\nB,b\nA,c\n"})
    message = error_of(lambda: load_dataset(root, columns=mapping))
    assert message.startswith(f"{root / 'items.csv'}:4: column 'sku': item id 'A' is listed again (first on line 2)")
    (root / "items.csv").write_text("sku,title\nA,a\nB,b\n")
    message = error_of(lambda: load_dataset(root, columns=mapping))
    assert message.startswith(f"{root / 'interactions.csv'}:3: column 'sku': item id 'C' is not in the item table")
