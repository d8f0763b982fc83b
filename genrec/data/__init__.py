"""Catalogues and interaction logs: loaders, validation, the bundled MovieLens data set.

>>> from genrec.data import load_dataset
>>> ds = load_dataset("movielens-latest-small")                  # bundled, offline
>>> ds = load_dataset("recbole:/data/ml-100k")                    # FORMAT:PATH
>>> ds = load_dataset("/data/ml-1m", images="/data/posters")      # format detected
>>> ds = load_dataset("movielens-latest-small", protocol="llamarec")  # 5-core, ties by item id
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from genrec.data import amazon  # noqa: F401  # registers the amazon format
from genrec.data.dataset import PROTOCOLS, Dataset, LoadOptions, build_dataset
from genrec.data.image_files import attach_images
from genrec.data.loaders import FORMATS, detect_format
from genrec.data.parsing import match_id_types
from genrec.data.validation import MISSING_PATH, DataValidationError, ValidationReport, located, path_problem
from genrec.registry import Registry

FORMAT_PREFIX = re.compile(r"[a-z][a-z0-9_-]+")  # two letters or more, so "C:" stays a drive

MAPPED_FORMATS = ("csv", "parquet")  # the formats that take a column mapping

# name -> (format, directory inside the package)
BUNDLED: Registry[tuple[str, str]] = Registry(
    "data set", stage="datasets", description="data sets that ship with genrec (load_dataset(NAME), --dataset NAME)"
)
BUNDLED.register(
    "movielens-latest-small",
    ("movielens-latest", "bundled/ml-latest-small"),
    description="MovieLens latest-small (GroupLens): 610 users, 9,742 movies, 100,836 ratings with tags",
)

__all__ = [
    "BUNDLED",
    "PROTOCOLS",
    "DataValidationError",
    "Dataset",
    "LoadOptions",
    "ValidationReport",
    "list_datasets",
    "list_formats",
    "load_dataset",
    "resolve_source",
]


def list_datasets() -> list[str]:
    """Names of the data sets that ship with genrec."""
    return sorted(BUNDLED)


def list_formats() -> list[str]:
    """Names accepted as ``format=`` or as the ``FORMAT:`` prefix of a source."""
    return FORMATS.names()


def resolve_source(source: str | Path, format: str | None = None) -> tuple[str, Path]:
    """Resolve a data set name, ``FORMAT:PATH`` or a path to (format, path).

    An explicit ``format`` wins over a ``FORMAT:`` prefix, which wins over detection.
    """
    text = str(source)
    if text in BUNDLED:
        fmt, relative = BUNDLED[text]
        return fmt, Path(str(resources.files("genrec.data").joinpath(relative)))
    path = Path(text).expanduser()
    prefix, sep, rest = text.partition(":")
    # FORMAT:PATH, unless the whole text is an existing path (a file may contain ":")
    if sep and not path.exists() and FORMAT_PREFIX.fullmatch(prefix):
        if prefix not in FORMATS:
            raise DataValidationError(
                f"{text}: unknown data format {prefix!r} in FORMAT:PATH; valid formats: {', '.join(list_formats())}"
            )
        format, path = format or prefix, Path(rest).expanduser()
    if not path.exists() and path_problem(path) != MISSING_PATH:
        raise DataValidationError(located(path, f"{path_problem(path)}; expected a data file or directory"))
    if format is None:
        if not path.exists():
            raise DataValidationError(f"{text}: not a bundled data set ({', '.join(list_datasets())}) and no such path")
        format = detect_format(path)
    if format not in FORMATS:
        raise DataValidationError(f"{text}: unknown data format {format!r}; valid formats: {', '.join(list_formats())}")
    if not path.exists():
        raise DataValidationError(f"{path}: no such file or directory")
    return format, path


def load_dataset(
    source: str | Path = "movielens-latest-small",
    format: str | None = None,
    images: str | Path | None = None,
    options: LoadOptions | None = None,
    **option_overrides,
) -> Dataset:
    """Load and validate a data set.

    Args:
        source: a bundled name (see :func:`list_datasets`), ``FORMAT:PATH`` or a path
            whose format is detected from the files present.
        format: explicit format (see :func:`list_formats`); wins over detection.
        images: a directory of ``<item_id>.<ext>`` images; items without one are text-only.
        options: the :class:`LoadOptions`; keyword overrides of its fields, such as
            ``min_user_interactions=5``, ``columns={"user_id": "customer"}`` (``csv``/``parquet``:
            genrec column name -> source column name) or ``protocol="llamarec"`` (a named
            preprocessing, see :data:`PROTOCOLS`: 5-core users and items repeated until stable, ties
            ordered by item id), are applied on top. A protocol's settings replace those of
            ``options``; keyword overrides still win.

    Raises:
        DataValidationError: naming the file, line or column and what was expected.
    """
    base = (options or LoadOptions()).model_dump(exclude_unset=True)
    protocol = option_overrides.get("protocol")
    if protocol is not None:  # a protocol given here replaces what ``options`` says about its fields
        preset = PROTOCOLS.get(protocol).config
        base = {name: value for name, value in base.items() if name not in preset}
    # Validate the merged settings: model_copy(update=...) would skip validation entirely.
    options = LoadOptions.model_validate({**base, **option_overrides})
    fmt, path = resolve_source(source, format)
    if options.columns and fmt not in MAPPED_FORMATS:
        raise DataValidationError(
            f"{fmt}:{path}: a column mapping applies to the {' and '.join(MAPPED_FORMATS)} formats only; "
            f"{fmt} files have fixed column names"
        )
    report = ValidationReport()
    if options.protocol is not None:
        preset = PROTOCOLS.get(options.protocol).config
        report.note(f"protocol {options.protocol}: " + ", ".join(f"{key}={value}" for key, value in preset.items()))
    tables = FORMATS.get(fmt)(path, report, options)
    match_id_types(tables.interactions, tables.items)
    items = attach_images(tables.items, report, images_dir=images, verify=options.verify_images)
    name = str(source) if str(source) in BUNDLED else f"{fmt}:{path}"
    return build_dataset(
        name, tables.interactions, items, options, report, tables.interactions_source, tables.source_columns
    )
