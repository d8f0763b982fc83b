"""tiger on movielens-latest-small over several seeds: accuracy, cold start, invalid ids, timings.

Each seed runs exactly what ``genrec benchmark ranking --ranker tiger --seed N`` runs
(:func:`genrec.pipelines.ranking.benchmark_ranking`); the per-seed JSON results are written
to ``--out`` and the mean over seeds is printed. Prints figures only, asserts nothing.

    .venv/bin/python benchmarks/bench_tiger.py --seeds 0 1 2 --out /tmp/tiger-bench
    .venv/bin/python benchmarks/bench_tiger.py --set quantiser=rqvae --out /tmp/tiger-rqvae
    .venv/bin/python benchmarks/bench_tiger.py --summarise /tmp/tiger-bench   # table from existing JSONs
    .venv/bin/python benchmarks/bench_tiger.py --seeds 0 --cold-start-shares 0.1 --cold-start-prefixes 1 2 3 --out DIR

``--cold-start-shares`` evaluates each fitted model again with that ``cold_start_share`` (the
share of every top-k list reserved for items without training interactions, TIGER's epsilon);
with ``--cold-start-prefixes`` once per prefix length a cold item must share with a beam;
those results go to ``--out``/cold<share>-prefix<length>/seed<N>.json.

``--summarise DIR`` reads ``*.json`` written by ``genrec benchmark ranking --json`` (e.g. seeds
run in parallel) instead of running anything. "s to best" is best_epoch x mean seconds per epoch.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

from genrec.pipelines import build_ranker, evaluate_ranker, fit_and_evaluate, load_dataset, ranking_result, split

COLUMNS = (
    ("NDCG@10", lambda r: r["metrics"]["NDCG@10"]),
    ("HR@10", lambda r: r["metrics"]["HR@10"]),
    ("MRR@10", lambda r: r["metrics"]["MRR@10"]),
    ("HR@20", lambda r: r["metrics"]["HR@20"]),
    # reserved cold-start places are the last of the evaluated top-20 lists, so the cold slice is read at 20
    ("cold NDCG@20", lambda r: r["cold_start"].get("NDCG@20", 0.0)),
    ("cold HR@20", lambda r: r["cold_start"].get("HR@20", 0.0)),
    ("invalid ids", lambda r: r["extra"].get("invalid_id_share", float("nan"))),
    ("cold share of lists", lambda r: r["extra"].get("cold_item_share_of_recommendations", 0.0)),
    ("fit s", lambda r: r["fit_seconds"]),
    ("epochs", lambda r: r["epochs"]),
    ("s/epoch", lambda r: r["seconds_per_epoch"]),
    ("s to best", lambda r: r["best_epoch"] * r["seconds_per_epoch"]),
)


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def print_row(label: str, *results: dict) -> None:
    print(f"{label}: " + "  ".join(f"{name} {statistics.mean(get(r) for r in results):.4g}" for name, get in COLUMNS))


def run_seeds(args: argparse.Namespace) -> list[dict]:
    overrides = {key: parse_value(value) for key, value in (item.split("=", 1) for item in args.set)}
    args.out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(args.dataset)
    the_split = split(dataset)
    results = []
    for seed in args.seeds:
        ranker = build_ranker("tiger", args.config, overrides, seed)  # kept for the cold-start evaluations
        result = fit_and_evaluate(dataset, the_split, ranker, progress=False)
        (args.out / f"seed{seed}.json").write_text(json.dumps(result, indent=2))
        results.append(result)
        print_row(f"seed {seed}", result)
        prefixes = args.cold_start_prefixes or [ranker.config.cold_start_prefix]
        for share, prefix in itertools.product(args.cold_start_shares, prefixes):
            cold_settings = {"cold_start_share": share, "cold_start_prefix": prefix}
            ranker.config = type(ranker.config).from_dict({**ranker.config.model_dump(), **cold_settings})
            evaluation = evaluate_ranker(ranker, the_split)
            cold = ranking_result(dataset, the_split, ranker, result["fit_seconds"], evaluation)
            directory = args.out / f"cold{share}-prefix{ranker.config.cold_start_prefix}"
            directory.mkdir(exist_ok=True)
            (directory / f"seed{seed}.json").write_text(json.dumps(cold, indent=2))
            print_row(f"seed {seed}, cold_start_share {share}, cold_start_prefix {prefix}", cold)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="movielens-latest-small")
    parser.add_argument("--config", default=None, help="named config or JSON file (default: tiger's default)")
    parser.add_argument("--set", action="append", default=[], help="override, e.g. quantiser=rqvae")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, help="directory for one JSON result per seed")
    parser.add_argument(
        "--cold-start-shares", type=float, nargs="*", default=[], help="also evaluate with these cold_start_share"
    )
    parser.add_argument(
        "--cold-start-prefixes", type=int, nargs="*", default=[], help="with each share, these cold_start_prefix"
    )
    parser.add_argument("--summarise", type=Path, help="print the table of the JSON results in this directory")
    args = parser.parse_args()
    if (args.out is None) == (args.summarise is None):
        parser.error("give exactly one of --out and --summarise")
    if args.summarise:
        results = [json.loads(path.read_text()) for path in sorted(args.summarise.glob("*.json"))]
        for result in results:
            print_row(f"seed {result['seed']}", result)
    else:
        results = run_seeds(args)
    print_row("mean", *results)
    extra = results[0]["extra"]
    figures = "  ".join(f"{k} {v:.4g}" for k, v in extra.items() if k != "invalid_id_share")
    print(f"semantic ids (seed {results[0]['seed']}): {figures}")
    print(f"cold-start users: {results[0]['cold_start']['n_users']} of {results[0]['n_users']}")


if __name__ == "__main__":
    main()
