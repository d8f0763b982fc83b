"""Reading delimited files into string tables and parsing their columns with located errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.data.validation import DataValidationError, ValidationReport, first_bad_row, located


def read_text(path: Path, encoding: str) -> str:
    """Read a whole file; empty files and undecodable bytes raise with the file and line."""
    if not path.exists():
        raise DataValidationError(located(path, "file not found"))
    raw = path.read_bytes()
    if not raw.strip():
        raise DataValidationError(located(path, "file is empty"))
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataValidationError(
            located(path, f"byte {raw[err.start]:#04x} at offset {err.start} is not valid {encoding}", line=line)
            + f" (expected {encoding}-encoded text)"
        ) from None


def read_delimited(
    path: Path,
    sep: str,
    encoding: str = "utf-8",
    names: list[str] | None = None,
) -> pd.DataFrame:
    """Read a delimited file as strings, adding a ``line`` column with 1-based source lines.

    ``names`` is given for header-less files. Multi-character separators (``::``) are
    mapped to a control character so the fast C parser can be used.
    """
    text = read_text(path, encoding)
    if len(sep) > 1:
        text = text.replace(sep, "\x1f")
        sep = "\x1f"
    try:
        table = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            header=None if names else 0,
            names=names,
            quoting=3 if sep in ("\t", "\x1f", "|") else 0,  # QUOTE_NONE for non-CSV formats
            skip_blank_lines=True,
        )
    except pd.errors.ParserError as err:
        raise DataValidationError(located(path, f"cannot parse as {sep!r}-separated text: {err}")) from None
    if table.empty:
        raise DataValidationError(located(path, "file has a header but no data rows"))
    first_line = 1 if names else 2
    table["line"] = np.arange(first_line, first_line + len(table))
    return table


def require_columns(table: pd.DataFrame, path: Path, required: list[str]) -> None:
    missing = [column for column in required if column not in table.columns]
    if missing:
        found = [column for column in table.columns if column != "line"]
        raise DataValidationError(located(path, f"missing required column(s) {missing}; found {found}"))


class RowChecker:
    """Collects per-column parse failures, then raises or drops according to the policy."""

    def __init__(self, table: pd.DataFrame, path: Path, policy: str, report: ValidationReport):
        self.table = table
        self.path = path
        self.policy = policy
        self.report = report
        self.valid = pd.Series(True, index=table.index)

    def check(self, column: str, ok: pd.Series, expected: str) -> None:
        bad = first_bad_row(ok)
        if bad is None:
            return
        row = self.table.iloc[bad]
        message = located(
            self.path,
            f"expected {expected}, got {row[column]!r}; {int((~ok).sum())} such rows",
            line=int(row["line"]),
            column=column,
        )
        if self.policy == "raise":
            raise DataValidationError(message + " (use invalid_rows='drop' to drop and report them)")
        self.report.note(message + " (dropped)")
        self.valid &= ok

    def finish(self) -> pd.DataFrame:
        dropped = int((~self.valid).sum())
        self.report.invalid_rows_dropped += dropped
        return self.table.loc[self.valid] if dropped else self.table


def parse_ids(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Ids stay strings unless every one is an integer; returns (parsed, ok-mask)."""
    stripped = values.str.strip()
    ok = stripped != ""
    as_int = pd.to_numeric(stripped.where(ok), errors="coerce")
    if as_int[ok].notna().all() and (as_int[ok] % 1 == 0).all():
        return as_int.fillna(-1).astype(np.int64), ok
    return stripped, ok


def parse_timestamps(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Unix seconds, or ISO-8601 date-times converted to seconds; returns (parsed, ok-mask)."""
    stripped = values.str.strip()
    numeric = pd.to_numeric(stripped, errors="coerce")
    if numeric.notna().mean() >= 0.5:
        ok = numeric.notna() & np.isfinite(numeric)
        return numeric.where(ok, 0).astype(np.int64), ok
    dates = pd.to_datetime(stripped, errors="coerce", utc=True, format="ISO8601")
    ok = dates.notna()
    seconds = (dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return seconds.where(ok, 0).astype(np.int64), ok


def parse_floats(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    parsed = pd.to_numeric(values.str.strip(), errors="coerce")
    return parsed.astype(np.float64), parsed.notna() & np.isfinite(parsed)


def parse_interactions(
    table: pd.DataFrame,
    path: Path,
    policy: str,
    report: ValidationReport,
    has_rating: bool,
) -> pd.DataFrame:
    """Parse ``user_id``, ``item_id``, ``timestamp`` and (optionally) ``rating`` string columns."""
    report.rows_read[str(path)] = len(table)
    checker = RowChecker(table, path, policy, report)
    users, users_ok = parse_ids(table["user_id"])
    checker.check("user_id", users_ok, "a non-empty user id")
    items, items_ok = parse_ids(table["item_id"])
    checker.check("item_id", items_ok, "a non-empty item id")
    times, times_ok = parse_timestamps(table["timestamp"])
    checker.check("timestamp", times_ok, "a Unix timestamp in seconds or an ISO-8601 date-time")
    if has_rating:
        ratings, ratings_ok = parse_floats(table["rating"])
        checker.check("rating", ratings_ok, "a number")
    else:
        ratings = pd.Series(np.nan, index=table.index)
    kept = checker.finish().index
    return pd.DataFrame(
        {
            "user_id": users.loc[kept],
            "item_id": items.loc[kept],
            "timestamp": times.loc[kept],
            "rating": ratings.loc[kept],
            "line": table.loc[kept, "line"],
        }
    ).reset_index(drop=True)


def match_id_types(interactions: pd.DataFrame, items: pd.DataFrame) -> None:
    """Compare ids as strings when one side parsed as integers and the other did not."""
    if interactions["item_id"].dtype != items["item_id"].dtype:
        interactions["item_id"] = interactions["item_id"].astype(str)
        items["item_id"] = items["item_id"].astype(str)
