"""The embedding cache: item text/image vectors keyed by (encoder identity, item content key).

One safetensors file per encoder identity under ``<cache dir>/embeddings/``, holding
``keys`` [N, 16] uint8, ``text`` and ``image`` [N, D] float32 and ``status`` [N] uint8. Vectors
are stored before fusion, so changing the image/text weight needs no re-encoding. Every
write replaces the whole file atomically (temp file + rename): a crash mid-write leaves the
previous cache, never half of one. The file's metadata records a sha256 of the four arrays; a
file whose bytes changed since (or that cannot be read) is rebuilt with a warning, never read as
other vectors. Files written before the hash load unchecked.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from genrec.encoders.base import ItemParts
from genrec.encoders.items import KEY_BYTES
from genrec.io import atomic_path

CACHE_ENV = "GENREC_CACHE_DIR"
FORMAT = "genrec-item-embeddings/1"
ARRAYS = ("keys", "text", "image", "status")


def default_cache_dir() -> Path:
    """``$GENREC_CACHE_DIR``, else ``$XDG_CACHE_HOME/genrec`` (``~/.cache/genrec``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "genrec"


class EmbeddingCache:
    """Cached item vectors of one encoder (by its identity string) in ``directory``."""

    def __init__(self, directory: str | Path, identity: str, dim: int):
        self.identity = identity
        self.dim = dim
        name = hashlib.blake2b(identity.encode("utf-8"), digest_size=8).hexdigest()
        self.path = Path(directory).expanduser() / "embeddings" / f"{name}.safetensors"
        self.keys = np.zeros((0, KEY_BYTES), dtype=np.uint8)
        self.text = np.zeros((0, dim), dtype=np.float32)
        self.image = np.zeros((0, dim), dtype=np.float32)
        self.status = np.zeros(0, dtype=np.uint8)
        self._load()
        self._rows = {key.tobytes(): row for row, key in enumerate(self.keys)}  # content key -> row

    def __len__(self) -> int:
        return len(self.keys)

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            with safe_open(str(self.path), framework="np") as handle:
                metadata = handle.metadata() or {}
                tensors = {name: handle.get_tensor(name) for name in ARRAYS}
        except Exception as err:  # a cache is derived data: warn and rebuild rather than fail the run
            warnings.warn(f"{self.path}: unreadable embedding cache ({err}); it will be rebuilt", stacklevel=3)
            return
        if metadata.get("identity") != self.identity or tensors["text"].shape[1:] != (self.dim,):
            warnings.warn(f"{self.path}: cache written by another encoder; it will be rebuilt", stacklevel=3)
            return
        if "sha256" in metadata and metadata["sha256"] != _digest(tensors):
            warnings.warn(f"{self.path}: damaged embedding cache (sha256 mismatch); it will be rebuilt", stacklevel=3)
            return
        self.keys, self.text, self.image, self.status = (tensors[name] for name in ARRAYS)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Cache row of each content key [n, 16], or -1 when absent: [n] int64."""
        return np.array([self._rows.get(key.tobytes(), -1) for key in keys], dtype=np.int64)

    def read_into(self, parts: ItemParts, targets: np.ndarray, rows: np.ndarray) -> None:
        """Copy cache ``rows`` into ``parts`` at positions ``targets``."""
        parts.text[targets] = self.text[rows]
        parts.image[targets] = self.image[rows]
        parts.status[targets] = self.status[rows]

    def store(self, keys: np.ndarray, parts: ItemParts) -> None:
        """Add freshly encoded items and rewrite the cache file atomically."""
        fresh, seen = [], set(self._rows)
        for row, key in enumerate(keys):
            if key.tobytes() not in seen:  # items with identical content share one entry
                seen.add(key.tobytes())
                fresh.append(row)
        if not fresh:
            return
        tensors = {
            "keys": np.concatenate([self.keys, keys[fresh]]),
            "text": np.concatenate([self.text, parts.text[fresh]]),
            "image": np.concatenate([self.image, parts.image[fresh]]),
            "status": np.concatenate([self.status, parts.status[fresh]]),
        }
        with atomic_path(self.path) as temporary:
            metadata = {"identity": self.identity, "format": FORMAT, "sha256": _digest(tensors)}
            save_file(tensors, str(temporary), metadata=metadata)
        start = len(self.keys)
        self.keys, self.text, self.image, self.status = (tensors[name] for name in ARRAYS)
        self._rows.update({self.keys[row].tobytes(): row for row in range(start, len(self.keys))})


def _digest(tensors: dict[str, np.ndarray]) -> str:
    """sha256 of the cache's arrays (their bytes, in :data:`ARRAYS` order)."""
    digest = hashlib.sha256()
    for name in ARRAYS:
        digest.update(np.ascontiguousarray(tensors[name]).data)
    return digest.hexdigest()
