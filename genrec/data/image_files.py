"""Attach item images: a directory of ``<item_id>.<ext>`` files or a column of paths/URLs.

A missing or corrupt image never drops the item: it stays as a text-only item and the
report counts it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from PIL import Image, UnidentifiedImageError

from genrec.data.validation import MISSING_PATH, DataValidationError, ValidationReport, located, path_problem, value_at

JPEG_END = b"\xff\xd9"
MISSING = "file not found"
OVERSIZED = "more pixels than the decompression-bomb limit"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def image_problem(path: Path) -> str | None:
    """Why a local image is unusable (missing, empty, unreadable, cut off), or None when it opens."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:  # also a dangling symbolic link
        return MISSING
    except OSError:
        return path_problem(path)  # a symbolic link loop
    try:
        if size == 0:
            return "empty file"
        with Image.open(path) as image:
            kind = image.format
            image.verify()
        if kind == "JPEG" and not jpeg_has_end(path, size):
            return "truncated JPEG (no end-of-image marker)"
    except FileNotFoundError:
        return MISSING
    except Image.DecompressionBombError as err:  # a valid image, too large to decode safely
        return f"{OVERSIZED} ({err})"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        return f"not a readable image ({err.__class__.__name__}: {err})"
    return None


def jpeg_has_end(path: Path, size: int) -> bool:
    """Whether the end-of-image marker is near the end of the file.

    ``verify()`` only parses JPEG headers, which a cut-off download still has; the marker
    cannot occur inside the entropy-coded data, and the 1 KiB window tolerates padding.
    """
    with open(path, "rb") as handle:
        handle.seek(max(0, size - 1024))
        return JPEG_END in handle.read()


def attach_images(
    items: pd.DataFrame,
    report: ValidationReport,
    images_dir: str | Path | None = None,
    verify: bool = True,
) -> pd.DataFrame:
    """Fill ``items['image_path']`` from ``images_dir`` (by item id) or from the existing column.

    Paths in the column are used as given (loaders resolve relative ones against the item
    table's directory). Problems are counted in ``report``.
    """
    items = items.copy()
    if images_dir is not None:
        directory = Path(images_dir)
        if not directory.is_dir():
            problem = (
                "image directory not found" if path_problem(directory) == MISSING_PATH else path_problem(directory)
            )
            raise DataValidationError(located(directory, f"{problem}; expected a directory of <item_id>.<ext> images"))
        by_stem: dict[str, str] = {}
        for entry in os.scandir(directory):
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in IMAGE_EXTENSIONS:
                by_stem.setdefault(stem, entry.path)
        items["image_path"] = [by_stem.get(str(item_id)) for item_id in items["item_id"]]
    elif "image_path" not in items.columns:
        items["image_path"] = None
    paths = [value if isinstance(value, str) and value else None for value in items["image_path"].tolist()]

    missing = corrupt = oversized = 0
    for position, value in enumerate(paths):
        if value is None or is_url(value) or not verify:
            continue
        problem = image_problem(Path(value))
        if problem is None:
            continue
        if problem == MISSING:
            missing += 1
        elif problem.startswith(OVERSIZED):
            oversized += 1
        else:
            corrupt += 1
        report.note(
            located(value, f"image of item {value_at(items['item_id'], position)!r}: {problem}; kept text-only")
        )
        paths[position] = None
    items["image_path"] = pd.Series(paths, dtype=object, index=items.index)
    report.items_with_image = sum(value is not None for value in paths)
    report.items_without_image = len(paths) - report.items_with_image - missing - corrupt - oversized
    report.items_missing_image = missing
    report.items_corrupt_image = corrupt
    report.items_oversized_image = oversized
    return items
