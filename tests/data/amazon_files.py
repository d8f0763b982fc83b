"""Small Amazon Reviews files in the 2014, 2018 and 2023 layouts, written by the tests.

Each release's metadata holds one malformed optional field, which must load as missing and be
counted: a 2014 ``categories`` that is a number, a 2018 ``price`` range, a 2023 ``details`` list.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

N_USERS, N_ITEMS, PER_USER = 12, 10, 6
DAY = 86_400
FIRST = 1_400_000_000  # 2014-05-13, in seconds


def asin(item: int) -> str:
    return f"B00{item:07d}" if item % 3 else f"{item:010d}"  # some ASINs are all digits (ISBN-10 style)


def reviews() -> list[tuple[str, str, float, int]]:
    """(user, asin, stars, unix seconds): neighbouring users share items, one review a day."""
    return [
        (
            f"A{user:04d}XYZ",
            asin((user + step) % N_ITEMS + 1),
            float(1 + (user + step) % 5),
            FIRST + DAY * (user + step),
        )
        for user in range(1, N_USERS + 1)
        for step in range(PER_USER)
    ]


def item_record(item: int, release: str) -> dict:
    """The metadata of one item as the release writes it."""
    title = f"Moisturiser No. {item}"
    if release == "2014":
        record = {"asin": asin(item), "title": title, "price": 3.5 + item, "brand": "Glow", "salesRank": {"Beauty": 9}}
        record |= {"categories": [["Beauty", "Skin Care", "Face"]], "imUrl": f"http://img/{item}.jpg"}
        record["description"] = f"A light cream with vitamin E, item {item}."
        if item == 2:
            record["categories"] = 5  # malformed: not a list
        return record
    if release == "2018":
        record = {"asin": asin(item), "title": title, "brand": "Glow", "price": f"${item}.99", "main_cat": "Beauty"}
        record |= {"category": ["Beauty", "Skin Care"], "feature": ["Fragrance free", "Travel size"]}
        record |= {"description": [f"A light cream with vitamin E, item {item}."], "imageURLHighRes": []}
        if item == 2:
            record["price"] = "$5.99 - $9.99"  # malformed: a range, not a price
        return record
    record = {"parent_asin": asin(item), "title": title, "store": "Glow", "main_category": "All Beauty"}
    record |= {"categories": ["Skin Care"], "features": ["Fragrance free"], "price": None, "images": []}
    record |= {"description": [f"A light cream with vitamin E, item {item}."], "details": {"Item Form": "Cream"}}
    if item == 2:
        record["details"] = ["Cream"]  # malformed: not an object
    return record


def review_record(user: str, item: str, stars: float, seconds: int, release: str) -> dict:
    if release == "2023":
        return {"rating": stars, "title": "ok", "text": "fine", "asin": item, "parent_asin": item, "user_id": user,
                "timestamp": seconds * 1000 + 123, "helpful_vote": 0, "verified_purchase": True}  # fmt: skip
    return {"reviewerID": user, "asin": item, "reviewerName": "X", "helpful": [0, 0], "reviewText": "fine",
            "overall": stars, "summary": "ok", "unixReviewTime": seconds, "reviewTime": "05 13, 2014"}  # fmt: skip


NAMES = {  # release -> (reviews file, metadata file)
    "2014": ("reviews_Beauty_5.json.gz", "meta_Beauty.json.gz"),
    "2018": ("Beauty_5.json", "meta_Beauty.json"),
    "2023": ("All_Beauty.jsonl.gz", "meta_All_Beauty.jsonl.gz"),
}


def review_lines(release: str) -> list[str]:
    return [json.dumps(review_record(*review, release)) for review in reviews()]


def meta_lines(release: str) -> list[str]:
    records = [item_record(item, release) for item in range(1, N_ITEMS + 1)]
    # the 2014 metadata is Python literals (single quotes), not JSON
    return [repr(record) if release == "2014" else json.dumps(record) for record in records]


def write_file(path: Path, lines: list[str]) -> Path:
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_amazon(
    root: Path, release: str, reviews_lines: list[str] | None = None, meta: list[str] | None = None
) -> Path:
    """A directory with the release's reviews and metadata files (``reviews_lines``/``meta`` replace them)."""
    root.mkdir(parents=True, exist_ok=True)
    reviews_name, meta_name = NAMES[release]
    write_file(root / reviews_name, review_lines(release) if reviews_lines is None else reviews_lines)
    write_file(root / meta_name, meta_lines(release) if meta is None else meta)
    return root
