"""Training across processes: sasrec throughput with 2 gloo processes against 1, and each run's validation NDCG@10.

Each run is a fresh ``genrec.pipelines.distributed`` command (``torchrun --standalone
--nproc-per-node 2`` for two processes, plain ``python`` for one) training sasrec with the
``sasrec-demo`` named config (or ``--config``) on the bundled movielens-latest-small for exactly ``--epochs``
epochs (patience = epochs: no early stop, so both runs do the same work), seed 0. Throughput is
training targets per second over the fit (``fit_seconds`` in train.json: the epochs and their
validation, not the interpreter start); the targets of an epoch are counted from the split.
Runs: 1 process x 1 thread, 1 process x 2 threads (what one process makes of both cores), and
2 processes x 1 thread.

    heavy -2 python benchmarks/bench_ddp.py --epochs 8 --json benchmarks/results/ddp.json
    heavy -2 python benchmarks/bench_ddp.py --config sasrec-full-history --epochs 3 --json ddp_full.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from genrec.io import write_json

DEFAULT_CONFIG = "sasrec-demo"


def targets_per_epoch(dataset: str, named_config: str) -> int:
    """Training targets of one epoch of the named sasrec config."""
    from genrec.data import load_dataset
    from genrec.pipelines.ranking import split
    from genrec.rankers import resolve_ranker_config
    from genrec.rankers.training import training_windows

    config = resolve_ranker_config("sasrec", named_config)
    tokens, _ = training_windows(split(load_dataset(dataset)).train, config.max_len, config.train_windows == "all")
    return int(((tokens[:, 1:] > 0) & (tokens[:, :-1] > 0)).sum())


def run(dataset: str, named_config: str, processes: int, threads: int, epochs: int, out: Path) -> dict[str, Any]:
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
    command = [*launcher, "-m", "genrec.pipelines.distributed", "--dataset", dataset, "--config", named_config]
    command += ["--set", f"epochs={epochs}", "--set", f"patience={epochs}", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    fit = json.loads((out / "model" / "train.json").read_text())["fit"]
    return {
        "processes": processes,
        "threads_per_process": threads,
        "epochs": fit["epochs"],
        "fit_seconds": fit["fit_seconds"],
        "seconds_per_epoch": fit["fit_seconds"] / fit["epochs"],
        "best_valid_ndcg10": fit["best_valid_ndcg10"],
        "best_epoch": fit["best_epoch"],
        "load_average_after": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="movielens-latest-small")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="a named sasrec config")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    targets = targets_per_epoch(args.dataset, args.config)
    root = Path(tempfile.mkdtemp(prefix="bench-ddp-"))
    rows = []
    for processes, threads in ((1, 1), (1, 2), (2, 1)):
        row = run(args.dataset, args.config, processes, threads, args.epochs, root / f"p{processes}t{threads}")
        row["targets_per_second"] = targets * row["epochs"] / row["fit_seconds"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    one, two = rows[0], rows[2]
    result = {
        "dataset": args.dataset,
        "config": args.config,
        "targets_per_epoch": targets,
        "runs": rows,
        "ratio_2_processes_over_1": two["targets_per_second"] / one["targets_per_second"],
        "ratio_2_processes_over_1_process_2_threads": two["targets_per_second"] / rows[1]["targets_per_second"],
    }
    print(json.dumps({key: value for key, value in result.items() if key != "runs"}))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
