"""Per-user item sequences stored as one CSR array (offsets + flat items), no Python lists."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Sequences:
    """Row ``i`` is ``items[offsets[i]:offsets[i+1]]``, oldest first; ``timestamps`` aligned."""

    offsets: np.ndarray  # [R + 1] int64
    items: np.ndarray  # [nnz] int64
    timestamps: np.ndarray  # [nnz] int64
    ratings: np.ndarray | None = None  # [nnz] float32, NaN where unknown

    @classmethod
    def from_lists(cls, rows: list[list[int]], timestamps: list[list[int]] | None = None) -> Sequences:
        lengths = np.array([len(row) for row in rows], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        items = np.concatenate([np.asarray(row, dtype=np.int64) for row in rows]) if rows else np.zeros(0, np.int64)
        if timestamps is None:
            stamps = np.concatenate([np.arange(n) for n in lengths]).astype(np.int64) if rows else items.copy()
        else:
            stamps = np.concatenate([np.asarray(t, dtype=np.int64) for t in timestamps])
        return cls(offsets, items, stamps)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, row: int) -> np.ndarray:
        return self.items[self.offsets[row] : self.offsets[row + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def rows(self, rows: np.ndarray) -> Sequences:
        """A new ``Sequences`` holding the given rows, in the given order."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, lengths = self.offsets[rows], self.lengths[rows]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        # Flat gather positions for every element of the selected rows, vectorised.
        positions = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        ratings = None if self.ratings is None else self.ratings[positions]
        return Sequences(offsets, self.items[positions], self.timestamps[positions], ratings)

    def row_ids(self) -> np.ndarray:
        """For each flat element, the row it belongs to: [nnz]."""
        return np.repeat(np.arange(len(self)), self.lengths)

    def padded(self, max_len: int, pad: int = 0, shift: int = 1) -> torch.Tensor:
        """The last ``max_len`` items of each row, left-padded: [R, max_len] int64.

        Items are offset by ``shift`` so that ``pad`` (0) never collides with item 0.
        """
        out = np.full((len(self), max_len), pad, dtype=np.int64)
        kept = np.minimum(self.lengths, max_len)  # [R]
        rows = np.repeat(np.arange(len(self)), kept)  # [n_kept]
        within = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept)  # 0..kept[r]-1 per row
        flat = self.offsets[1:][rows] - kept[rows] + within
        out[rows, max_len - kept[rows] + within] = self.items[flat] + shift
        return torch.from_numpy(out)

    def multi_hot(self, n_items: int) -> torch.Tensor:
        """Rows as a dense 0/1 matrix [R, n_items]; call it on a batch of rows, not on all users."""
        out = torch.zeros(len(self), n_items)
        out[torch.from_numpy(self.row_ids()), torch.from_numpy(self.items)] = 1.0
        return out
