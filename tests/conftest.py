"""Shared fixtures: small hand-made data sets and the bundled one, loaded once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from genrec.data import Dataset, load_dataset
from genrec.evaluation import Split, split

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def isolated_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """Tests never read or fill the user's embedding cache (~/.cache/genrec)."""
    previous = os.environ.get("GENREC_CACHE_DIR")
    os.environ["GENREC_CACHE_DIR"] = str(tmp_path_factory.mktemp("genrec-cache"))
    yield
    if previous is None:
        os.environ.pop("GENREC_CACHE_DIR", None)
    else:
        os.environ["GENREC_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server and database for the whole test run (flows request it)."""
    from prefect.testing.utilities import prefect_test_harness

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry calls from the test server
    with prefect_test_harness(server_startup_timeout=180):  # its default 30 s ran out under load on 2 busy cores
        yield


@pytest.fixture(scope="session")
def movielens_small() -> Dataset:
    """The bundled ml-latest-small (read-only: do not mutate it in tests)."""
    return load_dataset("movielens-latest-small")


def write_toy_latest(directory: Path, n_users: int = 6, n_items: int = 8, per_user: int = 5) -> Path:
    """A MovieLens-latest directory where user u rates items u, u+1, ... (mod n_items) in time order."""
    directory.mkdir(parents=True, exist_ok=True)
    ratings = ["userId,movieId,rating,timestamp"]
    for user in range(1, n_users + 1):
        for step in range(per_user):
            item = (user + step) % n_items + 1
            ratings.append(f"{user},{item},{1 + (user + step) % 5}.0,{1000 + 10 * user + step}")
    movies = ["movieId,title,genres"] + [f"{i},Movie {i} ({1990 + i}),Drama|Comedy" for i in range(1, n_items + 1)]
    (directory / "ratings.csv").write_text("\n".join(ratings) + "\n")
    (directory / "movies.csv").write_text("\n".join(movies) + "\n")
    return directory


def write_recbole_ml100k(directory: Path, n_users: int = 30, n_items: int = 300, per_user: int = 8) -> Path:
    """RecBole's ml-100k atomic files in miniature, with the real file's quirk: ``release_year`` is
    ``unkonwn`` for item 267 (line 268, ml-100k's "unknown" movie) and for one more item (the last)."""
    directory.mkdir(parents=True, exist_ok=True)
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for user in range(1, n_users + 1):
        for step in range(per_user):
            item = 267 if step == 0 else (user * 7 + step * 13) % 266 + 1  # never 267 again: no repeats
            inter.append(f"{user}\t{item}\t{1 + (user + step) % 5}\t{881250949 + 100 * user + step}")
    items = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    for item in range(1, n_items + 1):
        known = item not in (267, n_items)
        title, year = (f"Movie {item}", str(1950 + item % 50)) if known else ("unknown", "unkonwn")
        items.append(f"{item}\t{title}\t{year}\t{'Drama Comedy' if known else 'unknown'}")
    (directory / "ml-100k.inter").write_text("\n".join(inter) + "\n")
    (directory / "ml-100k.item").write_text("\n".join(items) + "\n")
    return directory


def write_posters(directory: Path, item_ids, size: tuple[int, int] = (48, 72)) -> Path:
    """Synthetic posters ``<item_id>.jpg``: seeded noise over a per-item colour, so every item's image differs."""
    import zlib

    import numpy as np
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    for item in item_ids:
        rng = np.random.default_rng(zlib.crc32(str(item).encode()))
        base = rng.integers(0, 256, size=3)
        pixels = np.clip(base + rng.normal(0, 40, size=(size[1], size[0], 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(directory / f"{item}.jpg", format="JPEG")
    return directory


@pytest.fixture
def toy_latest_dir(tmp_path: Path) -> Path:
    return write_toy_latest(tmp_path / "toy")


@pytest.fixture
def toy_dataset(toy_latest_dir: Path) -> Dataset:
    return load_dataset(toy_latest_dir)


@pytest.fixture(scope="session")
def toy_split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    """Leave-one-out split of 40 users x 24 items where neighbouring users share items (learnable)."""
    directory = write_toy_latest(tmp_path_factory.mktemp("toy_split"), n_users=40, n_items=24, per_user=8)
    return split(load_dataset(directory))


@pytest.fixture(scope="module")
def single_thread():
    """One intra-op torch thread for tiny models: on the shared 2-core machine two OpenMP threads
    made the tiny LLM's generate() about 100x slower (spin-waiting on busy cores); results are identical.

    The one copy of this fixture: test modules use it with ``pytestmark = pytest.mark.usefixtures("single_thread")``,
    tests/encoders with an autouse fixture that requests it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
