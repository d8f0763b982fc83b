"""Peak memory and fit time of the set-based rankers (multvae, diffrec, cfgan) next to the others.

Each (ranker, seed) runs ``genrec benchmark ranking`` (leave-one-out, full ranking) in a fresh
process so that its peak resident memory (``ru_maxrss`` of that child, from ``os.wait4``) is its
own. Results go to ``--runs DIR/<ranker>__<config>__seed<N>.json``, the names
``benchmarks/bench_rankers.py`` reads back, which then prints the mean +- std accuracy table over
the same runs. A run whose file exists is not rerun.

    python benchmarks/bench_set_rankers.py --rankers popular,multvae,diffrec,cfgan --seeds 0,1,2 --runs runs/bench

The child is ``python -m genrec.cli`` of this interpreter, so it imports the genrec that
``PYTHONPATH`` (or the installed package) provides, as this script does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

GENREC = [sys.executable, "-m", "genrec.cli"]
BENCH_RANKERS = Path(__file__).with_name("bench_rankers.py")


def run_fresh(dataset: str, ranker: str, config: str | None, seed: int, path: Path) -> dict:
    """One ``genrec benchmark ranking`` run in a new process; its result JSON gains ``peak_rss_mib``."""
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    command = [*GENREC, "benchmark", "ranking", "--dataset", dataset, "--ranker", ranker, "--seed", str(seed)]
    command += (["--config", config] if config else []) + ["--no-progress", "--json", str(path)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = process.stderr.read().decode() if process.stderr else ""
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stderr}")
    result = json.loads(path.read_text(encoding="utf-8"))
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # Linux reports KiB
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="movielens-latest-small")
    parser.add_argument(
        "--rankers", default="popular,multvae,diffrec,cfgan", help="ranker[:named config or JSON file],..."
    )
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--runs", type=Path, required=True, help="directory of per-run JSON results")
    args = parser.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)

    print("| ranker | config | seed | NDCG@10 | HR@10 | fit s | epochs (best) | s/epoch | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    for entry in filter(None, (piece.strip() for piece in args.rankers.split(","))):
        ranker, _, config = entry.partition(":")
        for seed in (int(seed) for seed in args.seeds.split(",")):
            path = args.runs / f"{ranker}__{Path(config or 'default').stem}__seed{seed}.json"
            r = run_fresh(args.dataset, ranker, config or None, seed, path)
            print(
                f"| {ranker} | {config or 'default'} | {seed} | {r['metrics']['NDCG@10']:.4f} "
                f"| {r['metrics']['HR@10']:.4f} | {r['fit_seconds']:.1f} | {r['epochs']} ({r['best_epoch']}) "
                f"| {r['seconds_per_epoch']:.2f} | {r.get('peak_rss_mib', float('nan')):.0f} |",
                flush=True,
            )
    if BENCH_RANKERS.exists():
        summary = [sys.executable, str(BENCH_RANKERS), "--dataset", args.dataset, "--rankers", args.rankers]
        subprocess.run([*summary, "--seeds", args.seeds, "--runs", str(args.runs)], check=True)


if __name__ == "__main__":
    main()
