"""Serving top-k from a saved ranker (``genrec recommend --model DIR``): load time, one-user latency, batch throughput.

Fits the run's default ranker (hstu with ``hstu-demo``) on ml-latest-small's leave-one-out training
split into a temporary run directory (or reads ``--model``, a run directory or its model/), then,
in one process:

- the load: the data set and the saved ranker (:func:`genrec.pipelines.stages.load_saved_ranker`);
- one user's top-10 after the load: the median of ``--repeats`` calls for distinct users;
- every user's top-10 in one call (full catalogue, seen items excluded, the ranker's own batches):
  users per second, the best of three.

    OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 python benchmarks/bench_recommend.py --json benchmarks/results/recommend.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from genrec.io import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a saved ranker (run directory or model/); default: fit hstu-demo")
    parser.add_argument("--dataset", default="movielens-latest-small")
    parser.add_argument("--repeats", type=int, default=100, help="single-user calls (distinct users)")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from genrec.pipelines import stages
    from genrec.pipelines.settings import RunSettings

    load_start = os.getloadavg()
    settings = RunSettings(dataset=args.dataset, ranker="hstu", k=args.k)
    model = args.model
    if model is None:
        model = Path(tempfile.mkdtemp(prefix="bench-recommend-"))
        fit_start = time.perf_counter()
        stages.train(model, settings, progress=False)
        print(f"fit {settings.ranker_config_name}: {time.perf_counter() - fit_start:.1f} s", flush=True)

    start = time.perf_counter()
    dataset = stages.load_run_dataset(settings)
    data_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ranker = stages.load_saved_ranker(model, dataset)
    model_seconds = time.perf_counter() - start

    users = dataset.user_ids.tolist()
    stages.top_k_table(ranker, dataset, users[:1], args.k)  # first call: lazy allocations, not the steady state
    single = []
    for user in (users * (1 + args.repeats // len(users)))[1 : args.repeats + 1]:
        start = time.perf_counter()
        stages.top_k_table(ranker, dataset, [user], args.k)
        single.append(time.perf_counter() - start)
    batch = []
    for _ in range(3):
        start = time.perf_counter()
        table = stages.top_k_table(ranker, dataset, users, args.k)
        batch.append(time.perf_counter() - start)
    assert len(table) == len(users) * args.k

    result = {
        "dataset": dataset.name,
        "ranker": str(settings.ranker),
        "config": settings.ranker_config_name,
        "n_items": dataset.n_items,
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "load_data_seconds": data_seconds,
        "load_model_seconds": model_seconds,
        "one_user_ms_median": 1000 * statistics.median(single),
        "one_user_ms_p90": 1000 * sorted(single)[int(0.9 * (len(single) - 1))],
        "all_users": len(users),
        "all_users_seconds_best": min(batch),
        "users_per_second": len(users) / min(batch),
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
