"""Validation errors and the load report.

Every problem found while loading either raises :class:`DataValidationError` (naming the
file, the line or column, the offending value and what was expected) or is counted in the
:class:`ValidationReport` that travels with the data set. Nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


class DataValidationError(ValueError):
    """Bad input data; the message says where (file, line/column) and what was expected."""


def located(path: str | Path, message: str, line: int | None = None, column: str | None = None) -> str:
    """Format ``file:line: column 'c': message`` for error messages and report entries."""
    where = str(path)
    if line is not None:
        where += f":{line}"
    if column is not None:
        where += f": column {column!r}"
    return f"{where}: {message}"


@dataclass
class ValidationReport:
    """What loading found and did: counts per category plus located examples."""

    rows_read: dict[str, int] = field(default_factory=dict)
    duplicate_rows_dropped: int = 0
    invalid_rows_dropped: int = 0
    unknown_item_rows_dropped: int = 0
    users_below_min_history: int = 0
    interactions_of_filtered_users: int = 0
    items_with_image: int = 0
    items_missing_image: int = 0
    items_corrupt_image: int = 0
    items_without_interactions: int = 0
    messages: list[str] = field(default_factory=list)

    max_messages: int = 20

    def note(self, message: str) -> None:
        """Record a located finding; only the first ``max_messages`` are kept verbatim."""
        if len(self.messages) < self.max_messages:
            self.messages.append(message)

    def to_dict(self) -> dict:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "max_messages"}
        data["rows_read"] = dict(self.rows_read)
        data["messages"] = list(self.messages)
        return data

    def lines(self) -> list[str]:
        out = [f"rows read: {path}: {count}" for path, count in self.rows_read.items()]
        for name, value in self.to_dict().items():
            if name not in ("rows_read", "messages"):
                out.append(f"{name.replace('_', ' ')}: {value}")
        out.extend(f"note: {message}" for message in self.messages)
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def first_bad_row(valid: pd.Series) -> int | None:
    """Position of the first False in a boolean mask, or None when all rows are valid."""
    bad = (~valid.to_numpy()).nonzero()[0]
    return int(bad[0]) if len(bad) else None


def value_at(values: pd.Series, position: int) -> object:
    """The value at ``position`` as a plain Python object, so messages show ``5``, not ``np.int64(5)``."""
    return values.iloc[[position]].tolist()[0]
