"""Amazon Reviews 2014, 2018 and 2023 files: loading, item text, the amazon protocol and bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from genrec.data import load_dataset, resolve_source
from genrec.encoders.items import item_text
from genrec.grounding import ItemFacts
from tests.data.amazon_files import FIRST, N_ITEMS, N_USERS, NAMES, PER_USER, asin, review_lines, write_amazon
from tests.data.helpers import error_of

RELEASES = list(NAMES)
MALFORMED = {"2014": "genres", "2018": "price", "2023": "details"}


@pytest.mark.parametrize("release", RELEASES)
def test_each_release_loads_with_its_metadata(release: str, tmp_path: Path) -> None:
    root = write_amazon(tmp_path / release, release)
    assert resolve_source(root) == ("amazon", root)
    ds = load_dataset(root)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (N_USERS, N_ITEMS, N_USERS * PER_USER)
    assert ds.interactions["timestamp"].min() == FIRST + 86_400  # 2023's milliseconds are seconds here
    assert ds.interactions["rating"].between(1, 5).all()
    assert ds.items["item_id"].map(type).eq(str).all()  # "0000000003" keeps its zeros
    item = ds.items.iloc[ds.item_index([asin(4)])[0]]
    assert item["title"] == "Moisturiser No. 4" and item["tags"] == ["Glow"]
    assert "vitamin E" in item["description"]
    assert ds.report.invalid_metadata == {MALFORMED[release]: 1}
    facts = ItemFacts.from_row(item.to_dict())
    assert facts.description == item["description"] and "Glow" in facts.tags
    assert item_text(item).endswith(item["description"].rstrip(".") + ".")


def test_release_specific_fields(tmp_path: Path) -> None:
    by_release = {release: load_dataset(write_amazon(tmp_path / release, release)) for release in RELEASES}
    first = {release: ds.items.set_index("item_id").loc[asin(4)] for release, ds in by_release.items()}
    assert first["2014"]["genres"] == ["Beauty", "Skin Care", "Face"]  # a list of category paths, flattened
    assert (first["2014"]["price"], first["2018"]["price"]) == (7.5, 4.99)
    assert first["2018"]["description"].endswith("Fragrance free Travel size")  # features follow the description
    assert first["2014"]["image_url"] == "http://img/4.jpg" and first["2023"]["details"] == "Item Form: Cream"
    second = {release: ds.items.set_index("item_id").loc[asin(2)] for release, ds in by_release.items()}
    assert second["2014"]["genres"] == [] and pd.isna(second["2018"]["price"]) and pd.isna(second["2023"]["details"])


def test_amazon_protocol_and_images(tmp_path: Path) -> None:
    root = write_amazon(tmp_path / "a", "2018")
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (4, 4)).save(images / f"{asin(3)}.jpg")  # an all-digit ASIN finds its file by name
    ds = load_dataset(root, protocol="amazon", images=images)
    assert ds.report.items_with_image == 1
    assert "protocol amazon: k_core=5" in ds.report.messages
    assert ds.n_items <= N_ITEMS and (ds.histories().lengths >= 5).all()


def test_reviews_without_metadata(tmp_path: Path) -> None:
    root = tmp_path / "bare"
    root.mkdir()
    (root / "Beauty_5.json").write_text("\n".join(review_lines("2018")) + "\n")
    ds = load_dataset(root)
    assert ds.items["title"].tolist() == ds.items["item_id"].tolist()
    assert any("no meta_<category> file" in note for note in ds.report.messages)


def test_truncated_gzip_names_the_file_and_line(tmp_path: Path) -> None:
    root = write_amazon(tmp_path / "t", "2014")
    reviews = root / NAMES["2014"][0]
    reviews.write_bytes(reviews.read_bytes()[:-40])
    message = error_of(lambda: load_dataset(root))
    assert message.startswith(f"{reviews}:")
    assert "the gzip stream ends early (a truncated download?); expected a complete .gz file" in message


def test_a_line_that_is_not_json(tmp_path: Path) -> None:
    lines = review_lines("2018")
    lines[3] = "{'reviewerID': 'A1', oops"
    root = write_amazon(tmp_path / "j", "2018", reviews_lines=lines)
    reviews = root / NAMES["2018"][0]
    assert error_of(lambda: load_dataset(root)) == (
        f"{reviews}:4: expected a JSON object (one review per line), got not JSON (Expecting property name "
        "enclosed in double quotes at column 2) (use invalid_rows='drop' to drop and report them)"
    )
    ds = load_dataset(root, invalid_rows="drop")
    assert ds.report.invalid_rows_dropped == 1 and ds.report.rows_read[str(reviews)] == len(lines)


def test_missing_fields_name_the_line_and_field(tmp_path: Path) -> None:
    lines = review_lines("2023")
    record = json.loads(lines[5])
    del record["rating"]
    lines[5] = json.dumps(record)
    root = write_amazon(tmp_path / "m", "2023", reviews_lines=lines)
    assert error_of(lambda: load_dataset(root)) == (
        f"{root / NAMES['2023'][0]}:6: column 'rating': expected a number, got ''; 1 such rows "
        "(use invalid_rows='drop' to drop and report them)"
    )
    assert "expected a review with reviewerID" in error_of(
        lambda: load_dataset(write_amazon(tmp_path / "k", "2018", reviews_lines=['{"user": "A1", "item": "B1"}']))
    )


def test_timestamps_in_the_other_releases_unit(tmp_path: Path) -> None:
    records = [json.loads(line) for line in review_lines("2023")]
    seconds = [json.dumps(record | {"timestamp": record["timestamp"] // 1000}) for record in records]
    root = write_amazon(tmp_path / "s", "2023", reviews_lines=seconds)
    assert error_of(lambda: load_dataset(root)).startswith(
        f"{root / NAMES['2023'][0]}:1: column 'timestamp': expected a Unix timestamp in milliseconds "
        "(the 2023 release's unit), got 1400086400"
    )
    lines = review_lines("2014")
    lines[2] = lines[2].replace('"unixReviewTime": 14', '"unixReviewTime": 14000')
    root = write_amazon(tmp_path / "ms", "2014", reviews_lines=lines)
    assert "column 'unixReviewTime': expected a Unix timestamp in seconds like the column's other" in error_of(
        lambda: load_dataset(root)
    )


def test_metadata_is_lenient_unless_strict(tmp_path: Path) -> None:
    root = write_amazon(tmp_path / "l", "2014")
    meta = root / NAMES["2014"][1]
    lines = gzip.decompress(meta.read_bytes()).decode().splitlines()
    lines[0] = "{'asin': 'B000000001', 'title': "  # cut off mid-record
    meta.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    ds = load_dataset(root)
    assert ds.report.invalid_metadata == {"record": 1, "genres": 1}
    assert ds.items.set_index("item_id").loc[asin(1), "title"] == asin(1)  # no record: the id is the title
    assert error_of(lambda: load_dataset(root, strict_metadata=True)).startswith(
        f"{meta}:1: column 'record': expected a JSON object or Python literal per line, each item once, got "
        "'neither JSON nor a Python literal"
    )
