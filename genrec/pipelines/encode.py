"""The encode stage as plain functions: catalogue -> cached item vectors, histories -> user vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genrec.data import Dataset
from genrec.encoders import EmbeddingCache, Encoder, EncodeReport, default_cache_dir, encode_catalogue
from genrec.encoders.users import encode_histories, preference_profile

__all__ = ["encode_histories", "encode_items", "preference_profile"]


def encode_items(
    dataset: Dataset,
    encoder: Encoder,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    cache: bool = True,
    report: EncodeReport | None = None,
) -> np.ndarray:
    """Fused item vectors [n_items, D] float32 (unit rows, row = ``item_idx``), through the cache.

    A second call on an unchanged catalogue encodes nothing; a changed item (text or image
    bytes) is re-encoded alone. Items with an unreadable image are encoded from text and
    counted in ``report``.

    Args:
        cache_dir: cache directory; default ``$GENREC_CACHE_DIR``, else ``~/.cache/genrec``.
        cache: ``False`` encodes everything and touches no cache.
        report: filled in when given (counts, fallbacks, timings).
    """
    store = EmbeddingCache(cache_dir or default_cache_dir(), encoder.identity, encoder.dim) if cache else None
    return encode_catalogue(dataset, encoder, cache=store, progress=progress, report=report)
