"""Rankers side by side: mean ± std over seeds of the full-ranking test metrics and training time.

Each (ranker, config) entry is run through ``genrec.pipelines.benchmark_ranking`` (the code
behind ``genrec benchmark ranking``) once per seed. With ``--runs DIR`` every run's result is
written to DIR/<ranker>__<config>__seed<N>.json and a run whose file exists is read back, not
rerun; ``genrec benchmark ranking ... --json`` files with those names are picked up the same way.

    python benchmarks/bench_rankers.py --rankers popular,sasrec,hstu --seeds 0,1,2
    python benchmarks/bench_rankers.py --rankers sasrec:sasrec-recbole-defaults,sasrec --runs runs/bench
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from genrec.io import write_json
from genrec.pipelines import benchmark_ranking

COLUMNS = ("NDCG@10", "HR@10", "MRR@10", "fit_seconds", "epochs", "seconds_per_epoch", "best_epoch_seconds")


def parse_entries(text: str) -> list[tuple[str, str | None]]:
    """``ranker[:config],...`` -> [(ranker, named config or JSON path or None)]."""
    entries = []
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        ranker, _, config = part.partition(":")
        entries.append((ranker, config or None))
    return entries


def run_once(dataset: str, ranker: str, config: str | None, seed: int, runs: Path | None) -> dict[str, Any]:
    path = None if runs is None else runs / f"{ranker}__{Path(config or 'default').stem}__seed{seed}.json"
    if path is not None and path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    result = benchmark_ranking(dataset, ranker, config=config, seed=seed, progress=False)
    if path is not None:
        write_json(path, result)
    return result


def figures(result: dict[str, Any]) -> dict[str, float]:
    """The table's columns for one run; time to best validation ~ best epoch x seconds per epoch."""
    return {
        **{name: result["metrics"][name] for name in ("NDCG@10", "HR@10", "MRR@10")},
        "fit_seconds": result["fit_seconds"],
        "epochs": result["epochs"],
        "seconds_per_epoch": result["seconds_per_epoch"],
        "best_epoch_seconds": result["best_epoch"] * result["seconds_per_epoch"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="movielens-latest-small")
    parser.add_argument("--rankers", default="popular,sasrec,hstu", help="ranker[:named config or JSON file],...")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--runs", type=Path, help="directory of per-run JSON results (reused when present)")
    parser.add_argument("--json", type=Path, help="write the summary table here")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]

    summary = []
    for ranker, config in parse_entries(args.rankers):
        rows = [figures(run_once(args.dataset, ranker, config, seed, args.runs)) for seed in seeds]
        stats = {
            name: (float(np.mean([r[name] for r in rows])), float(np.std([r[name] for r in rows]))) for name in COLUMNS
        }
        summary.append({"ranker": ranker, "config": config or "default", "seeds": seeds, **stats})
        print(f"done {ranker} {config or 'default'}", flush=True)

    header = f"| ranker | config | {' | '.join(COLUMNS)} |"
    print(f"\n{args.dataset}, leave-one-out, full ranking, test phase; mean ± std over seeds {args.seeds}\n")
    print(header)
    print("|" + "---|" * (len(COLUMNS) + 2))
    for row in summary:
        cells = [f"{row[name][0]:.4f} ± {row[name][1]:.4f}" for name in COLUMNS[:3]]
        cells += [f"{row[name][0]:.1f} ± {row[name][1]:.1f}" for name in COLUMNS[3:]]
        print(f"| {row['ranker']} | {row['config']} | {' | '.join(cells)} |")
    if args.json is not None:
        write_json(args.json, {"dataset": args.dataset, "rows": summary})


if __name__ == "__main__":
    main()
