"""Descriptions per second for the template and the tiny LLM generators, with their quality figures.

Prints figures only; timings are never asserted in tests (project rule). Requests are real:
the popularity ranker's top-k for the first users of ml-latest-small, with preference profiles
from the encoders (``encode_items`` -> ``encode_histories`` -> ``preference_profile``, MiniLM by
default, through the embedding cache). Each generator runs once per seed (the template is
deterministic, so its seeds only repeat the timing); figures are the mean (and spread) over seeds.
Building a generator is timed apart from generating.

    .venv/bin/python benchmarks/bench_descriptions.py --no-progress --json descriptions.json
    .venv/bin/python benchmarks/bench_descriptions.py --threads 1 --no-progress --json descriptions-1t.json
    .venv/bin/python benchmarks/bench_descriptions.py --llm standard-random --users 10 --llm-users 2 --llm-top-k 2 \\
        --max-new-tokens 24 --max-retries 1 --seeds 0 --threads 1 --no-progress
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

from genrec.data import load_dataset
from genrec.encoders import create_encoder
from genrec.evaluation.text_metrics import description_metrics
from genrec.generators import create_text_generator
from genrec.generators.grounding import GroundingChecker
from genrec.pipelines import build_ranker, fit_ranker, rank, split
from genrec.pipelines.describe import build_requests
from genrec.pipelines.encode import encode_histories, encode_items, preference_profile


def requests_for(dataset, users: list[Any], top_k: int, profiles: dict[Any, Any]):
    ranker = build_ranker("popular")
    fit_ranker(ranker, split(dataset), progress=False)
    return build_requests(rank(ranker, dataset, users=users, k=top_k), profiles, dataset)


def run(generator_name: str, seed: int, requests, dataset, checker, progress: bool, llm: dict) -> dict[str, Any]:
    start = time.perf_counter()
    config = None if generator_name == "template" else {**llm, "seed": seed}
    generator = create_text_generator(generator_name, config, dataset)
    build_seconds = time.perf_counter() - start
    start = time.perf_counter()
    descriptions, report = generator.describe(requests, progress=progress)
    seconds = time.perf_counter() - start
    texts = [d.text for d in descriptions]
    metrics = description_metrics(texts, [r.item for r in requests], [r.profile for r in requests], checker)
    return {
        "generator": generator_name,
        "seed": seed,
        "requests": len(requests),
        "build_seconds": build_seconds,
        "seconds": seconds,
        "descriptions_per_second": len(requests) / seconds,
        "attempts_per_description": report.llm_attempts / len(requests) if report.llm_attempts else 0.0,
        "fallback_share": report.fallback / len(requests),
        "report": {k: v for k, v in report.to_dict().items() if k != "blocked_outputs"},
        **metrics,
    }


def summary(runs: list[dict[str, Any]], key: str) -> str:
    values = [run[key] for run in runs]
    spread = f" ± {statistics.stdev(values):.3g}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.4g}{spread}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100, help="users described by the template generator")
    parser.add_argument("--top-k", type=int, default=5, help="items per user")
    parser.add_argument("--llm-users", type=int, default=8, help="users described by the tiny LLM")
    parser.add_argument("--llm-top-k", type=int, default=4, help="items per user for the tiny LLM")
    parser.add_argument("--llm-batch-size", type=int, default=8, help="prompts per generate() call")
    parser.add_argument("--llm", default="tiny", help="LLM preset: tiny, or standard-random (real size, offline)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="LLM tokens per attempt (default: preset)")
    parser.add_argument("--max-retries", type=int, default=None, help="guard regenerations (default: preset)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--encoder", default="minilm", help="encoder preset for the preference profiles")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    parser.add_argument("--json", dest="json_out", help="also write every run as JSON here")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    dataset = load_dataset("movielens-latest-small")
    users = dataset.user_ids[: max(args.users, args.llm_users)].tolist()
    encoder = create_encoder(args.encoder)
    item_embeddings = encode_items(dataset, encoder, progress=args.progress)
    histories = encode_histories(dataset, item_embeddings, users=users)
    profiles = {p.user_id: p for p in preference_profile(dataset, histories, item_embeddings, encoder=encoder)}
    checker = GroundingChecker(dataset.items)
    plan = {
        "template": requests_for(dataset, users[: args.users], args.top_k, profiles),
        args.llm: requests_for(dataset, users[: args.llm_users], args.llm_top_k, profiles),
    }
    llm = {"batch_size": args.llm_batch_size}
    if args.max_new_tokens is not None:
        llm["max_new_tokens"] = args.max_new_tokens
    if args.max_retries is not None:
        llm["grounding"] = {"max_retries": args.max_retries}
    runs = [
        run(name, seed, requests, dataset, checker, args.progress, llm)
        for name, requests in plan.items()
        for seed in seeds
    ]
    print(f"profiles: {args.encoder} encoder; seeds {seeds}; {torch.get_num_threads()} torch threads; mean ± stdev")
    keys = (
        "requests",
        "build_seconds",
        "descriptions_per_second",
        "attempts_per_description",
        "fallback_share",
        "grounding_rate",
        "preference_coverage",
        "distinct_2",
    )
    print("| generator | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name in plan:
        mine = [r for r in runs if r["generator"] == name]
        print(f"| {name} | " + " | ".join(summary(mine, key) for key in keys) + " |")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump(runs, handle, indent=2, default=str)
        print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
