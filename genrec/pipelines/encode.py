"""The encode stage as plain functions: catalogue -> cached item vectors, histories -> user vectors,
and the item features a ranker takes (:func:`load_item_features`).

The encoding functions live in genrec.encoders (the stateless algorithms beside the encoders).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genrec.config import ConfigError
from genrec.data import Dataset
from genrec.encoders.catalogue import encode_items
from genrec.encoders.users import encode_histories, preference_profile

__all__ = [
    "encode_histories",
    "encode_items",
    "load_item_features",
    "preference_profile",
    "read_numeric_npy",
]


def read_numeric_npy(path: Path) -> np.ndarray:
    """A numeric array from a .npy file; ConfigError for a missing file, another format, objects or damage."""
    if not path.exists():
        raise ConfigError(f"{path}: item-features file not found")
    with path.open("rb") as handle:
        if handle.read(6) != b"\x93NUMPY":  # the .npy magic string
            raise ConfigError(f"{path}: not a .npy file (no NumPy header); save the [n_items, D] array with np.save")
        handle.seek(0)
        try:
            major, _ = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            _, _, dtype = read_header(handle)
        except ValueError as err:
            raise ConfigError(f"{path}: damaged .npy header ({err})") from None
    if dtype.hasobject:  # pickled objects are never loaded: they could run code
        raise ConfigError(f"{path}: holds an object array; expected a numeric array [n_items, D]")
    if dtype.kind not in "fiub":
        raise ConfigError(f"{path}: expected a numeric array [n_items, D], got dtype {dtype}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ConfigError(f"{path}: unreadable .npy file, truncated or damaged ({err})") from None


def load_item_features(
    source: str, dataset: Dataset, progress: bool = True, cache_dir: str | Path | None = None
) -> np.ndarray:
    """Item vectors [n_items, D] float32 from a .npy file (row = item index) or an encoder preset (cached)."""
    if source.endswith(".npy"):
        path = Path(source)
        features = read_numeric_npy(path)
        if features.ndim != 2 or features.shape[0] != dataset.n_items:
            raise ConfigError(
                f"{path}: expected an array [n_items={dataset.n_items}, D] with one row per item index, "
                f"got shape {features.shape}"
            )
        features = features.astype(np.float32, copy=False)
        if not np.isfinite(features).all():
            row = int(np.flatnonzero(~np.isfinite(features).all(axis=1))[0])
            item = dataset.item_ids[row]
            raise ConfigError(f"{path}: row {row} (item id {item}) holds NaN or infinite values; expected finite")
        return features
    from genrec.encoders import create_encoder

    return encode_items(dataset, create_encoder(source), cache_dir=cache_dir, progress=progress)
