"""Reading delimited files into string tables and parsing their columns with located errors."""

from __future__ import annotations

import io
import re
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


BLANK_LINE = re.compile(r"\n[ \t\r]*\n")  # no "^" alternative: it would defeat the fast literal scan
FIELD_COUNT_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def read_delimited(
    path: Path,
    sep: str,
    encoding: str = "utf-8",
    names: list[str] | None = None,
) -> pd.DataFrame:
    """Read a delimited file as strings, adding a ``line`` column with 1-based source lines.

    ``names`` is given for header-less files; every line must then have exactly that many
    fields. Multi-character separators (``::``) are mapped to a control character so the
    fast C parser can be used.
    """
    text = read_text(path, encoding)
    shown_sep = sep
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
            quoting=3 if sep in ("\t", "\x1f", "|") else 0,  # QUOTE_NONE for non-CSV formats
            # Blank lines are kept here and dropped below, so row i stays physical line i.
            skip_blank_lines=False,
        )
    except pd.errors.ParserError as err:
        counts = FIELD_COUNT_ERROR.search(str(err))
        if counts:
            expected, line, found = (int(group) for group in counts.groups())
            message = f"expected {expected} {shown_sep!r}-separated fields (as on the first line), found {found}"
            raise DataValidationError(located(path, message, line=line)) from None
        raise DataValidationError(located(path, f"cannot parse as {shown_sep!r}-separated text: {err}")) from None
    first_line = 1 if names else 2
    table["line"] = np.arange(first_line, first_line + len(table))
    if BLANK_LINE.search("\n" + text):  # rare, so the per-line check only runs when needed
        physical = text.split("\n")
        blank = [not physical[line - 1].strip() for line in table["line"].tolist()]
        table = table.loc[~np.array(blank, dtype=bool)].reset_index(drop=True)
    if names:
        check_field_count(table, path, names, shown_sep)
        table.columns = [*names, "line"]
    if table.empty:
        raise DataValidationError(located(path, "file has a header but no data rows"))
    return table


def check_field_count(table: pd.DataFrame, path: Path, names: list[str], sep: str) -> None:
    """Header-less files: a wrong field count would silently shift every column."""
    found = table.shape[1] - 1  # without "line"
    if found == len(names):
        return
    line = int(table["line"].iloc[0]) if len(table) else 1
    raise DataValidationError(
        located(path, f"expected {len(names)} {sep!r}-separated fields ({', '.join(names)}), found {found}", line=line)
    )


def require_columns(table: pd.DataFrame, path: Path, required: list[str]) -> None:
    missing = [column for column in required if column not in table.columns]
    if missing:
        found = [column for column in table.columns if column != "line"]
        raise DataValidationError(located(path, f"missing required column(s) {missing}; found {found}"))


class RowChecker:
    """Collects per-column parse failures, then raises or drops according to the policy."""

    def __init__(
        self,
        table: pd.DataFrame,
        path: Path,
        policy: str,
        report: ValidationReport,
        source_columns: dict[str, str] | None = None,
    ):
        self.table = table
        self.path = path
        self.policy = policy
        self.report = report
        self.source_columns = source_columns or {}  # messages name the column as the file spells it
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
            column=self.source_columns.get(column, column),
        )
        if self.policy == "raise":
            raise DataValidationError(message + " (use invalid_rows='drop' to drop and report them)")
        self.report.note(message + " (dropped)")
        self.valid &= ok

    def finish(self) -> pd.DataFrame:
        dropped = int((~self.valid).sum())
        self.report.invalid_rows_dropped += dropped
        return self.table.loc[self.valid] if dropped else self.table


INTEGER_ID = r"[+-]?\d{1,18}(?:\.0*)?"  # "12" or "12.0" (ids written as floats); 18 digits fit int64


def parse_ids(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Ids stay strings unless every one is an integer; returns (parsed, ok-mask).

    Integers are parsed from the text, never through float64, so long ids cannot collide.
    """
    stripped = values.str.strip()
    ok = stripped != ""
    present = stripped[ok]
    if not present.str.fullmatch(INTEGER_ID).all():
        return stripped, ok
    # numpy assignment: pandas' masked Series assignment would round-trip through float64
    parsed = np.full(len(values), -1, dtype=np.int64)
    parsed[ok.to_numpy(dtype=bool)] = present.str.replace(r"\.0*$", "", regex=True).astype(np.int64).to_numpy()
    return pd.Series(parsed, index=values.index), ok


def parse_timestamps(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Unix seconds, or ISO-8601 date-times converted to seconds; returns (parsed, ok-mask)."""
    stripped = values.str.strip()
    numeric = pd.to_numeric(stripped, errors="coerce")
    if numeric.notna().mean() >= 0.5:
        # Beyond +-2**62 seconds the int64 cast would wrap around silently.
        ok = numeric.notna() & np.isfinite(numeric) & (numeric.abs() < 2.0**62)
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
    source_columns: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Parse ``user_id``, ``item_id``, ``timestamp`` and (optionally) ``rating`` string columns.

    ``source_columns`` maps those names to the file's own column names, for messages.
    """
    report.rows_read[str(path)] = len(table)
    checker = RowChecker(table, path, policy, report, source_columns)
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
