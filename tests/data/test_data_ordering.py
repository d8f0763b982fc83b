"""Deterministic ordering: sequences are sorted by time, equal timestamps keep source-file order."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from genrec.data import Dataset, load_dataset

Write = Callable[..., Path]


def sequences(ds: Dataset) -> dict[object, list]:
    return {user: ds.item_ids[ds.sequence(idx)].tolist() for idx, user in enumerate(ds.user_ids.tolist())}


def test_equal_timestamps_keep_file_order(write: Write) -> None:
    rows = "user_id,item_id,timestamp\n1,30,5\n2,10,7\n1,10,5\n1,20,1\n2,30,7\n1,40,5\n2,20,7\n"
    root = write("ties", {"interactions.csv": rows})
    assert sequences(load_dataset(root)) == {1: [20, 30, 10, 40], 2: [10, 30, 20]}


def test_reversed_ties_reverse_the_sequence(write: Write) -> None:
    # The same rows with the tied ones in the opposite file order: the tie-break is the file, not the ids.
    rows = "user_id,item_id,timestamp\n1,40,5\n1,20,1\n1,10,5\n1,30,5\n"
    root = write("ties", {"interactions.csv": rows})
    assert sequences(load_dataset(root)) == {1: [20, 40, 10, 30]}


def test_ties_in_native_formats(write: Write) -> None:
    root = write(
        "ml-1m", {"ratings.dat": "1::3::5::9\n1::1::5::9\n1::2::5::9\n", "movies.dat": "1::A::\n2::B::\n3::C::\n"}
    )
    assert sequences(load_dataset(root)) == {1: [3, 1, 2]}


rows_strategy = st.lists(
    st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(0, 3)),  # (user, item, timestamp)
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None, database=None)  # no .hypothesis/ left behind
@given(rows=rows_strategy)
def test_sequences_are_a_stable_sort_of_the_file(rows: list[tuple[int, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "log.csv"
        path.write_text("user_id,item_id,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
        ds = load_dataset(path, min_user_interactions=1)
    unique = list(dict.fromkeys(rows))  # duplicates: the first of each is kept
    expected: dict[object, list] = {}
    for user, item, _ in sorted(unique, key=lambda row: row[2]):  # sorted() is stable: file order on ties
        expected.setdefault(user, []).append(item)
    assert sequences(ds) == dict(sorted(expected.items()))
    assert ds.report.duplicate_rows_dropped == len(rows) - len(unique)
