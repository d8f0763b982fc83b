"""The llm ranker side by side with its own retriever: retriever alone, zero-shot, fine-tuned, fused.

One llm ranker fit per seed on movielens-latest-small under the LlamaRec protocol by default (5-core:
610 users x 3,650 items), leave-one-out, full ranking (seen items excluded). The retriever is fitted
once per seed and saved under ``--workdir`` (``retriever-seed<S>/``); every later run with the same
workdir loads it (``retriever=<dir>``, no refit). With the defaults (LoRA fine-tuning) one test pass
with the adapter gives fine-tuned (lambda 0) and fused (lambda chosen on validation); a second pass
with the adapter disabled gives zero-shot (lambda 0). ``--variants zero-shot`` fits without
fine-tuning and gives zero-shot and zero-shot fused. ``--test-users U`` scores a fixed seeded
sample of U test users (the same rows for every variant and seed). The LM scores only the test users whose
target is in the retriever's top N (``--score-every-user``: all): for the others every reranking of the N
gives the same list metrics (no target among the N, the rest in retriever order), so the figures are exact
and the timings are per scored user. Per-user NDCG@10 gives 95%
bootstrap intervals of each mean and paired intervals of each variant minus the retriever.
Optionally ``--parity-users U`` compares bf16 against fp32 LM scores on U validation users, and
``--permutations P`` also scores the validation sample with P candidate orders.
Timings: reranking milliseconds per test user (LM passes only; the retriever is apart),
fine-tuning seconds; forward passes and prompts per user. Prints figures only.

    heavy python benchmarks/bench_llm_ranker.py --seeds 0 --workdir runs/bench-llm --json runs/bench/llm-seed0.json
    heavy python benchmarks/bench_llm_ranker.py --seeds 0 --set max_steps=2 --test-users 8  # a smoke run
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
from genrec.evaluation.metrics import accuracy_metrics, hit_matrix
from genrec.io import read_json, write_json
from genrec.pipelines import build_ranker, split
from genrec.rankers.llm import LLMRanker

KS = (5, 10, 20)
HEADLINE = ("NDCG@10", "HR@10", "MRR@10", "NDCG@20", "HR@20")


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def test_pass(ranker: LLMRanker, history, retrieved: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, dict]:
    """LM scores of the candidates of test rows ``rows`` (0 elsewhere: retriever order), timed and counted per
    scored user."""
    N = ranker.config.candidates
    passes, prompts = ranker.forward_passes, ranker.prompts_scored
    start = time.perf_counter()
    lm = np.where(retrieved[:, :N] >= 0, 0.0, -np.inf)
    lm[rows] = ranker.lm_scores(history.rows(rows), retrieved[rows, :N], progress=True)
    seconds = time.perf_counter() - start
    users = max(len(rows), 1)
    return lm, {
        "users_scored": len(rows),
        "rerank_ms_per_user": 1000 * seconds / users,
        "forward_passes_per_user": (ranker.forward_passes - passes) / users,
        "prompts_per_user": (ranker.prompts_scored - prompts) / users,
        "rerank_seconds": seconds,
    }


def metrics_of(ranker: LLMRanker, retrieved, scores, lm, targets, fusion_lambda: float):
    """Full-ranking metrics of the reranked list, and the list itself."""
    items, _ = ranker.combine(retrieved, scores, lm, max(KS), fusion_lambda)
    return accuracy_metrics(items, targets, KS), items


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


def per_user_ndcg10(items: np.ndarray, targets) -> np.ndarray:
    """Each user's NDCG@10 (one target per user in leave-one-out): [U]."""
    hits = hit_matrix(items[:, :10], targets)
    return (hits / np.log2(np.arange(2, 12))).sum(axis=1)


def mean_interval(values: np.ndarray, seed: int, draws: int = 2000) -> tuple[float, float]:
    """A 95% bootstrap interval of the mean of ``values`` (resampling users)."""
    generator = np.random.default_rng([seed, 4])
    means = values[generator.integers(0, len(values), (draws, len(values)))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def paired_interval(a: np.ndarray, b: np.ndarray, seed: int) -> dict[str, float]:
    """Mean of ``a - b`` (per-user NDCG@10 of two lists for the same users) with its 95% paired bootstrap interval."""
    low, high = mean_interval(a - b, seed)
    return {"mean": float((a - b).mean()), "ci95_low": low, "ci95_high": high}


def test_rows(n: int, sample: int, seed: int) -> np.ndarray:
    """All test rows, or a fixed seeded sample of ``sample`` of them (the same for every variant and seed)."""
    if not sample or sample >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 6]).choice(n, sample, replace=False))


def run_seed(the_split, seed: int, overrides: dict[str, Any], args, workdir: Path) -> dict[str, Any]:
    """One llm ranker fit per seed on a retriever fitted once (saved under ``workdir``, reused by later runs).

    Fine-tuned: the test pass with the adapter gives fine-tuned (lambda 0) and fused (validation lambda);
    the same ranker with its adapter disabled gives zero-shot (lambda 0). Zero-shot only (``--variants
    zero-shot``): a ranker fitted with ``fine_tune=False`` gives zero-shot and zero-shot fused.
    """
    rows = test_rows(len(the_split.test), args.test_users, args.sample_seed)
    test = the_split.test.subset(rows)
    variants = args.variants.split(",")
    result: dict[str, Any] = {"seed": seed, "test_users": len(test), "loadavg_start": os.getloadavg()}
    tuned = "fine-tuned" in variants
    ranker, report, figures = fit_reusing_retriever(workdir, seed, {**overrides, "fine_tune": tuned}, the_split)
    result.update(figures)
    result["fit_details"] = {**ranker.fit_details, "history": report.history}
    result["config"] = ranker.config.model_dump(mode="json")
    retrieved, scores = retriever_figures(ranker, test, result)
    N = ranker.config.candidates
    reached = hit_matrix(retrieved[:, :N], test.targets).any(axis=1)
    scored = np.arange(len(test)) if args.score_every_user else np.flatnonzero(reached)
    print(json.dumps({"seed": seed, "retriever": result["retriever"], "fit": result["fit_details"]}), flush=True)
    per_user = {"retriever": per_user_ndcg10(retrieved, test.targets)}
    if args.parity_users:
        valid_retrieved, _ = ranker.retrieve(the_split.valid.history, 10)
        result["bf16_vs_fp32"] = parity(ranker, the_split.valid.history, valid_retrieved, args.parity_users)
        print(json.dumps({"bf16_vs_fp32": result["bf16_vs_fp32"]}), flush=True)
    if args.permutations > 1:
        result["valid_by_permutations"] = permutation_figures(ranker, the_split, args.permutations)
    lm, result["timing" if tuned else "zero_shot_timing"] = test_pass(ranker, test.history, retrieved, scored)
    lambdas = {"fine_tuned": 0.0, "fused": ranker.fusion_lambda} if tuned else {}
    if not tuned:
        lambdas = {"zero_shot": 0.0, "zero_shot_fused": ranker.fusion_lambda}
    for name, value in lambdas.items():
        result[name], items = metrics_of(ranker, retrieved, scores, lm, test.targets, value)
        per_user[name] = per_user_ndcg10(items, test.targets)
    result["fusion_lambda"] = ranker.fusion_lambda
    if tuned:
        result["fine_tune_seconds"] = ranker.fit_details["fine_tune_seconds"]
        print(json.dumps({k: result[k] for k in ("fine_tuned", "fused", "timing")}), flush=True)
        if "zero-shot" in variants and ranker.fit_details["best_step"] == 0:
            # Early stopping restored the initial adapter (B = 0): the fine-tuned LM is the zero-shot LM.
            lm_zero, result["zero_shot_timing"] = lm, {**result["timing"], "same_as_fine_tuned": True}
        elif "zero-shot" in variants:
            with ranker.model.disable_adapter():
                lm_zero, result["zero_shot_timing"] = test_pass(ranker, test.history, retrieved, scored)
        if "zero-shot" in variants:
            result["zero_shot"], items = metrics_of(ranker, retrieved, scores, lm_zero, test.targets, 0.0)
            per_user["zero_shot"] = per_user_ndcg10(items, test.targets)
    lms = {
        "fine_tuned" if tuned else "zero_shot": lm,
        **({"zero_shot": lm_zero} if tuned and "zero-shot" in variants else {}),
    }
    # Reported, never used to choose anything: how the test figure moves with lambda, and the LM's test scores.
    result["test_NDCG@10_by_lambda"] = {
        name: {
            f"{value:g}": metrics_of(ranker, retrieved, scores, values, test.targets, value)[0]["NDCG@10"]
            for value in ranker.config.fusion_grid
        }
        for name, values in lms.items()
    }
    result["test_lm_log_probs"] = {
        "rows": scored.tolist(),
        **{name: values[scored].tolist() for name, values in lms.items()},
    }
    return result | per_user_figures(per_user, rows, seed)


def fit_reusing_retriever(workdir: Path, seed: int, settings: dict, the_split) -> tuple[Any, Any, dict]:
    """Fit the llm ranker of ``seed``, its retriever loaded from ``workdir`` when an earlier run saved it (else
    fitted and saved there); returns the ranker, its fit report and the result's fit figures."""
    retriever_dir = workdir / f"retriever-seed{seed}"
    reused = (retriever_dir / "config.json").exists()
    ranker = build_ranker("llm", None, {**settings, **({"retriever": str(retriever_dir)} if reused else {})}, seed)
    start = time.perf_counter()
    report = ranker.fit(the_split, progress=True)
    figures = {"fit_seconds": time.perf_counter() - start, "retriever_reused": reused}
    if not reused:
        ranker.retriever.save_pretrained(retriever_dir)
        write_json(workdir / f"retriever-seed{seed}.json", {"fit_seconds": ranker.fit_details["retriever_fit_seconds"]})
    figures["retriever_fit_seconds"] = read_json(workdir / f"retriever-seed{seed}.json")["fit_seconds"]
    return ranker, report, figures


def per_user_figures(per_user: dict[str, np.ndarray], rows: np.ndarray, seed: int) -> dict:
    """95% intervals of each variant's mean NDCG@10 and of its difference from the retriever, the per-user
    figures and rows behind them, and the load average at the end."""
    return {
        "NDCG@10_ci95": {name: mean_interval(values, seed) for name, values in per_user.items()},
        "NDCG@10_minus_retriever": {
            name: paired_interval(values, per_user["retriever"], seed)
            for name, values in per_user.items()
            if name != "retriever"
        },
        "per_user_NDCG@10": {name: values.tolist() for name, values in per_user.items()},
        "test_rows": rows.tolist(),
        "loadavg_end": os.getloadavg(),
    }


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """The options both llm benchmarks take: data, seeds, config overrides, test-user sample, retriever workdir."""
    parser.add_argument("--dataset", default="movielens-latest-small")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="llm ranker config override")
    parser.add_argument("--protocol", default="llamarec", help="load_dataset protocol (llamarec: 5-core, as LlamaRec)")
    parser.add_argument("--test-users", type=int, default=0, help="a seeded sample of U test users (0: all)")
    parser.add_argument("--sample-seed", type=int, default=0, help="seed of the test-user sample (fixed across seeds)")
    parser.add_argument("--workdir", default=None, help="keeps each seed's retriever for later runs (default: temp)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--json", default=None, help="write all results to this file (rewritten after each seed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_options(parser)
    parser.add_argument("--parity-users", type=int, default=0, help="bf16 vs fp32 on U validation users")
    parser.add_argument("--permutations", type=int, default=0, help="also score validation with P orders")
    parser.add_argument(
        "--variants",
        default="zero-shot,fine-tuned",
        help="zero-shot, fine-tuned or both",
    )
    parser.add_argument(
        "--score-every-user",
        action="store_true",
        help="run the LM for every test user (default: only those whose target is in the retriever's top N; the "
        "others' metrics are the same for every reranking of the N, so skipping them changes no figure)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {key: parse_value(value) for key, value in (item.split("=", 1) for item in args.set)}
    dataset = load_dataset(args.dataset, protocol=args.protocol)
    the_split = split(dataset)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-llm-") as temporary:
        workdir = Path(args.workdir or temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        for seed in (int(s) for s in args.seeds.split(",")):
            results.append(run_seed(the_split, seed, overrides, args, workdir))
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
