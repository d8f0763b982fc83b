"""SmolLM2 descriptions behind the grounding guard: honest pass rates, personalisation lift, speed, memory.

Prints figures only; timings are never asserted in tests (project rule). Requests are real:
the popularity ranker's top-k for the first users of ml-latest-small (``--users`` x ``--top-k``
(user, item) pairs, 25 x 2 = 50 by default), with preference profiles from the encoders
(MiniLM through the embedding cache). For each generator (``smollm2`` and the ``template``
reference) it times building the generator (the converted SmolLM2 loads from the cache),
the personalised descriptions and their non-personalised baseline (same rows and seed), and
reports the LLM's own pass rate before any fallback, the pass rate after regeneration, the
fallback rate, the final guard pass rate, the personalisation lift (MiniLM similarity of a
description to the user's history text minus the baseline's), preference coverage,
cross-user diversity, descriptions per second and the peak resident memory. It also scores
the guard's precision measured on hand-labelled real output (benchmarks/bench_guard.py).

    .venv/bin/python benchmarks/bench_descriptions.py --no-progress --json descriptions.json
    .venv/bin/python benchmarks/bench_descriptions.py --generators template --users 100 --top-k 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from typing import Any

import torch

from genrec.data import load_dataset
from genrec.encoders import create_encoder
from genrec.evaluation.text_metrics import description_metrics
from genrec.generators import create_text_generator
from genrec.grounding.guard import measured_precision
from genrec.pipelines import build_ranker, fit_ranker, rank, split
from genrec.pipelines.describe import (
    build_requests,
    description_checker,
    generate_descriptions,
    history_texts,
)
from genrec.pipelines.encode import encode_histories, encode_items, preference_profile


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def guard_figures() -> dict[str, Any]:
    """The guard's measured precision on labelled real output (benchmarks/bench_guard.py measures it)."""
    return measured_precision() or {"guard_precision": None, "provenance": "not measured"}


def run(name: str, seed: int, recommendations, profiles, dataset, encoder, progress: bool, llm: dict) -> dict:
    start = time.perf_counter()
    generator = create_text_generator(name, None if name == "template" else {**llm, "seed": seed}, dataset)
    build_seconds = time.perf_counter() - start
    start = time.perf_counter()
    table = generate_descriptions(generator, recommendations, profiles, dataset, progress=progress)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    baseline = generate_descriptions(generator, recommendations, profiles, dataset, progress=progress,
                                     personalize=False)  # fmt: skip
    baseline_seconds = time.perf_counter() - start
    requests = build_requests(recommendations, profiles, dataset)
    users = [request.user_id for request in requests]
    metrics = description_metrics(
        table["description"].tolist(),
        [request.item for request in requests],
        [request.profile for request in requests],
        description_checker(dataset),
        baseline_texts=baseline["description"].tolist(),
        history_texts=history_texts(dataset, users, profiles),
        encoder=encoder,
    )
    report = table.attrs["report"]
    return {
        "generator": name,
        "seed": seed,
        "pairs": len(table),
        "build_seconds": build_seconds,
        "seconds": seconds,
        "baseline_seconds": baseline_seconds,
        "descriptions_per_second": len(table) / seconds,
        "attempts_per_description": report["llm_attempts"] / len(table),
        **report["rates"],
        **metrics,
        "rejection_reasons": report["rejection_reasons"],
        "blocked_outputs": len(report["blocked_outputs"]),
        "peak_memory_mb": peak_memory_mb(),
        "descriptions": table[["user_id", "item_id", "source", "attempts", "description", "unsupported"]]
        .assign(unsupported=lambda t: t["unsupported"].map(list))
        .to_dict("records"),
        "baseline_descriptions": baseline["description"].tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=25, help="first users of the data set")
    parser.add_argument("--top-k", type=int, default=2, help="recommended items per user")
    parser.add_argument("--generators", default="smollm2,template", help="comma-separated text generator presets")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate() call")
    parser.add_argument("--max-retries", type=int, default=None, help="guard regenerations (default: preset)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    parser.add_argument("--json", dest="json_out", help="also write every run as JSON here")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    seeds = [int(seed) for seed in args.seeds.split(",")]

    dataset = load_dataset("movielens-latest-small")
    users = dataset.user_ids[: args.users].tolist()
    encoder = create_encoder("minilm")
    item_embeddings = encode_items(dataset, encoder, progress=args.progress)
    histories = encode_histories(dataset, item_embeddings, users=users)
    profiles = {p.user_id: p for p in preference_profile(dataset, histories, item_embeddings, encoder=encoder)}
    ranker = build_ranker("popular")
    fit_ranker(ranker, split(dataset), progress=False)
    recommendations = rank(ranker, dataset, users=users, k=args.top_k)
    llm: dict[str, Any] = {"batch_size": args.batch_size}
    if args.max_retries is not None:
        llm["grounding"] = {"max_retries": args.max_retries}

    guard = guard_figures()
    runs = [
        run(name, seed, recommendations, profiles, dataset, encoder, args.progress, llm)
        for name in args.generators.split(",")
        for seed in seeds
    ]
    load = os.getloadavg()
    print(f"{len(recommendations)} (user, item) pairs; {torch.get_num_threads()} torch threads; load {load}")
    print(f"guard precision on labelled real output: {guard['guard_precision']} ({guard['provenance']})")
    keys = (
        "build_seconds",
        "descriptions_per_second",
        "attempts_per_description",
        "llm_pass_rate",
        "pass_rate_after_regeneration",
        "fallback_rate",
        "guard_pass_rate",
        "personalization_lift",
        "personalization_win_rate",
        "preference_coverage",
        "baseline_preference_coverage",
        "cross_user_diversity",
        "peak_memory_mb",
    )
    print("| generator | seed | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 2) + "|")
    for result in runs:
        cells = [f"{result[key]:.4g}" if isinstance(result[key], float) else str(result[key]) for key in keys]
        print(f"| {result['generator']} | {result['seed']} | " + " | ".join(cells) + " |")
    if args.json_out:
        payload = {"loadavg": load, "threads": torch.get_num_threads(), "guard": guard, "runs": runs}
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, default=str)
        print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
