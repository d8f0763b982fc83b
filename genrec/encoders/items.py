"""What an item *is* to an encoder: its text, its image file, a content key, and the fused vector.

The one definition of an item's text lives here (:func:`item_text`), so every encoder, the
cache keys and the rankers that embed text agree on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# Per-item image outcome, stored in the cache so that a cached run reports like a fresh one.
NO_IMAGE, IMAGE_OK, IMAGE_FAILED = 0, 1, 2

KEY_BYTES = 16  # blake2b digest size of an item content key


def item_text(item: Mapping[str, Any] | pd.Series) -> str:
    """The text an encoder sees for an item: ``"Title (year). Genres: a, b. Tags: x, y. Description text."``.

    Parts that are missing or empty are left out (no "Genres:" without genres), so an item
    with no title, genres or tags yields ``""``: text-less, which callers treat as such.
    ``item`` is a row of ``Dataset.items`` or any mapping with those keys.
    """
    title = _clean(item.get("title"))
    year = item.get("year")
    if title and year is not None and not pd.isna(year):
        title = f"{title} ({int(year)})"
    parts = [title] if title else []
    for label, key in (("Genres", "genres"), ("Tags", "tags")):
        values = [_clean(value) for value in _as_list(item.get(key))]
        values = [value for value in values if value]
        if values:
            parts.append(f"{label}: {', '.join(values)}")
    description = _clean(item.get("description"))  # a product's own words (Amazon), last: encoders truncate
    if description:
        parts.append(description.rstrip("."))
    return ". ".join(parts) + "." if parts else ""


def item_texts(items: pd.DataFrame) -> list[str]:
    """:func:`item_text` of every row of an items table, in ``item_idx`` order."""
    return [item_text(row) for row in items.to_dict("records")]


def image_paths(items: pd.DataFrame) -> list[str | None]:
    if "image_path" not in items.columns:
        return [None] * len(items)
    return [value if isinstance(value, str) and value else None for value in items["image_path"].tolist()]


def content_keys(texts: list[str], paths: list[str | None]) -> np.ndarray:
    """A 16-byte key per item from its text and its image file's *bytes* (if any): [n, 16] uint8.

    Hashing the file content, not its name or mtime, means a replaced poster is re-encoded and
    a touched-but-identical one is not. An unreadable file hashes by its path, so it is retried
    once it appears.
    """
    keys = np.empty((len(texts), KEY_BYTES), dtype=np.uint8)
    for row, text in enumerate(texts):
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=KEY_BYTES)
        path = paths[row]
        if path is not None:
            digest.update(b"\0image\0")
            try:
                digest.update(hashlib.blake2b(Path(path).read_bytes(), digest_size=KEY_BYTES).digest())
            except OSError:
                digest.update(b"unreadable\0" + path.encode("utf-8"))
        keys[row] = np.frombuffer(digest.digest(), dtype=np.uint8)
    return keys


def fuse(text: np.ndarray, image: np.ndarray, has_text: np.ndarray, status: np.ndarray, image_weight: float):
    """Fused item vectors: normalise(w * image + (1 - w) * text), unit length: [n, D] float32.

    ``text`` and ``image`` are unit vectors [n, D]. An item with only one modality gets that
    modality alone (so a text-only item's fused vector *is* its text vector, whatever ``w``).
    Normalising the sum keeps items with and without an image on one scale for dot products.
    """
    has_image = status == IMAGE_OK  # [n]
    w_text = np.where(has_text, np.where(has_image, 1.0 - image_weight, 1.0), 0.0)[:, None]  # [n, 1]
    w_image = np.where(has_image, np.where(has_text, image_weight, 1.0), 0.0)[:, None]  # [n, 1]
    fused = w_text * text + w_image * image  # [n, D]
    norms = np.linalg.norm(fused, axis=1, keepdims=True)  # [n, 1]
    return (fused / np.maximum(norms, 1e-12)).astype(np.float32)


def _clean(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return " ".join(str(value).split())


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, np.ndarray | list | tuple):
        return list(value)
    return [] if pd.isna(value) else [value]
