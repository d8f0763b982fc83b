"""Loaders for the native formats: MovieLens 100K / 1M / latest, RecBole atomic files,
generic CSV / Parquet with a column mapping. Each returns parsed raw tables that
:func:`genrec.data.dataset.build_dataset` turns into a :class:`Dataset`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.config import shown
from genrec.data.dataset import LoadOptions
from genrec.data.image_files import is_url
from genrec.data.parsing import parse_ids, parse_interactions, read_delimited, require_columns
from genrec.data.validation import (
    DataValidationError,
    ValidationReport,
    check_metadata,
    first_bad_row,
    located,
    path_problem,
    value_at,
)
from genrec.registry import Registry

YEAR = r"[+-]?\d{1,4}(?:\.0*)?"  # "1995" or "1995.0" (a Parquet float column)
YEAR_IN_TITLE = re.compile(r"\s*\((\d{4})\)\s*$")
MOVIELENS_LATEST_RATINGS = (0.5, 5.0)  # half stars
MOVIELENS_STARS = (1.0, 5.0)  # 100K and 1M: whole stars
ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
]  # fmt: skip


@dataclass
class RawTables:
    interactions: pd.DataFrame
    items: pd.DataFrame
    interactions_source: str
    # genrec column name -> the interaction file's own name, so messages match the file
    source_columns: dict[str, str] = field(default_factory=dict)


Loader = Callable[[Path, ValidationReport, LoadOptions], RawTables]
FORMATS: Registry[Loader] = Registry(
    "data format", stage="data-formats", description="formats a path loads as (FORMAT:PATH, or detected)"
)


def split_title_year(titles: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``"Heat (1995)"`` -> (``"Heat"``, 1995); titles without a year keep a missing year."""
    titles = titles.str.strip()
    years = titles.str.extract(YEAR_IN_TITLE, expand=False)
    return titles.str.replace(YEAR_IN_TITLE, "", regex=True), pd.to_numeric(years).astype("Int64")


def split_list(values: pd.Series, sep: str, empty: tuple[str, ...] = ("(no genres listed)",)) -> list[list[str]]:
    return [
        [part.strip() for part in value.split(sep) if part.strip() and part.strip() not in empty]
        for value in values.fillna("").astype(str)
    ]


def item_table(item_ids: pd.Series, titles: pd.Series, genres: list[list[str]], **extra) -> pd.DataFrame:
    titles, years = split_title_year(titles)
    table = pd.DataFrame({"item_id": item_ids.to_numpy(), "title": titles.to_numpy(), "genres": genres})
    table["tags"] = [[] for _ in range(len(table))]
    table["year"] = years.reset_index(drop=True)
    for name, values in extra.items():
        table[name] = values
    return table


def parse_item_ids(
    table: pd.DataFrame, path: Path, column: str = "item_id", unique: bool = True, integer: bool = False
) -> pd.Series:
    """Parse an item id column; every id must be non-empty (an integer where the format says
    so) and, in an item table, listed once."""
    ids, ok = parse_ids(table[column], integer)
    bad = first_bad_row(ok)
    if bad is not None:
        value = value_at(table[column], bad)
        expected = "an integer item id (this format's ids are integers)" if integer and value.strip() else None
        raise DataValidationError(
            located(
                path,
                f"expected {expected or 'a non-empty item id'}, got {shown(value)}",
                line=int(table["line"].iloc[bad]),
                column=column,
            )
        )
    bad = first_bad_row(~ids.duplicated()) if unique else None
    if bad is not None:
        first = int(table["line"].iloc[int((ids == ids.iloc[bad]).to_numpy().argmax())])
        raise DataValidationError(
            located(
                path,
                f"item id {value_at(ids, bad)!r} is listed again (first on line {first}); expected each item once",
                line=int(table["line"].iloc[bad]),
                column=column,
            )
        )
    return ids


def parse_years(
    table: pd.DataFrame,
    column: str,
    path: Path,
    options: LoadOptions,
    report: ValidationReport,
    source_column: str | None = None,
) -> pd.Series:
    """An item table's year column as nullable Int64 (reset index); an empty cell is a missing year.

    A value that is not an integer (ml-100k's RecBole ``.item`` file says ``unkonwn``) leaves that
    item without a year and is counted in ``report.invalid_metadata``, or raises under ``strict_metadata``.
    """
    stripped = table[column].str.strip()
    valid = (stripped == "") | stripped.str.fullmatch(YEAR)
    expected = "a year (an integer of up to 4 digits) or an empty cell"
    check_metadata(
        valid,
        table[column],
        table["line"],
        path,
        "year",
        expected,
        report,
        options.strict_metadata,
        source_column or column,
    )
    years = pd.to_numeric(stripped.where(valid & (stripped != ""))).astype("Int64")  # 4 digits: exact in float64
    return years.reset_index(drop=True)


def check_titles(table: pd.DataFrame, column: str, path: Path, options: LoadOptions, report: ValidationReport) -> None:
    """An empty title is a malformed optional field: counted (the item keeps an empty title), or fatal if strict."""
    ok = table[column].str.strip() != ""
    check_metadata(
        ok, table[column], table["line"], path, "title", "a non-empty title", report, options.strict_metadata, column
    )


def aggregate_tags(tags: pd.DataFrame, items: pd.DataFrame) -> None:
    """Per item: distinct lower-cased tags, most frequent first (ties alphabetical)."""
    tags = tags.assign(tag=tags["tag"].str.strip().str.lower())
    tags = tags.loc[tags["tag"] != ""]
    counts = tags.groupby(["item_id", "tag"]).size().rename("n").reset_index()
    counts = counts.sort_values(["item_id", "n", "tag"], ascending=[True, False, True])
    per_item = counts.groupby("item_id")["tag"].agg(list)
    items["tags"] = [per_item.get(item_id, []) for item_id in items["item_id"]]


@FORMATS.register("movielens-latest")
def load_movielens_latest(path: Path, report: ValidationReport, options: LoadOptions) -> RawTables:
    """``ratings.csv``, ``movies.csv`` and optional ``tags.csv`` (GroupLens "latest" layout)."""
    ratings_path, movies_path, tags_path = path / "ratings.csv", path / "movies.csv", path / "tags.csv"
    ratings = read_delimited(ratings_path, ",")
    require_columns(ratings, ratings_path, ["userId", "movieId", "rating", "timestamp"])
    ratings = ratings.rename(columns={"userId": "user_id", "movieId": "item_id"})
    source_columns = {"user_id": "userId", "item_id": "movieId"}
    interactions = parse_interactions(
        ratings, ratings_path, options.invalid_rows, report, True, source_columns, True, MOVIELENS_LATEST_RATINGS
    )

    movies = read_delimited(movies_path, ",")
    require_columns(movies, movies_path, ["movieId", "title", "genres"])
    check_titles(movies, "title", movies_path, options, report)
    items = item_table(
        parse_item_ids(movies, movies_path, "movieId", integer=True),
        movies["title"],
        split_list(movies["genres"], "|"),
    )
    if tags_path.exists() or tags_path.is_symlink():
        tags = read_delimited(tags_path, ",")
        require_columns(tags, tags_path, ["movieId", "tag"])
        # A tag row is optional metadata: one with a malformed movie id is left out and counted.
        tag_items, ok = parse_ids(tags["movieId"], integer=True)
        expected = "an integer movie id (this format's ids are integers)"
        check_metadata(
            ok, tags["movieId"], tags["line"], tags_path, "tags", expected, report, options.strict_metadata, "movieId"
        )
        aggregate_tags(pd.DataFrame({"item_id": tag_items, "tag": tags["tag"]}).loc[ok], items)
    return RawTables(interactions, items, str(ratings_path), source_columns)


@FORMATS.register("movielens-1m")
def load_movielens_1m(path: Path, report: ValidationReport, options: LoadOptions) -> RawTables:
    """``ratings.dat`` and ``movies.dat``: ``::``-separated, latin-1 (GroupLens ML-1M layout)."""
    ratings_path, movies_path = path / "ratings.dat", path / "movies.dat"
    ratings = read_delimited(ratings_path, "::", "latin-1", names=["user_id", "item_id", "rating", "timestamp"])
    interactions = parse_interactions(
        ratings, ratings_path, options.invalid_rows, report, True, integer_ids=True, rating_range=MOVIELENS_STARS
    )
    movies = read_delimited(movies_path, "::", "latin-1", names=["item_id", "title", "genres"])
    check_titles(movies, "title", movies_path, options, report)
    items = item_table(
        parse_item_ids(movies, movies_path, integer=True), movies["title"], split_list(movies["genres"], "|")
    )
    return RawTables(interactions, items, str(ratings_path))


@FORMATS.register("movielens-100k")
def load_movielens_100k(path: Path, report: ValidationReport, options: LoadOptions) -> RawTables:
    """``u.data`` (tab-separated) and ``u.item`` (``|``-separated, latin-1, 19 genre flags)."""
    data_path, item_path = path / "u.data", path / "u.item"
    ratings = read_delimited(data_path, "\t", names=["user_id", "item_id", "rating", "timestamp"])
    interactions = parse_interactions(
        ratings, data_path, options.invalid_rows, report, True, integer_ids=True, rating_range=MOVIELENS_STARS
    )
    flag_names = [f"genre_{i}" for i in range(len(ML100K_GENRES))]
    movies = read_delimited(
        item_path,
        "|",
        "latin-1",
        names=["item_id", "title", "release_date", "video_release_date", "imdb_url", *flag_names],
    )
    flags = movies[flag_names]
    ok = flags.isin(["0", "1"]).all(axis=1)
    shown = pd.Series([str(row) for row in flags.to_numpy().tolist()], index=flags.index)
    check_metadata(
        ok, shown, movies["line"], item_path, "genres", "19 genre flags of 0/1", report, options.strict_metadata
    )
    genres = [
        [ML100K_GENRES[i] for i, flag in enumerate(row) if flag == "1"] if valid else []
        for row, valid in zip(flags.to_numpy(), ok.tolist(), strict=True)
    ]
    check_titles(movies, "title", item_path, options, report)
    items = item_table(parse_item_ids(movies, item_path, integer=True), movies["title"], genres)
    return RawTables(interactions, items, str(data_path))


RECBOLE_TITLE_FIELDS = ("movie_title", "title", "item_name", "name")
RECBOLE_GENRE_FIELDS = ("genre", "genres", "class", "categories")
RECBOLE_YEAR_FIELDS = ("release_year", "year")


def read_recbole(path: Path) -> pd.DataFrame:
    """Read an atomic file, stripping the ``:type`` suffix of each header field."""
    table = read_delimited(path, "\t")
    renamed = {}
    for header in table.columns:
        if header == "line":
            continue
        field, _, kind = header.partition(":")
        if kind not in ("token", "token_seq", "float", "float_seq"):
            raise DataValidationError(
                located(
                    path,
                    f"header field {header!r} lacks a RecBole type; expected "
                    "name:token, name:token_seq, name:float or name:float_seq",
                    line=1,
                )
            )
        renamed[header] = field
    return table.rename(columns=renamed)


@FORMATS.register("recbole")
def load_recbole(path: Path, report: ValidationReport, options: LoadOptions) -> RawTables:
    """RecBole atomic files ``<name>.inter`` and optional ``<name>.item`` in one directory."""
    if path.is_file():
        inter_path = path
    else:
        candidates = sorted(path.glob("*.inter"))
        if len(candidates) != 1:
            raise DataValidationError(located(path, f"expected exactly one *.inter file, found {len(candidates)}"))
        inter_path = candidates[0]
    table = read_recbole(inter_path)
    require_columns(table, inter_path, ["user_id", "item_id", "timestamp"])
    interactions = parse_interactions(
        table, inter_path, options.invalid_rows, report, has_rating="rating" in table.columns
    )

    item_path = inter_path.with_suffix(".item")
    if not item_path.exists():
        report.note(located(item_path, "no item file; titles are the item ids"))
        return RawTables(interactions, items_from_ids(interactions["item_id"]), str(inter_path))
    items_raw = read_recbole(item_path)
    require_columns(items_raw, item_path, ["item_id"])
    title_field = next((name for name in RECBOLE_TITLE_FIELDS if name in items_raw.columns), None)
    genre_field = next((name for name in RECBOLE_GENRE_FIELDS if name in items_raw.columns), None)
    year_field = next((name for name in RECBOLE_YEAR_FIELDS if name in items_raw.columns), None)
    titles = items_raw[title_field] if title_field else items_raw["item_id"]
    if title_field:
        check_titles(items_raw, title_field, item_path, options, report)
    genres = split_list(items_raw[genre_field], " ") if genre_field else [[] for _ in range(len(items_raw))]
    items = item_table(parse_item_ids(items_raw, item_path), titles, genres)
    if year_field:
        years = parse_years(items_raw, year_field, item_path, options, report)
        items["year"] = items["year"].fillna(years)
    return RawTables(interactions, items, str(inter_path))


def items_from_ids(item_ids: pd.Series) -> pd.DataFrame:
    unique = pd.Series(pd.unique(item_ids))
    return item_table(unique, unique.astype(str), [[] for _ in range(len(unique))])


GENERIC_INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp", "rating")
GENERIC_ITEM_COLUMNS = ("item_id", "title", "genres", "tags", "year", "image")


def read_generic(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        try:
            table = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises several unrelated types for bad files
            raise DataValidationError(located(path, f"cannot read as Parquet: {err}")) from None
        if table.empty:
            raise DataValidationError(located(path, "Parquet file has no rows"))
        table = table.apply(parquet_text)
        table["line"] = np.arange(1, len(table) + 1)  # Parquet rows are numbered from 1
        return table
    return read_delimited(path, "\t" if path.suffix in (".tsv", ".tab") else ",")


def parquet_text(values: pd.Series) -> pd.Series:
    """A Parquet column as the strings a CSV would hold: lists joined with ``|``, nulls empty."""
    if values.dtype == object:  # list columns (genres, tags) arrive as arrays
        values = values.map(lambda v: "|".join(map(str, v)) if isinstance(v, list | tuple | np.ndarray) else v)
    return values.astype(str).where(values.notna(), "")


def image_location(value: str, base: Path) -> str | None:
    """Relative image paths are relative to the item table's directory, not the working directory."""
    if not value.strip():
        return None
    if is_url(value) or Path(value).is_absolute():
        return value
    return str(base / value)


GENERIC_SUFFIXES = {"csv": (".csv", ".tsv"), "parquet": (".parquet",)}


def find_generic_file(path: Path, stem: str, suffixes: tuple[str, ...]) -> Path | None:
    """``<stem><suffix>`` in the directory ``path``; two of them (``a.csv`` and ``a.tsv``) raise."""
    found = [path / f"{stem}{suffix}" for suffix in suffixes if (path / f"{stem}{suffix}").exists()]
    if len(found) > 1:
        raise DataValidationError(
            located(path, f"holds both {found[0].name} and {found[1].name}; expected one {stem} file")
        )
    return found[0] if found else None


def load_generic(path: Path, report: ValidationReport, options: LoadOptions, format: str = "csv") -> RawTables:
    """A file of interactions, or a directory with ``interactions.*`` and optional ``items.*``.

    In a directory, ``format`` picks the interaction file: ``interactions.csv``/``.tsv`` for
    ``csv``, ``interactions.parquet`` for ``parquet``; the item table may be either kind (the
    same kind first).

    ``options.columns`` maps genrec's names (user_id, item_id, timestamp, rating, title, genres, tags,
    year, image) to the source's column names; unmapped names are used as they are.
    Genres and tags are ``|``-separated lists.
    """
    mapping = dict(options.columns or {})
    unknown = set(mapping) - set(GENERIC_INTERACTION_COLUMNS) - set(GENERIC_ITEM_COLUMNS)
    if unknown:
        raise DataValidationError(
            f"{path}: column mapping: unknown key(s) {sorted(unknown)}; valid keys: "
            f"{sorted(set(GENERIC_INTERACTION_COLUMNS) | set(GENERIC_ITEM_COLUMNS))}"
        )
    source = {name: mapping.get(name, name) for name in (*GENERIC_INTERACTION_COLUMNS, *GENERIC_ITEM_COLUMNS)}
    inter_path = path if path.is_file() else find_generic_file(path, "interactions", GENERIC_SUFFIXES[format])
    if inter_path is None:
        names = " or ".join(f"interactions{suffix}" for suffix in GENERIC_SUFFIXES[format])
        raise DataValidationError(located(path, f"expected {names} in this directory (format {format})"))
    table = read_generic(inter_path)
    # A column the mapping names explicitly must exist, even an optional one such as rating.
    required = ["user_id", "item_id", "timestamp", *(["rating"] if "rating" in mapping else [])]
    require_columns(table, inter_path, [source[name] for name in required])
    table = table.rename(columns={source[name]: name for name in GENERIC_INTERACTION_COLUMNS})
    interactions = parse_interactions(
        table, inter_path, options.invalid_rows, report, "rating" in table.columns, source_columns=source
    )

    item_path = None
    if not path.is_file():
        kinds = sorted(GENERIC_SUFFIXES, key=lambda kind: kind != format)  # the same kind first
        item_path = next(filter(None, (find_generic_file(path, "items", GENERIC_SUFFIXES[k]) for k in kinds)), None)
    if item_path is None:
        report.note(located(inter_path, "no item table; titles are the item ids"))
        return RawTables(interactions, items_from_ids(interactions["item_id"]), str(inter_path), source)
    raw = read_generic(item_path)
    required = ["item_id", "title", *(name for name in ("genres", "tags", "year", "image") if name in mapping)]
    require_columns(raw, item_path, [source[name] for name in required])
    item_ids = parse_item_ids(raw, item_path, source["item_id"])
    check_titles(raw, source["title"], item_path, options, report)
    raw = raw.rename(columns={source[name]: name for name in GENERIC_ITEM_COLUMNS})
    empty_lists = [[] for _ in range(len(raw))]
    items = item_table(
        item_ids,
        raw["title"],
        split_list(raw["genres"], "|") if "genres" in raw.columns else empty_lists,
    )
    if "tags" in raw.columns:
        items["tags"] = split_list(raw["tags"], "|")
    if "year" in raw.columns:
        items["year"] = items["year"].fillna(parse_years(raw, "year", item_path, options, report, source["year"]))
    if "image" in raw.columns:
        items["image_path"] = [image_location(value, item_path.parent) for value in raw["image"].tolist()]
    extra = [c for c in raw.columns if c not in GENERIC_ITEM_COLUMNS and c != "line"]
    for name in extra:
        items[name] = raw[name].to_numpy()
    return RawTables(interactions, items, str(inter_path), source)


@FORMATS.register(
    "csv", description="interactions.csv/.tsv (or one such file) plus optional items.*; columns mapped by --column"
)
def load_csv(path: Path, report: ValidationReport, options: LoadOptions) -> RawTables:
    """``interactions.csv``/``.tsv`` (or one such file) plus optional ``items.*``; see :func:`load_generic`."""
    return load_generic(path, report, options, "csv")


@FORMATS.register(
    "parquet", description="interactions.parquet (or one such file) plus optional items.*; columns mapped by --column"
)
def load_parquet(path: Path, report: ValidationReport, options: LoadOptions) -> RawTables:
    """``interactions.parquet`` (or one such file) plus optional ``items.*``; see :func:`load_generic`."""
    return load_generic(path, report, options, "parquet")


DIRECTORY_LAYOUTS = [
    # (format, the files that identify it); glob patterns
    ("movielens-latest", ("ratings.csv", "movies.csv")),
    ("movielens-1m", ("ratings.dat", "movies.dat")),
    ("movielens-100k", ("u.data", "u.item")),
    ("recbole", ("*.inter",)),
    ("csv", ("interactions.csv",)),
    ("csv", ("interactions.tsv",)),
    ("parquet", ("interactions.parquet",)),
    ("amazon", ("*.json*",)),  # .json, .jsonl, gzipped or not (genrec.data.amazon)
]


def formats_present(path: Path) -> dict[str, list[str]]:
    """The formats whose files the directory holds: format -> the files that identify it."""
    found: dict[str, list[str]] = {}
    for fmt, patterns in DIRECTORY_LAYOUTS:
        matches = [sorted(path.glob(pattern)) for pattern in patterns]
        if all(matches):
            found.setdefault(fmt, []).extend(match.name for files in matches for match in files)
    return found


def detect_format(path: Path) -> str:
    """Guess the format from the files present; raises listing the formats when unsure or when
    the directory holds the files of more than one format."""
    if path.is_file():
        by_suffix = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".inter": "recbole"}
        by_suffix |= {".json": "amazon", ".jsonl": "amazon"}
        suffix = Path(path.stem).suffix if path.suffix == ".gz" else path.suffix  # reviews.json.gz: ".json"
        if suffix in by_suffix and (path.suffix != ".gz" or by_suffix[suffix] == "amazon"):
            return by_suffix[suffix]
    elif path.is_dir():
        found = formats_present(path)
        if len(found) == 1:
            return next(iter(found))
        if found:
            listed = "; ".join(f"{fmt} ({', '.join(files)})" for fmt, files in found.items())
            raise DataValidationError(
                located(
                    path,
                    f"holds the files of {len(found)} formats: {listed}; pick one as FORMAT:PATH, "
                    f"e.g. {next(iter(found))}:{path}",
                )
            )
    else:
        problem = path_problem(path)
        raise DataValidationError(located(path, problem))
    raise DataValidationError(
        located(
            path,
            f"cannot detect the data format; give it as FORMAT:PATH with FORMAT one of {', '.join(FORMATS.names())}",
        )
    )
