"""Fixtures for the data-layer tests: every test writes its own small files under tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from genrec.data import Dataset, load_dataset

RATINGS = """userId,movieId,rating,timestamp
1,1,4.0,100
1,2,3.5,200
1,3,5.0,300
2,1,2.0,150
2,3,4.0,160
2,2,1.0,170
"""
MOVIES = """movieId,title,genres
1,Toy Story (1995),Adventure|Animation|Children
2,"Heat, Part One (1995)",Action|Crime
3,Untitled,(no genres listed)
"""
TAGS = """userId,movieId,tag,timestamp
1,1,Pixar,100
2,1,pixar,101
2,1,fun,102
1,2, ,103
2,n/a,unrated,104
"""

Files = dict[str, str | bytes]


@pytest.fixture(scope="session")
def bundled() -> Dataset:
    """The bundled ml-latest-small, loaded once for the whole session (it is read-only)."""
    return load_dataset("movielens-latest-small")


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """``write("dir", {"name": text_or_bytes})`` -> the directory; text is written as UTF-8."""

    def _write(directory: str, files: Files, encoding: str = "utf-8") -> Path:
        root = tmp_path / directory
        root.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            data = content if isinstance(content, bytes) else content.encode(encoding)
            (root / name).write_bytes(data)
        return root

    return _write


@pytest.fixture
def ml_latest(write: Callable[..., Path]) -> Callable[..., Path]:
    """A MovieLens-latest directory: ``ratings=``/``movies=``/``tags=`` replace a file (``tags=None``
    leaves it out), ``more_ratings=``/``more_movies=`` append rows to the default one."""

    def _make(
        directory: str = "ml",
        ratings: str | bytes = RATINGS,
        movies: str = MOVIES,
        tags: str | None = TAGS,
        more_ratings: str = "",
        more_movies: str = "",
    ) -> Path:
        files: Files = {"ratings.csv": ratings + more_ratings if more_ratings else ratings}
        files["movies.csv"] = movies + more_movies
        if tags is not None:
            files["tags.csv"] = tags
        return write(directory, files)

    return _make
