"""Validation errors and the load report.

Every problem found while loading either raises :class:`DataValidationError` (naming the
file, the line or column, the offending value and what was expected) or is counted in the
:class:`ValidationReport` that travels with the data set. Nothing is dropped silently.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from genrec.config import shown


@dataclass(frozen=True)
class Remedy:
    """A load option that would let the load go on, e.g. ``invalid_rows='drop'``."""

    option: str  # the LoadOptions field
    value: str
    effect: str  # "drop and report them"

    def python(self) -> str:
        return f"use {self.option}={self.value!r} to {self.effect}"

    def cli(self) -> str:
        return f"use --{self.option.replace('_', '-')} {self.value} to {self.effect}"


class DataValidationError(ValueError):
    """Bad input data; the message says where (file, line/column) and what was expected.

    With a ``remedy``, the message ends with the option that would let the load go on,
    spelled for Python (``str(err)``) or for the command line (:meth:`cli_message`).
    """

    def __init__(self, message: str, remedy: Remedy | None = None):
        self.message = message
        self.remedy = remedy
        super().__init__(message if remedy is None else f"{message} ({remedy.python()})")

    def cli_message(self) -> str:
        """The message with the remedy spelled as a ``genrec data info`` flag."""
        return str(self) if self.remedy is None else f"{self.message} ({self.remedy.cli()})"


DROP_INVALID_ROWS = Remedy("invalid_rows", "drop", "drop and report them")
DROP_UNKNOWN_ITEMS = Remedy("unknown_items", "drop", "drop and report them")
MISSING_PATH = "no such file or directory"


def located(path: str | Path, message: str, line: int | None = None, column: str | None = None) -> str:
    """Format ``file:line: column 'c': message`` for error messages and report entries."""
    where = str(path)
    if line is not None:
        where += f":{line}"
    if column is not None:
        where += f": column {column!r}"
    return f"{where}: {message}"


def path_problem(path: str | Path) -> str:
    """Why a path that does not exist cannot be opened: a symbolic link loop, a dangling link,
    or nothing there (:data:`MISSING_PATH`)."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symbolic link loop (the link leads back to itself)"
        if os.path.islink(path):
            return f"broken symbolic link to {os.readlink(path)!r}"
        if err.errno != errno.ENOENT:
            return f"cannot access: {err.strerror}"
    return MISSING_PATH


@dataclass
class ValidationReport:
    """What loading found and did: counts per category plus located examples."""

    rows_read: dict[str, int] = field(default_factory=dict)
    duplicate_rows_dropped: int = 0
    invalid_rows_dropped: int = 0
    unknown_item_rows_dropped: int = 0
    users_below_min_history: int = 0
    interactions_of_filtered_users: int = 0
    items_below_min_interactions: int = 0  # removed by min_item_interactions / k_core, with their interactions
    interactions_of_filtered_items: int = 0
    catalogue_items_removed: int = 0  # item-table rows dropped by an item minimum (incl. items never rated)
    filter_rounds: int = 0  # user/item filtering rounds that removed something (k-core iterates)
    invalid_metadata: dict[str, int] = field(default_factory=dict)  # item field -> values left missing
    items_with_image: int = 0
    items_without_image: int = 0  # no file in the image directory, no path in the image column
    items_missing_image: int = 0  # a path was given but no file is there
    items_corrupt_image: int = 0
    items_oversized_image: int = 0  # more pixels than PIL's decompression-bomb limit
    items_without_interactions: int = 0
    repeat_interactions: int = 0  # a user's interaction with an item they already had earlier
    test_items_already_seen: int = 0  # users whose leave-one-out test item repeats an earlier one
    messages: list[str] = field(default_factory=list)

    max_messages: int = 20

    def note(self, message: str) -> None:
        """Record a located finding; only the first ``max_messages`` are kept verbatim."""
        if len(self.messages) < self.max_messages:
            self.messages.append(message)

    def to_dict(self) -> dict:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "max_messages"}
        data["rows_read"] = dict(self.rows_read)
        data["invalid_metadata"] = dict(self.invalid_metadata)
        data["messages"] = list(self.messages)
        return data

    def lines(self) -> list[str]:
        out = [f"rows read: {path}: {count}" for path, count in self.rows_read.items()]
        for name, value in self.to_dict().items():
            if name == "invalid_metadata":
                counts = ", ".join(f"{field} {count}" for field, count in value.items())
                out.append(f"invalid metadata left missing: {counts or 0}")
            elif name not in ("rows_read", "messages"):
                out.append(f"{name.replace('_', ' ')}: {value}")
        out.extend(f"note: {message}" for message in self.messages)
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


METADATA_EXAMPLES = 3  # located examples per malformed item field in the report


def check_metadata(
    ok: pd.Series,
    values: pd.Series,
    lines: pd.Series,
    path: str | Path,
    item_field: str,
    expected: str,
    report: ValidationReport,
    strict: bool,
    column: str | None = None,
) -> None:
    """Count the malformed values of an optional item field (``ok`` False), or raise when ``strict``.

    Metadata is optional: a malformed value leaves that item without it (the caller clears it)
    and never stops a load, unless ``LoadOptions(strict_metadata=True)``. The report keeps the
    count per ``item_field`` and the first few ``file:line`` locations.
    """
    bad = (~ok.to_numpy(dtype=bool)).nonzero()[0]
    if not len(bad):
        return
    first = int(bad[0])
    message = located(
        path,
        f"expected {expected}, got {shown(value_at(values, first))}; {len(bad)} such rows",
        line=int(lines.iloc[first]),
        column=column or item_field,
    )
    if strict:
        raise DataValidationError(
            message + " (strict_metadata is on; without it such values are left missing and counted)"
        )
    report.invalid_metadata[item_field] = report.invalid_metadata.get(item_field, 0) + len(bad)
    examples = ", ".join(str(int(lines.iloc[int(at)])) for at in bad[:METADATA_EXAMPLES])
    more = ", ..." if len(bad) > METADATA_EXAMPLES else ""
    report.note(f"{message} (left missing for those items, on lines {examples}{more})")


def first_bad_row(valid: pd.Series) -> int | None:
    """Position of the first False in a boolean mask, or None when all rows are valid."""
    bad = (~valid.to_numpy()).nonzero()[0]
    return int(bad[0]) if len(bad) else None


def value_at(values: pd.Series, position: int) -> object:
    """The value at ``position`` as a plain Python object, so messages show ``5``, not ``np.int64(5)``."""
    return values.iloc[[position]].tolist()[0]
