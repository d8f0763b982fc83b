"""Time loading the bundled ml-latest-small data set (target: well under 2 s per load).

Prints figures only; timings are never asserted in tests (project rule).

    .venv/bin/python benchmarks/bench_data_load.py
"""

from __future__ import annotations

import statistics
import time

from genrec.data import load_dataset

REPEATS = 5


def main() -> None:
    seconds = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        ds = load_dataset("movielens-latest-small")
        seconds.append(time.perf_counter() - start)
    print(f"{ds.name}: {ds.n_users} users, {ds.n_items} items, {ds.n_interactions} interactions")
    print(f"load_dataset x{REPEATS}: mean {statistics.mean(seconds):.3f} s, min {min(seconds):.3f} s")


if __name__ == "__main__":
    main()
