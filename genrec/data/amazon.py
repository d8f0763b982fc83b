"""Amazon Reviews: the 2014 and 2018 releases (McAuley et al.) and the 2023 release (Hou et al.).

A directory holds one reviews file and, optionally, its metadata file, gzipped or not:

- 2014: ``reviews_<Cat>[_5].json[.gz]`` (``reviewerID``, ``asin``, ``overall``, ``unixReviewTime`` in
  seconds) and ``meta_<Cat>.json[.gz]`` (Python-literal lines);
- 2018: ``<Cat>[_5].json[.gz]`` (the same fields) and ``meta_<Cat>.json[.gz]`` (JSON lines);
- 2023: ``<Cat>.jsonl[.gz]`` (``user_id``, ``parent_asin``, ``rating``, ``timestamp`` in milliseconds)
  and ``meta_<Cat>.jsonl[.gz]``.

The release is read from the first review's fields. Reviews are interactions (strict: a line that
is not a JSON object, a missing field or a timestamp in the other release's unit is an error naming
``file:line``, or under ``invalid_rows='drop'`` dropped and counted). Metadata is optional: a
malformed field is left missing for that item and counted. The catalogue is the reviewed items;
their text (title, categories as genres, brand as a tag, description and features as
``description``) is what encoders and the grounding guard read. Images come from ``images=`` (a
directory of ``<asin>.<ext>`` files); the image URLs are kept in ``image_url`` and never fetched.
"""

from __future__ import annotations

import ast
import gzip
import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genrec.data.dataset import LoadOptions
from genrec.data.loaders import FORMATS, RawTables
from genrec.data.parsing import parse_interactions
from genrec.data.validation import (
    DROP_INVALID_ROWS,
    MISSING_PATH,
    DataValidationError,
    ValidationReport,
    check_metadata,
    located,
    path_problem,
)

GZIP_MAGIC = b"\x1f\x8b"
JSON_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")
AMAZON_STARS = (1.0, 5.0)
MILLISECONDS = 1e11  # a Unix time from here up is in milliseconds (see parsing.UNIT_THRESHOLDS)
# release -> genrec name -> the reviews file's field
REVIEW_FIELDS = {
    "2014/2018": {"user_id": "reviewerID", "item_id": "asin", "rating": "overall", "timestamp": "unixReviewTime"},
    "2023": {"user_id": "user_id", "item_id": "parent_asin", "rating": "rating", "timestamp": "timestamp"},
}
PRICE = re.compile(r"\$?\s*(\d[\d,]*(?:\.\d+)?)")


def read_records(path: Path, literal: bool = False) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, record) for every non-blank line of a JSON-lines file, gzipped or not.

    A line that is not a JSON object yields (line, why) instead. With ``literal``, lines that are
    Python literals (the 2014 metadata) are read with ``ast.literal_eval``, which evaluates no code.
    Unreadable files, truncated gzip streams and undecodable bytes raise with the file and line.
    """
    if not path.is_file():
        problem = path_problem(path)
        raise DataValidationError(located(path, "file not found" if problem == MISSING_PATH else problem))
    with path.open("rb") as probe:
        zipped = probe.read(2) == GZIP_MAGIC
    line = 0
    try:
        with gzip.open(path, "rt", encoding="utf-8") if zipped else path.open(encoding="utf-8") as handle:
            for line, text in enumerate(handle, start=1):
                if text.strip():
                    yield line, parse_record(text, literal)
    except EOFError:
        raise DataValidationError(
            located(path, "the gzip stream ends early (a truncated download?); expected a complete .gz file", line + 1)
        ) from None
    except (gzip.BadGzipFile, zlib.error) as err:
        raise DataValidationError(located(path, f"not a readable gzip file ({err})", line + 1)) from None
    except UnicodeDecodeError as err:
        raise DataValidationError(
            located(path, f"not valid UTF-8 ({err.reason}); expected UTF-8 text", line + 1)
        ) from None
    if line == 0:
        raise DataValidationError(located(path, "file is empty"))


def parse_record(text: str, literal: bool) -> dict[str, Any] | str:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        if not literal:
            return f"not JSON ({err.msg} at column {err.colno})"
        try:
            record = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return f"neither JSON nor a Python literal ({err.msg} at column {err.colno})"
    return record if isinstance(record, dict) else f"a JSON {type(record).__name__}, not an object"


def find_files(path: Path) -> tuple[Path, Path | None]:
    """(reviews file, metadata file or None) in a directory, or for a reviews file given directly."""
    if path.is_file():
        reviews = path
    else:
        candidates = sorted(p for p in path.iterdir() if p.name.endswith(JSON_SUFFIXES) and not is_metadata(p))
        if len(candidates) != 1:
            found = ", ".join(p.name for p in candidates) or "none"
            raise DataValidationError(
                located(path, f"expected exactly one reviews file (*.json, *.jsonl, gzipped or not), found {found}")
            )
        reviews = candidates[0]
    category = re.sub(r"(_5)?\.jsonl?(\.gz)?$", "", reviews.name).removeprefix("reviews_")
    matches = [reviews.parent / f"meta_{category}{suffix}" for suffix in JSON_SUFFIXES]
    return reviews, next((meta for meta in matches if meta.is_file()), None)


def is_metadata(path: Path) -> bool:
    return path.name.startswith("meta_")


def read_reviews(path: Path, report: ValidationReport, options: LoadOptions) -> tuple[pd.DataFrame, dict[str, str]]:
    """The reviews as parsed interactions (seconds), and the release's field names."""
    fields: dict[str, str] | None = None
    columns: dict[str, list[str]] = {name: [] for name in ("user_id", "item_id", "rating", "timestamp", "line")}
    skipped = 0
    for line, record in read_records(path):
        if isinstance(record, str):
            message = located(path, f"expected a JSON object (one review per line), got {record}", line)
            if options.invalid_rows == "raise":
                raise DataValidationError(message, DROP_INVALID_ROWS)
            report.note(message + " (dropped)")
            skipped += 1
            continue
        if fields is None:
            fields = release_fields(path, line, record)
        for name, key in fields.items():
            value = record.get(key)
            columns[name].append("" if value is None else str(value))
        columns["line"].append(line)
    if fields is None:
        raise DataValidationError(located(path, "no review is a JSON object"))
    table = pd.DataFrame(columns)
    interactions = parse_interactions(
        table, path, options.invalid_rows, report, True, fields, rating_range=AMAZON_STARS, text_ids=True
    )
    report.rows_read[str(path)] += skipped
    report.invalid_rows_dropped += skipped
    check_time_unit(interactions, path, fields)
    return interactions, fields


def release_fields(path: Path, line: int, record: dict[str, Any]) -> dict[str, str]:
    """The field names of the release the first review belongs to."""
    for fields in REVIEW_FIELDS.values():
        if fields["user_id"] in record and fields["item_id"] in record:
            return fields
    expected = " or ".join(f"{', '.join(fields.values())} ({release})" for release, fields in REVIEW_FIELDS.items())
    raise DataValidationError(located(path, f"expected a review with {expected}; found keys {sorted(record)}", line))


def check_time_unit(interactions: pd.DataFrame, path: Path, fields: dict[str, str]) -> None:
    """2014/2018 reviews carry seconds, 2023 reviews milliseconds (converted to seconds here).

    A column wholly in the other unit would pass the mixed-unit check and shift every date.
    """
    times = interactions["timestamp"].to_numpy()
    in_ms = fields is REVIEW_FIELDS["2023"]
    wrong = times < MILLISECONDS if in_ms else times >= MILLISECONDS
    if wrong.any():
        at = int(wrong.argmax())
        unit, release = ("milliseconds", "2023") if in_ms else ("seconds", "2014/2018")
        message = f"expected a Unix timestamp in {unit} (the {release} release's unit), got {int(times[at])}"
        raise DataValidationError(
            located(path, message, line=int(interactions["line"].iloc[at]), column=fields["timestamp"])
        )
    if in_ms:
        interactions["timestamp"] = times // 1000


# item field -> (the metadata keys that hold it, oldest release first)
META_KEYS = {
    "title": ("title",),
    "genres": ("categories", "category"),
    "brand": ("brand", "store"),
    "description": ("description",),
    "features": ("feature", "features"),
    "price": ("price",),
    "image_url": ("imUrl", "imageURLHighRes", "imageURL", "images"),
    "details": ("details",),
}


def strings(value: Any) -> list[str] | None:
    """A string or a (nested) list of strings as a flat list; None when it is neither."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        return None
    out: list[str] = []
    for part in value:
        nested = strings(part)
        if nested is None:
            return None
        out.extend(nested)
    return out


def image_urls(value: Any) -> list[str] | None:
    """2014: a URL; 2018: a list of URLs; 2023: a list of {hi_res, large, thumb} objects."""
    if isinstance(value, list) and all(isinstance(part, dict) for part in value):
        return [str(part.get("hi_res") or part.get("large") or "") for part in value]
    return strings(value)


def parse_price(value: Any) -> float | bool | None:
    """A price as a float, None when absent, or False when it is not a single price ("$5 - $9")."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = PRICE.fullmatch(value.strip()) if isinstance(value, str) else None
    return float(match.group(1).replace(",", "")) if match else False


def meta_value(item_field: str, raw: Any) -> tuple[Any, bool]:
    """(the item's value, whether ``raw`` was well-formed) for one metadata field."""
    if item_field == "price":
        price = parse_price(raw)
        return (None, False) if price is False else (price, True)
    if item_field == "details":
        if not isinstance(raw, dict):
            return None, False
        return "; ".join(f"{key}: {value}" for key, value in raw.items() if isinstance(value, str | int | float)), True
    parts = image_urls(raw) if item_field == "image_url" else strings(raw)
    if parts is None:
        return None, False
    parts = [part.strip() for part in parts if part.strip()]
    if item_field == "genres":
        return list(dict.fromkeys(parts)), True
    if item_field == "image_url":
        return (parts[0] if parts else None), True
    return " ".join(parts), True


def read_metadata(
    path: Path, reviewed: set[str], report: ValidationReport, options: LoadOptions
) -> dict[str, dict[str, Any]]:
    """asin -> item fields for the reviewed items; malformed fields and records are counted (lenient)."""
    found: dict[str, dict[str, Any]] = {}
    bad: dict[str, list[tuple[int, str, Any]]] = {}  # item field -> (line, key, value) of each malformed one
    for line, record in read_records(path, literal=True):
        if isinstance(record, str):
            bad.setdefault("record", []).append((line, "record", record))
            continue
        asin = record.get("parent_asin", record.get("asin"))
        if not isinstance(asin, str) or asin not in reviewed:
            continue
        if asin in found:  # the 2018 files list some items twice; the first record stands
            bad.setdefault("record", []).append((line, "record", f"asin {asin!r} again"))
            continue
        item: dict[str, Any] = {}
        for item_field, keys in META_KEYS.items():
            key = next((key for key in keys if record.get(key) not in (None, "", [])), None)
            if key is None:
                continue
            value, ok = meta_value(item_field, record[key])
            if ok:
                item[item_field] = value
            else:
                bad.setdefault(item_field, []).append((line, key, record[key]))
        found[asin] = item
    for item_field, problems in bad.items():
        lines = pd.Series([line for line, _, _ in problems])
        values = pd.Series([value if isinstance(value, str) else repr(value) for _, _, value in problems])
        malformed, key = pd.Series(False, index=lines.index), problems[0][1]  # messages name the file's key
        expected = EXPECTED[item_field]
        check_metadata(malformed, values, lines, path, item_field, expected, report, options.strict_metadata, key)
    return found


EXPECTED = {
    "record": "a JSON object or Python literal per line, each item once",
    "title": "a title (text)",
    "genres": "categories as a list of strings (or lists of strings)",
    "brand": "a brand or store name (text)",
    "description": "a description (text or a list of texts)",
    "features": "features (a list of texts)",
    "price": "a price such as 12.99 or '$12.99'",
    "image_url": "an image URL or a list of them",
    "details": "details as an object of name: value",
}


def items_table(item_ids: pd.Series, metadata: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per reviewed item: genrec's columns plus brand, description, price, image_url, details."""
    ids = pd.unique(item_ids)
    rows = [metadata.get(asin, {}) for asin in ids]
    texts = [" ".join(filter(None, (row.get("description"), row.get("features")))) for row in rows]
    return pd.DataFrame(
        {
            "item_id": ids,
            "title": [row.get("title") or asin for asin, row in zip(ids, rows, strict=True)],
            "genres": [row.get("genres", []) for row in rows],
            "tags": [[row["brand"]] if row.get("brand") else [] for row in rows],
            "year": pd.array([pd.NA] * len(ids), dtype="Int64"),
            "brand": [row.get("brand") for row in rows],
            "description": [text or None for text in texts],
            "price": np.array([row.get("price", np.nan) for row in rows], dtype=np.float64),
            "image_url": [row.get("image_url") for row in rows],
            "details": [row.get("details") for row in rows],
        }
    )


@FORMATS.register(
    "amazon",
    description="Amazon Reviews 2014/2018/2023: one reviews file plus meta_<category> (JSON lines, gzipped or not)",
)
def load_amazon(path: Path, report: ValidationReport, options: LoadOptions) -> RawTables:
    """The reviews file and its ``meta_`` file in a directory, or a reviews file; see the module docstring."""
    reviews_path, meta_path = find_files(path)
    interactions, fields = read_reviews(reviews_path, report, options)
    if meta_path is None:
        report.note(located(reviews_path, "no meta_<category> file beside it; titles are the item ids"))
        metadata = {}
    else:
        metadata = read_metadata(meta_path, set(interactions["item_id"]), report, options)
        missing = interactions["item_id"].nunique() - len(metadata)
        if missing:
            report.note(located(meta_path, f"{missing} reviewed items have no record here; their titles are their ids"))
    items = items_table(interactions["item_id"], metadata)
    return RawTables(interactions, items, str(reviews_path), fields)
