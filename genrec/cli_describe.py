"""``genrec check-descriptions``: run the grounding guard over a table of (item_id, text) rows.

:func:`check_description_table` is the plain function behind the command (registered on the
app in ``genrec.cli``): it reads a Parquet or CSV file, checks every row with
:func:`genrec.pipelines.check_descriptions` and writes the rows back with the guard's fields
(``passed``, ``about_item``, ``fluent``, ``unsupported``, ``unverifiable``, ``blocked``). A
user column (``user_id`` when the file has one) makes each row personal: the user's liked
titles, from their history, are facts the text may name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from genrec.cli_console import console, fail
from genrec.config import shown
from genrec.io import atomic_path

CHECK_FIELDS = ("passed", "about_item", "fluent", "unsupported", "unverifiable", "blocked")
USER_COLUMN = "user_id"  # used when a file has it: each row is then checked against that user's profile
LIST_SEPARATOR = "; "  # CSV cells hold the claim lists joined by this


class DescriptionFileError(ValueError):
    """A descriptions file that cannot be checked; the message names the file, the row and what was expected."""


def read_description_file(path: Path, item_column: str = "item_id", text_column: str = "text") -> pd.DataFrame:
    """The rows of a ``.parquet`` or ``.csv`` file, with the item and text columns validated."""
    if not path.is_file():
        raise DescriptionFileError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        table = pd.read_parquet(path)
    elif suffix == ".csv":
        table = pd.read_csv(path, keep_default_na=False, dtype={text_column: str})
    else:
        raise DescriptionFileError(f"{path}: expected a .parquet or .csv file, got {suffix or 'no extension'!r}")
    missing = [column for column in (item_column, text_column) if column not in table.columns]
    if missing:
        raise DescriptionFileError(
            f"{path}: missing column(s) {missing}; expected {item_column!r} and {text_column!r}, "
            f"found {list(table.columns)}"
        )
    return table


def _row_name(path: Path, position: int) -> str:
    """Where a row is: a CSV's physical line (header is line 1), a Parquet file's 0-based row index."""
    return f"line {position + 2}" if path.suffix.lower() == ".csv" else f"row {position}"


def _resolve_ids(path: Path, table: pd.DataFrame, column: str, dataset, kind: str = "item") -> list[Any]:
    known = set((dataset.item_ids if kind == "item" else dataset.user_ids).tolist())
    resolved = []
    for position, raw in enumerate(table[column].tolist()):
        candidates = [raw]
        if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
            candidates.append(int(raw.strip()))
        elif isinstance(raw, float) and raw.is_integer():
            candidates.append(int(raw))
        match = next((candidate for candidate in candidates if candidate in known), None)
        if match is None:
            raise DescriptionFileError(
                f"{path}, {_row_name(path, position)}, column {column!r}: unknown {kind} id {shown(raw)} "
                f"(not in data set {dataset.name})"
            )
        resolved.append(match)
    return resolved


def check_description_table(
    path: str | Path,
    dataset: str = "movielens-latest-small",
    out: str | Path | None = None,
    item_column: str = "item_id",
    text_column: str = "text",
    user_column: str | None = USER_COLUMN,
) -> tuple[pd.DataFrame, Path]:
    """Check every (item, text) row of ``path``; write the rows with the guard's fields to ``out``.

    ``user_column`` names the column of user ids (the default ``user_id`` is used when the file
    has it; another name must exist; None checks without users).

    ``out`` defaults to ``<stem>.checked<suffix>`` beside the input, in the input's format (CSV
    cells join the claim lists with ``"; "``). Returns the checked table and where it went.
    """
    from genrec.data import load_dataset
    from genrec.pipelines import check_descriptions

    path = Path(path)
    table = read_description_file(path, item_column, text_column)
    for position, text in enumerate(table[text_column].tolist()):
        if not isinstance(text, str):
            raise DescriptionFileError(
                f"{path}, {_row_name(path, position)}, column {text_column!r}: expected text, got {shown(text)}"
            )
    loaded = load_dataset(dataset)
    item_ids = _resolve_ids(path, table, item_column, loaded)
    if user_column is not None and user_column not in table.columns and user_column != USER_COLUMN:
        raise DescriptionFileError(f"{path}: missing user column {user_column!r}; found {list(table.columns)}")
    user_ids = (
        _resolve_ids(path, table, user_column, loaded, kind="user")
        if user_column is not None and user_column in table.columns
        else None
    )
    checks = check_descriptions(loaded, item_ids, table[text_column].tolist(), user_ids=user_ids)
    checked = table.copy()
    for name in CHECK_FIELDS:
        checked[name] = [getattr(check, name) for check in checks]
    target = Path(out) if out is not None else path.with_name(f"{path.stem}.checked{path.suffix}")
    with atomic_path(target) as temporary:
        if target.suffix.lower() == ".csv":
            flat = checked.copy()
            for name in ("unsupported", "unverifiable", "blocked"):
                flat[name] = [LIST_SEPARATOR.join(values) for values in flat[name]]
            flat.to_csv(temporary, index=False)
        elif target.suffix.lower() == ".parquet":
            checked.to_parquet(temporary, index=False)
        else:
            raise DescriptionFileError(f"{target}: the output must end in .parquet or .csv")
    return checked, target


def check_descriptions_command(
    file: Annotated[Path, typer.Argument(help="Parquet or CSV with columns item_id and text")],
    dataset: Annotated[str, typer.Option(help="a bundled name, a path, or FORMAT:PATH")] = "movielens-latest-small",
    out: Annotated[
        Path | None, typer.Option(help="where the checked rows go (.parquet or .csv; default FILE.checked.EXT)")
    ] = None,
    item_column: Annotated[str, typer.Option(help="column holding the item ids")] = "item_id",
    text_column: Annotated[str, typer.Option(help="column holding the descriptions")] = "text",
    user_column: Annotated[
        str, typer.Option(help="column of user ids: their liked titles may be named (used when present)")
    ] = USER_COLUMN,
) -> None:
    """Run the grounding guard over (item_id, text) rows and write passed, about_item, fluent, claims, blocked."""
    from genrec.data import DataValidationError
    from genrec.registry import UnknownNameError

    try:
        checked, target = check_description_table(file, dataset, out, item_column, text_column, user_column)
    except (DescriptionFileError, DataValidationError, UnknownNameError) as err:
        raise fail(str(err)) from None
    passed = int(checked["passed"].sum())
    console.print(f"{passed} of {len(checked)} descriptions pass the guard; wrote {target}", highlight=False)
