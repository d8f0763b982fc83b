"""Reading delimited files into string tables and parsing their columns with located errors."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.config import shown
from genrec.data.validation import (
    DROP_INVALID_ROWS,
    MISSING_PATH,
    DataValidationError,
    ValidationReport,
    first_bad_row,
    located,
    path_problem,
)


def read_text(path: Path, encoding: str) -> str:
    """Read a whole file; empty files and undecodable bytes raise with the file and line."""
    if not path.exists():
        problem = path_problem(path)
        raise DataValidationError(
            located(path, "file not found" if problem == MISSING_PATH else f"{problem}; expected a file")
        )
    if path.is_dir():
        raise DataValidationError(located(path, "is a directory; expected a file"))
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataValidationError(located(path, f"cannot read: {err.strerror}")) from None
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
UNQUOTED_SEPARATORS = ("\t", "\x1f", "|")  # formats without CSV quoting (QUOTE_NONE)


def read_delimited(
    path: Path,
    sep: str,
    encoding: str = "utf-8",
    names: list[str] | None = None,
) -> pd.DataFrame:
    """Read a delimited file as strings, adding a ``line`` column: the physical line (1-based)
    on which each record starts, so a quoted field spanning lines shifts no later line.

    ``names`` is given for header-less files; every line must then have exactly that many
    fields. Multi-character separators (``::``) are mapped to a control character so the
    fast C parser can be used. Text with CSV quotes is read record by record with the csv
    module, which knows where each record starts.
    """
    text = read_text(path, encoding)
    shown_sep = sep
    if len(sep) > 1:
        text = text.replace(sep, "\x1f")
        sep = "\x1f"
    if sep not in UNQUOTED_SEPARATORS and '"' in text:
        table = read_quoted(text, path, sep, shown_sep, header=names is None)
    else:
        table = read_unquoted(text, path, sep, shown_sep, header=names is None)
    if names:
        check_field_count(table, path, names, shown_sep)
        table.columns = [*names, "line"]
    if table.empty:
        raise DataValidationError(located(path, "file has a header but no data rows"))
    return table


def read_unquoted(text: str, path: Path, sep: str, shown_sep: str, header: bool) -> pd.DataFrame:
    """The fast path: without quotes no record spans lines, so row i is a known physical line."""
    if header:
        check_unique_header(text.partition("\n")[0].rstrip("\r").split(sep), path)
    try:
        table = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            header=0 if header else None,
            quoting=3 if sep in UNQUOTED_SEPARATORS else 0,  # QUOTE_NONE for non-CSV formats
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
    first_line = 2 if header else 1
    table["line"] = np.arange(first_line, first_line + len(table))
    if BLANK_LINE.search("\n" + text):  # rare, so the per-line check only runs when needed
        physical = text.split("\n")
        blank = [not physical[line - 1].strip() for line in table["line"].tolist()]
        table = table.loc[~np.array(blank, dtype=bool)].reset_index(drop=True)
    return table


def read_quoted(text: str, path: Path, sep: str, shown_sep: str, header: bool) -> pd.DataFrame:
    """Records of quoted CSV with the physical line each starts on; blank records are skipped.

    Rows with fewer fields than the first are padded with empty strings (as the fast path
    does); rows with more, and malformed quoting, raise with the record's first line.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    records: list[list[str]] = []
    lines: list[int] = []
    start = 1
    try:
        for record in reader:
            if len(record) > 1 or (record and record[0].strip()):
                records.append(record)
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as err:
        if str(err) == "unexpected end of data":
            message = "a quoted field that starts in this record is never closed (expected a closing '\"')"
        else:
            message = f"cannot parse as {shown_sep!r}-separated text: {err}"
        raise DataValidationError(located(path, message, line=start)) from None
    columns = records.pop(0) if header and records else None
    if columns is not None:
        check_unique_header(columns, path)
    lines = lines[1:] if columns is not None else lines
    width = len(columns) if columns is not None else len(records[0]) if records else 0
    for record, line in zip(records, lines, strict=True):
        if len(record) > width:
            message = f"expected {width} {shown_sep!r}-separated fields (as on the first line), found {len(record)}"
            raise DataValidationError(located(path, message, line=line))
        record.extend([""] * (width - len(record)))
    table = pd.DataFrame(records, columns=columns, dtype=str)
    table["line"] = np.array(lines, dtype=np.int64)
    return table


def check_unique_header(columns: list[str], path: Path) -> None:
    """A column named twice would be read from one of the two places without a word."""
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            raise DataValidationError(
                located(path, f"the header names column {column!r} twice; expected unique column names", line=1)
            )
        seen.add(column)


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
            f"expected {expected}, got {shown(row[column])}; {int((~ok).sum())} such rows",
            line=int(row["line"]),
            column=self.source_columns.get(column, column),
        )
        if self.policy == "raise":
            raise DataValidationError(message, DROP_INVALID_ROWS)
        self.report.note(message + " (dropped)")
        self.valid &= ok

    def finish(self) -> pd.DataFrame:
        dropped = int((~self.valid).sum())
        self.report.invalid_rows_dropped += dropped
        return self.table.loc[self.valid] if dropped else self.table


INTEGER_ID = r"[+-]?\d{1,18}(?:\.0*)?"  # "12" or "12.0" (ids written as floats); 18 digits fit int64


def parse_ids(values: pd.Series, integer: bool = False, text: bool = False) -> tuple[pd.Series, pd.Series]:
    """Ids stay strings unless every one is an integer; returns (parsed, ok-mask).

    With ``integer`` (formats whose ids are integers), a non-integer id is not ok instead; with
    ``text`` (formats whose ids are codes, such as Amazon's ASIN ``0000013714``) ids stay strings.
    Integers are parsed from the text, never through float64, so long ids cannot collide.
    """
    stripped = values.str.strip()
    ok = stripped != ""
    if text:
        return stripped, ok
    if integer:
        ok &= stripped.str.fullmatch(INTEGER_ID)
    present = stripped[ok]
    if not present.str.fullmatch(INTEGER_ID).all():
        return stripped, ok
    # numpy assignment: pandas' masked Series assignment would round-trip through float64
    parsed = np.full(len(values), -1, dtype=np.int64)
    parsed[ok.to_numpy(dtype=bool)] = present.str.replace(r"\.0*$", "", regex=True).astype(np.int64).to_numpy()
    return pd.Series(parsed, index=values.index), ok


Check = tuple[pd.Series, str]  # (ok-mask, what was expected), in the order to report them
UNIX_UNITS = ("seconds", "milliseconds", "microseconds", "nanoseconds")
# Magnitudes where each unit starts: 1e11 s is the year 5138, while Unix milliseconds pass
# 1e11 in March 1973, so for any date since then the unit shows in the number of digits.
UNIT_THRESHOLDS = (1e11, 1e14, 1e17)


def parse_timestamps(values: pd.Series) -> tuple[pd.Series, list[Check]]:
    """Unix seconds, or ISO-8601 date-times converted to seconds; returns (parsed, checks).

    The column's kind is the one most of its values have. Besides unparsable values, the
    checks flag values of another kind (an ISO date among Unix timestamps, or the reverse)
    and Unix timestamps in another unit than most (milliseconds among seconds): a mixed
    column would order the interactions wrongly.
    """
    stripped = values.str.strip()
    numeric = pd.to_numeric(stripped, errors="coerce")
    # Beyond +-2**62 seconds the int64 cast would wrap around silently.
    is_number = numeric.notna() & np.isfinite(numeric) & (numeric.abs() < 2.0**62)
    candidates = stripped.where(numeric.isna())
    dates = (
        pd.to_datetime(candidates, errors="coerce", utc=True, format="ISO8601") if candidates.notna().any() else None
    )
    is_date = pd.Series(False, index=values.index) if dates is None else dates.notna()
    checks: list[Check] = [(is_number | is_date, "a Unix timestamp in seconds or an ISO-8601 date-time")]
    n_numbers, n_dates = int(is_number.sum()), int(is_date.sum())
    kinds = [
        ("a Unix timestamp", "Unix timestamps", is_number),
        ("an ISO-8601 date-time", "ISO-8601 date-times", is_date),
    ]
    (one, main, _), (_, other, stray) = kinds if n_numbers >= n_dates else kinds[::-1]
    if stray.any():
        mixes = f"the column mixes {main} with {other}; write one kind throughout"
        checks.append((~stray, f"{one} like the column's other {max(n_numbers, n_dates)} rows ({mixes})"))
    if n_numbers < n_dates:
        seconds = (dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
        return seconds.where(is_date, 0).astype(np.int64), checks
    units = pd.Series(np.digitize(numeric.where(is_number, 0).abs(), UNIT_THRESHOLDS), index=values.index)
    counts = np.bincount(units[is_number], minlength=len(UNIX_UNITS))
    if (counts > 0).sum() > 1:
        unit = int(counts.argmax())
        others = " and ".join(UNIX_UNITS[u] for u in np.flatnonzero(counts) if u != unit)
        mixes = f"the column mixes {UNIX_UNITS[unit]} with {others}; convert it to one unit"
        expected = f"a Unix timestamp in {UNIX_UNITS[unit]} like the column's other {counts[unit]} rows ({mixes})"
        checks.append((~is_number | (units == unit), expected))
    return numeric.where(is_number, 0).astype(np.int64), checks


FLOAT32_MAX = float(np.finfo(np.float32).max)  # ratings are stored as float32


def parse_ratings(values: pd.Series, valid_range: tuple[float, float] | None) -> tuple[pd.Series, list[Check]]:
    """Numbers that fit float32 (``1e300`` would become inf) and, when given, lie in ``valid_range``."""
    parsed = pd.to_numeric(values.str.strip(), errors="coerce").astype(np.float64)
    number = parsed.notna() & np.isfinite(parsed)
    if valid_range is None:
        fits = parsed.abs() <= FLOAT32_MAX
        return parsed, [(number, "a number"), (~number | fits, f"a number of magnitude at most {FLOAT32_MAX:.3g}")]
    low, high = valid_range
    inside = parsed.between(low, high)
    return parsed, [
        (number, "a number"),
        (~number | inside, f"a rating from {low:g} to {high:g} (this format's range)"),
    ]


def parse_interactions(
    table: pd.DataFrame,
    path: Path,
    policy: str,
    report: ValidationReport,
    has_rating: bool,
    source_columns: dict[str, str] | None = None,
    integer_ids: bool = False,
    rating_range: tuple[float, float] | None = None,
    text_ids: bool = False,
) -> pd.DataFrame:
    """Parse ``user_id``, ``item_id``, ``timestamp`` and (optionally) ``rating`` string columns.

    ``source_columns`` maps those names to the file's own column names, for messages.
    ``integer_ids``: the format's ids are integers (MovieLens); ``text_ids``: codes kept as strings
    (Amazon); ``rating_range``: its scale.
    """
    report.rows_read[str(path)] = len(table)
    checker = RowChecker(table, path, policy, report, source_columns)
    users, users_ok = parse_ids(table["user_id"], integer_ids, text_ids)
    items, items_ok = parse_ids(table["item_id"], integer_ids, text_ids)
    for column, ok in (("user_id", users_ok), ("item_id", items_ok)):
        present = table[column].str.strip() != ""
        checker.check(column, present, f"a non-empty {column[:4]} id")
        checker.check(column, ok | ~present, f"an integer {column[:4]} id (this format's ids are integers)")
    times, time_checks = parse_timestamps(table["timestamp"])
    for ok, expected in time_checks:
        checker.check("timestamp", ok, expected)
    if has_rating:
        ratings, rating_checks = parse_ratings(table["rating"], rating_range)
        for ok, expected in rating_checks:
            checker.check("rating", ok, expected)
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
