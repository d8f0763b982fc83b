"""The llm ranker's title / query mode side by side with its own retriever: retriever, grounding alone, fused.

Issue 27's "an LLM stage that helps": SmolLM2 writes the next item's title (``--mode title``, BIGRec) or its
genres and tags (``--mode query``, GPT4Rec); MiniLM grounds the text in the catalogue and the grounding
scores are fused with the retriever's (``genrec/rankers/llm.py``). One llm ranker fit per seed on
movielens-latest-small under the LlamaRec protocol by default (5-core: 610 users x 3,650 items),
leave-one-out, full ranking (seen items excluded). The retriever is fitted once per seed and saved under
``--workdir`` (``retriever-seed<S>/``), as in bench_llm_ranker.py (the same workdir shares it).

Lists on test: the retriever alone (weight 0), the grounding alone (weight inf), fused at the weight chosen
on validation, and, with ``--variants zero-shot,fine-tuned`` (the default), the zero-shot LM's grounding
alone and fused at the same weight (the adapter disabled: a second generation pass). The test NDCG@10 at
every weight of the grid is reported, never used to choose. Per-user NDCG@10 gives 95% bootstrap
intervals and paired intervals against the retriever. Timings: fit seconds (retriever apart, fine-tuning),
and generation + grounding milliseconds per test user. CPU generation is slow: ``--test-users U`` scores a
fixed seeded sample of U test users (the same rows for every list and seed) and the output says so. A few
generated texts are printed beside their target titles. Prints figures only.

    heavy python benchmarks/bench_llm_grounding.py --seeds 0,1,2 --workdir runs/bench-llm --json OUT.json
    heavy python benchmarks/bench_llm_grounding.py --seeds 0 --set max_steps=2 --set valid_users=8 --test-users 8
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_llm_ranker import (
    add_common_options,
    fit_reusing_retriever,
    parse_value,
    per_user_figures,
    per_user_ndcg10,
    test_rows,
)

from genrec.data import load_dataset
from genrec.evaluation.metrics import accuracy_metrics
from genrec.pipelines import split
from genrec.rankers.llm import LLMRanker

KS = (5, 10, 20)
HEADLINE = ("NDCG@10", "HR@10", "MRR@10", "NDCG@20", "HR@20")
SHOWN_TEXTS = 5


def grounding_pass(ranker: LLMRanker, history) -> tuple[np.ndarray, dict[str, float]]:
    """The grounding scores of every test user [U, n_items], timed per user (generation and encoding)."""
    passes, start = ranker.forward_passes, time.perf_counter()
    grounding = ranker.grounding_scores(history, progress=True)
    seconds = time.perf_counter() - start
    users = max(len(history), 1)
    timing = {
        "users_scored": len(history),
        "generate_ms_per_user": 1000 * seconds / users,
        "generate_calls_per_user": (ranker.forward_passes - passes) / users,
        "generate_seconds": seconds,
    }
    return grounding, timing


def run_seed(the_split, seed: int, overrides: dict[str, Any], args, workdir: Path) -> dict[str, Any]:
    """One llm ranker fit per seed on a retriever fitted once (saved under ``workdir``, reused by later runs)."""
    rows = test_rows(len(the_split.test), args.test_users, args.sample_seed)
    test = the_split.test.subset(rows)
    variants = args.variants.split(",")
    capped = len(test) < len(the_split.test)
    result: dict[str, Any] = {
        "seed": seed,
        "mode": args.mode,
        "test_users": len(test),
        "test_users_of": len(the_split.test),
        "test_users_capped": capped,
        "loadavg_start": os.getloadavg(),
    }
    if capped:
        print(f"test users capped: {len(test)} of {len(the_split.test)} (a seeded sample, --test-users)", flush=True)
    tuned = "fine-tuned" in variants
    settings = {**overrides, "mode": args.mode, "fine_tune": tuned}
    ranker, report, figures = fit_reusing_retriever(workdir, seed, settings, the_split)
    result.update(figures)
    result["fine_tune_seconds"] = ranker.fit_details["fine_tune_seconds"]
    result["fit_details"] = {**ranker.fit_details, "history": report.history}
    result["config"] = ranker.config.model_dump(mode="json")
    result["grounding_weight"] = weight = ranker.grounding_weight
    print(json.dumps({"seed": seed, "fit_seconds": result["fit_seconds"], "fit": result["fit_details"]}), flush=True)

    retriever = ranker.retriever_scores(test.history)
    grounding, result["timing"] = grounding_pass(ranker, test.history)
    groundings = {"fine_tuned" if tuned else "zero_shot": (grounding, ranker.last_texts)}
    if tuned and "zero-shot" in variants:
        if ranker.fit_details["best_step"] == 0:  # the restored adapter is the initial one (B = 0): zero-shot
            groundings["zero_shot"] = groundings["fine_tuned"]
            result["zero_shot_timing"] = {**result["timing"], "same_as_fine_tuned": True}
        else:
            with ranker.model.disable_adapter():
                zero_shot, result["zero_shot_timing"] = grounding_pass(ranker, test.history)
            groundings["zero_shot"] = (zero_shot, ranker.last_texts)
    print(json.dumps({"seed": seed, "timing": result["timing"]}), flush=True)

    def lists(scores: np.ndarray, value: float) -> np.ndarray:
        return ranker.grounded_lists(test.history, retriever, scores, value, max(KS))

    named = {"retriever": lists(grounding, 0.0)}
    for name, (scores, _) in groundings.items():
        named[f"{name}_grounding_only"] = lists(scores, float("inf"))
        named[f"{name}_fused"] = lists(scores, weight)
    per_user = {}
    for name, items in named.items():
        result[name] = accuracy_metrics(items, test.targets, KS)
        per_user[name] = per_user_ndcg10(items, test.targets)
    # Reported, never used to choose anything: how the test figure moves with the weight.
    result["test_NDCG@10_by_weight"] = {
        name: {
            f"{value:g}": accuracy_metrics(lists(scores, value), test.targets, (10,))["NDCG@10"]
            for value in ranker.config.grounding_grid
        }
        for name, (scores, _) in groundings.items()
    }
    titles = ranker.titles
    result["generated_texts"] = {
        name: [
            {"target": titles[int(test.targets[row][0])], "written": written[row]}
            for row in range(min(SHOWN_TEXTS, len(test)))
        ]
        for name, (_, written) in groundings.items()
    }
    print(json.dumps({"seed": seed, "generated_texts": result["generated_texts"]}, ensure_ascii=False), flush=True)
    return result | per_user_figures(per_user, rows, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="title", choices=("title", "query"), help="what the LM writes")
    add_common_options(parser)
    parser.add_argument("--variants", default="zero-shot,fine-tuned", help="zero-shot, fine-tuned or both")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {key: parse_value(value) for key, value in (item.split("=", 1) for item in args.set)}
    the_split = split(load_dataset(args.dataset, protocol=args.protocol))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-llm-grounding-") as temporary:
        workdir = Path(args.workdir or temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        for seed in (int(s) for s in args.seeds.split(",")):
            results.append(run_seed(the_split, seed, overrides, args, workdir))
            last = results[-1]
            names = [name for name in last if name == "retriever" or name.endswith(("_fused", "_grounding_only"))]
            summary = {name: {key: last[name][key] for key in HEADLINE} for name in names}
            capped = f"{last['test_users']} of {last['test_users_of']} (capped)" if last["test_users_capped"] else "all"
            print(
                json.dumps(
                    {"seed": seed, "test_users": capped, "weight": last["grounding_weight"], **summary}, indent=2
                )
            )
            if args.json:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(results, indent=2, default=float) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
