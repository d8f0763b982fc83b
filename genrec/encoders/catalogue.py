"""Encode a whole catalogue into fused item vectors, through the embedding cache: :func:`encode_items`.

This is the one way genrec turns items into vectors; ``genrec.encoders.encode_items`` and
``genrec.pipelines.encode_items`` are this function.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any

import numpy as np

from genrec.encoders.base import Encoder, ItemParts
from genrec.encoders.cache import EmbeddingCache, default_cache_dir
from genrec.encoders.items import IMAGE_FAILED, IMAGE_OK, NO_IMAGE, content_keys, fuse, image_paths, item_texts

if TYPE_CHECKING:
    from genrec.data import Dataset


class ItemContentError(ValueError):
    """An item with neither text nor a usable image: there is nothing to encode."""


@dataclass
class EncodeReport:
    """What an encoding run did. Items with a bad image are kept, encoded from text, and counted."""

    encoder: str = ""
    items: int = 0
    encoded: int = 0  # items run through the model this time
    cached: int = 0  # items whose vectors came from the cache
    with_image: int = 0
    text_only: int = 0  # no image given, or an encoder without an image tower
    image_fallback: int = 0  # image given but unreadable: encoded from text alone
    problems: list[str] = field(default_factory=list)  # one line per image that failed this run
    seconds: float = 0.0

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "items_per_second": self.items_per_second}

    def lines(self) -> list[str]:
        lines = [
            f"encoder: {self.encoder}",
            f"items: {self.items} ({self.encoded} encoded, {self.cached} from cache) in {self.seconds:.2f} s",
            f"with image: {self.with_image}, text-only: {self.text_only}, "
            f"image unreadable (text-only fallback): {self.image_fallback}",
        ]
        return lines + [f"  {problem}" for problem in self.problems]


def encode_items(
    dataset: Dataset,
    encoder: Encoder,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    cache: bool = True,
    report: EncodeReport | None = None,
) -> np.ndarray:
    """Fused item vectors [n_items, D] float32 (unit rows, row = ``item_idx``), through the cache.

    Only items whose content key (text + image bytes) is not cached for this encoder's identity
    go through the model, and the new vectors are stored atomically: a second call on an
    unchanged catalogue encodes nothing, a changed item is re-encoded alone. Items with an
    unreadable image are encoded from text and counted in ``report``.

    Args:
        cache_dir: cache directory; default ``$GENREC_CACHE_DIR``, else ``~/.cache/genrec``.
        cache: ``False`` encodes everything and touches no cache.
        report: filled in when given (counts, fallbacks, timings).

    Raises:
        ItemContentError: an item has no text and no usable image.
    """
    store = EmbeddingCache(cache_dir or default_cache_dir(), encoder.identity, encoder.dim) if cache else None
    start = perf_counter()
    items = dataset.items
    texts = item_texts(items)
    paths = image_paths(items) if encoder.supports_images else [None] * len(texts)
    labels = [f"item {item_id!r}" for item_id in items["item_id"].tolist()]
    has_text = np.array([bool(text) for text in texts], dtype=bool)
    no_image = "it has no image" if encoder.supports_images else f"encoder {encoder.name!r} reads no images"
    _check_content(has_text, np.array([path is not None for path in paths]), labels, dataset.name, no_image)

    parts = ItemParts.empty(len(texts), encoder.dim)
    todo = np.arange(len(texts))
    if store is not None:
        keys = content_keys(texts, paths)  # [n, 16]; image bytes only count for encoders that read them
        rows = store.lookup(keys)  # [n] row in the cache file, -1 when absent
        hits = np.flatnonzero(rows >= 0)
        store.read_into(parts, hits, rows[hits])
        todo = np.flatnonzero(rows < 0)
    if len(todo):
        fresh = encode_parts(
            encoder, [texts[i] for i in todo], [paths[i] for i in todo], [labels[i] for i in todo], progress
        )
        parts.text[todo], parts.image[todo], parts.status[todo] = fresh.text, fresh.image, fresh.status
        parts.problems = fresh.problems
        if store is not None:
            store.store(keys[todo], fresh)

    _check_content(has_text, parts.status == IMAGE_OK, labels, dataset.name, "its image could not be read")
    fused = fuse(parts.text, parts.image, has_text, parts.status, encoder.image_weight)
    if report is not None:
        report.encoder = encoder.name
        report.items = len(texts)
        report.encoded = len(todo)
        report.cached = len(texts) - len(todo)
        report.with_image = int((parts.status == IMAGE_OK).sum())
        report.text_only = int((parts.status == NO_IMAGE).sum())
        report.image_fallback = int((parts.status == IMAGE_FAILED).sum())
        report.problems = parts.problems
        report.seconds = perf_counter() - start
    return fused


def encode_parts(
    encoder: Encoder, texts: list[str], paths: list[str | None], labels: list[str], progress: bool = False
) -> ItemParts:
    """Text and image vectors of the given items (no fusion, no cache); empty texts stay zero."""
    parts = ItemParts.empty(len(texts), encoder.dim)
    with_text = [row for row, text in enumerate(texts) if text]
    if with_text:
        parts.text[with_text] = encoder.encode_texts([texts[row] for row in with_text], progress=progress).numpy()
    with_path = [row for row, path in enumerate(paths) if path is not None]
    if with_path:
        vectors, ok, problems = encoder.encode_image_files(
            [paths[row] for row in with_path], [labels[row] for row in with_path], progress=progress
        )
        parts.image[with_path] = vectors
        parts.status[with_path] = np.where(ok, IMAGE_OK, IMAGE_FAILED)
        parts.problems = problems
    return parts


def _check_content(has_text: np.ndarray, has_image: np.ndarray, labels: list[str], source: str, why: str) -> None:
    empty = np.flatnonzero(~has_text & ~has_image)
    if len(empty) == 0:
        return
    shown = ", ".join(labels[row] for row in empty[:5])
    more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
    raise ItemContentError(
        f"{source}: {shown}{more}: no title, genres or tags, and {why}; "
        "an item needs text or a readable image to be encoded"
    )
