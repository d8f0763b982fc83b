"""The llm ranker side by side with its own retriever: retriever alone, zero-shot, fine-tuned, fused.

One run per seed on movielens-latest-small, leave-one-out, full ranking (seen items excluded):
1. fit the llm ranker zero-shot (``fine_tune=False``): this fits the retriever and picks the
   zero-shot fusion lambda on the validation sample; score every test user once with the LM;
2. fit a second llm ranker on the saved retriever (``retriever=<dir>``, no refit) with LoRA
   fine-tuning (the defaults); score every test user once with the fine-tuned LM;
3. from those two test passes (``--variants`` runs one of the two; the fine-tuned run then fits its
   own retriever with the same seed): the retriever's order, zero-shot (lambda 0), fine-tuned (lambda 0),
   fused (fine-tuned LM + lambda chosen on validation) and fused zero-shot.
Optionally ``--parity-users U`` compares bf16 against fp32 LM scores on U validation users, and
``--permutations P`` also scores the validation sample with P candidate orders (fine-tuned LM).
Timings: reranking milliseconds per test user (LM passes only; the retriever is apart),
fine-tuning seconds; forward passes and prompts per user. Prints figures only.

    heavy python benchmarks/bench_llm_ranker.py --seeds 0 --json runs/bench/llm-seed0.json
    heavy python benchmarks/bench_llm_ranker.py --seeds 0 --set max_steps=10 --test-users 40  # a smoke run
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

from genrec.data import load_dataset
from genrec.evaluation.metrics import accuracy_metrics
from genrec.pipelines import build_ranker, split
from genrec.rankers.llm import LLMRanker

KS = (5, 10, 20)
HEADLINE = ("NDCG@10", "HR@10", "MRR@10", "NDCG@20", "HR@20")


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def test_pass(ranker: LLMRanker, history, retrieved: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """LM scores of every test user's candidates, timed and counted."""
    passes, prompts = ranker.forward_passes, ranker.prompts_scored
    start = time.perf_counter()
    lm = ranker.lm_scores(history, retrieved[:, : ranker.config.candidates], progress=True)
    seconds = time.perf_counter() - start
    users = len(retrieved)
    return lm, {
        "rerank_ms_per_user": 1000 * seconds / users,
        "forward_passes_per_user": (ranker.forward_passes - passes) / users,
        "prompts_per_user": (ranker.prompts_scored - prompts) / users,
        "rerank_seconds": seconds,
    }


def metrics_of(ranker: LLMRanker, retrieved, scores, lm, targets, fusion_lambda: float) -> dict[str, float]:
    items, _ = ranker.combine(retrieved, scores, lm, max(KS), fusion_lambda)
    return accuracy_metrics(items, targets, KS)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two score vectors (Pearson correlation of their ranks)."""
    ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def parity(ranker: LLMRanker, history, retrieved: np.ndarray, users: int) -> dict[str, float]:
    """bf16 vs fp32 LM log-probabilities of the same prompts (the zero-shot model)."""
    rows = np.arange(min(users, len(retrieved)))
    candidates = retrieved[rows, : ranker.config.candidates]
    dtype = ranker.model.dtype
    bf16 = ranker.model.to(torch.bfloat16) and ranker.lm_scores(history.rows(rows), candidates)
    fp32 = ranker.model.float() and ranker.lm_scores(history.rows(rows), candidates)
    ranker.model.to(dtype)
    finite = np.isfinite(fp32)
    rho = [spearman(a[m], b[m]) for a, b, m in zip(bf16, fp32, finite, strict=True)]
    return {
        "users": float(len(rows)),
        "max_abs_log_prob_diff": float(np.abs(bf16[finite] - fp32[finite]).max()),
        "mean_spearman": float(np.mean(rho)),
        "top1_agreement": float(np.mean(bf16.argmax(1) == fp32.argmax(1))),
        "top10_overlap": float(
            np.mean(
                [len(set(np.argsort(-a)[:10]) & set(np.argsort(-b)[:10])) / 10 for a, b in zip(bf16, fp32, strict=True)]
            )
        ),
    }


def retriever_figures(ranker: LLMRanker, test, result: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The retriever alone on test and the share of test targets among its top N; returns its top 20."""
    retrieved, scores = ranker.retrieve(test.history, max(KS))
    N = ranker.config.candidates
    result["retriever"] = accuracy_metrics(retrieved[:, : max(KS)], test.targets, KS)
    result["target_in_top_N_share"] = accuracy_metrics(retrieved[:, :N], test.targets, (N,))[f"HR@{N}"]
    result["retriever_fit_seconds"] = ranker.fit_details["retriever_fit_seconds"]
    return retrieved, scores


def permutation_figures(ranker: LLMRanker, the_split, permutations: int) -> dict[str, float]:
    """Validation NDCG@10 (lambda 0) of the LM in retriever order and averaged over ``permutations`` orders."""
    valid = the_split.valid.subset(ranker.validation_rows(the_split))
    retrieved, scores = ranker.retrieve(valid.history, 10)
    kept, figures = ranker.config.permutations, {}
    for count in (1, permutations):
        ranker.config.permutations = count
        lm = ranker.lm_scores(valid.history, retrieved[:, : ranker.config.candidates])
        figures[f"permutations_{count}"] = ranker.valid_ndcg(valid, retrieved, scores, lm, 0.0)
    ranker.config.permutations = kept
    print(json.dumps({"valid_NDCG@10_by_permutations": figures}), flush=True)
    return figures


def run_seed(the_split, seed: int, overrides: dict[str, Any], args, workdir: Path) -> dict[str, Any]:
    test = the_split.test
    if args.test_users:
        test = test.subset(np.arange(min(args.test_users, len(test))))
    variants = args.variants.split(",")
    result: dict[str, Any] = {"seed": seed, "test_users": len(test), "loadavg_start": os.getloadavg()}
    retriever_dir = None
    if "zero-shot" in variants:
        zero = build_ranker("llm", None, {**overrides, "fine_tune": False}, seed)
        start = time.perf_counter()
        zero.fit(the_split, progress=True)
        result["zero_shot_fit_seconds"] = time.perf_counter() - start
        result["zero_shot_valid"] = {k: v for k, v in zero.fit_details.items() if k.startswith("valid_")}
        result["zero_shot_lambda"] = zero.fusion_lambda
        retrieved, scores = retriever_figures(zero, test, result)
        if args.parity_users:
            valid = the_split.valid
            valid_retrieved, _ = zero.retrieve(valid.history, 10)
            result["bf16_vs_fp32"] = parity(zero, valid.history, valid_retrieved, args.parity_users)
            print(json.dumps({"bf16_vs_fp32": result["bf16_vs_fp32"]}), flush=True)
        if args.permutations > 1:
            result["zero_shot_valid_by_permutations"] = permutation_figures(zero, the_split, args.permutations)
        lm_zero, timing = test_pass(zero, test.history, retrieved)
        result["zero_shot_timing"] = timing
        result["zero_shot"] = metrics_of(zero, retrieved, scores, lm_zero, test.targets, 0.0)
        result["zero_shot_fused"] = metrics_of(zero, retrieved, scores, lm_zero, test.targets, zero.fusion_lambda)
        print(json.dumps({k: result[k] for k in ("retriever", "zero_shot", "zero_shot_fused")}), flush=True)
        retriever_dir = workdir / f"retriever-seed{seed}"
        zero.retriever.save_pretrained(retriever_dir)
        del zero
    if "fine-tuned" in variants:
        # On the zero-shot run's retriever when there is one (no refit); else it fits its own (same seed).
        tuned_overrides = {**overrides, **({"retriever": str(retriever_dir)} if retriever_dir else {})}
        tuned = build_ranker("llm", None, tuned_overrides, seed)
        start = time.perf_counter()
        report = tuned.fit(the_split, progress=True)
        result["fine_tune_fit_seconds"] = time.perf_counter() - start
        result["fine_tune_seconds"] = tuned.fit_details["fine_tune_seconds"]
        result["fine_tune"] = {**tuned.fit_details, "history": report.history}
        result["fused_lambda"] = tuned.fusion_lambda
        if retriever_dir is None:
            retrieved, scores = retriever_figures(tuned, test, result)
        else:
            retrieved, scores = tuned.retrieve(test.history, max(KS))
        if args.permutations > 1:
            result["fine_tuned_valid_by_permutations"] = permutation_figures(tuned, the_split, args.permutations)
        lm_tuned, timing = test_pass(tuned, test.history, retrieved)
        result["fine_tuned_timing"] = timing
        result["fine_tuned"] = metrics_of(tuned, retrieved, scores, lm_tuned, test.targets, 0.0)
        result["fused"] = metrics_of(tuned, retrieved, scores, lm_tuned, test.targets, tuned.fusion_lambda)
        result["config"] = tuned.config.model_dump(mode="json")
    result["loadavg_end"] = os.getloadavg()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="movielens-latest-small")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="llm ranker config override")
    parser.add_argument("--test-users", type=int, default=0, help="first U test users only (0: all; smoke runs)")
    parser.add_argument("--parity-users", type=int, default=0, help="bf16 vs fp32 on U validation users")
    parser.add_argument("--permutations", type=int, default=0, help="also score validation with P orders")
    parser.add_argument(
        "--variants", default="zero-shot,fine-tuned", help="zero-shot, fine-tuned or both (separate runs share a seed)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--json", default=None, help="write all results to this file (rewritten after each seed)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {key: parse_value(value) for key, value in (item.split("=", 1) for item in args.set)}
    dataset = load_dataset(args.dataset)
    the_split = split(dataset)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-llm-") as workdir:
        for seed in (int(s) for s in args.seeds.split(",")):
            results.append(run_seed(the_split, seed, overrides, args, Path(workdir)))
            summary = {
                name: {key: results[-1][name][key] for key in HEADLINE}
                for name in ("retriever", "zero_shot", "fine_tuned", "fused", "zero_shot_fused")
                if name in results[-1]
            }
            print(json.dumps({"seed": seed, **summary}, indent=2), flush=True)
            if args.json:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(results, indent=2, default=float) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
