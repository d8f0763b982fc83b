"""Requests conditioning the ranking: simulated requests on movielens-latest-small, no request vs request only vs
history + request fused, the fusion weight chosen on validation, and the latency of one request.

For each evaluated user and phase (validation: the split's validation target; test: the test target), requests
are built from the TARGET's genres and one or two of its tags, never its title or another item's title (a tag that
is some catalogue title, or holds the target's title, or a negation, is dropped), in a few phrasing templates:

    plain    "a comedy and romance film with pixar and fun"
    mood     "I'm in the mood for comedy or romance, something about pixar"
    ask      "any comedy or romance recommendations? ideally pixar and fun"
    named    "like Toy Story, but comedy or romance, with pixar"   (one of the user's earlier liked titles, >= 4 stars)

Such requests carry the target's own attributes: the figures measure the conditioning mechanism (how much a
request that says what the user wants moves the target up), not real conversations.

Side by side, per seed (one sequence-model fit each, leave-one-out, full ranking, seen items excluded):

- ``no request``: the sequence model alone on the user's history;
- ``request only``: content retrieval (MiniLM request vs item facts) with the request's filters, no history model;
- ``fused``: standardised(sequence(history + named titles)) + w * standardised(content), with the filters.

Validation NDCG@10 of ``fused`` for each w of ``--weights`` picks the weight (the best mean over seeds and templates);
test figures are given for it and for the library's current default (``DEFAULT_REQUEST_WEIGHT``). Latency: one
request-conditioned top-10 for one user (parse, MiniLM, the model, fusion, top-k) after the models are loaded, on
one thread, median of ``--latency-requests`` requests.

Fitted models are saved under ``--runs`` (one directory per ranker, config, epochs and seed, with the data's
fingerprint) and loaded on a rerun, so only the first run fits. Prints figures only.

    python benchmarks/bench_requests.py --ranker hstu --config hstu-demo --seeds 0,1,2 --runs runs/bench-requests \\
        --json runs/bench/requests.json
    python benchmarks/bench_requests.py --seeds 0 --epochs 1 --users 50 --latency-requests 10   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genrec.data import load_dataset
from genrec.evaluation import EvalSet
from genrec.evaluation.metrics import accuracy_metrics
from genrec.io import read_json, write_json
from genrec.pipelines import build_ranker, fit_ranker, split
from genrec.pipelines.encode import load_item_features
from genrec.pipelines.request_ranking import (
    DEFAULT_REQUEST_WEIGHT,
    REQUEST_ONLY,
    allowed_items,
    content_scores,
    fuse_scores,
    rank_with_request,
    request_item_vectors,
    with_named_items,
)
from genrec.pipelines.stages import dataset_fingerprint
from genrec.rankers import load_ranker
from genrec.ranking_ops import exclude_seen, top_k
from genrec.requests import NEGATIONS, catalogue_index, genre_names, normalise_title, parse_request

KS = (10,)
TEMPLATES = ("plain", "mood", "ask", "named")
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
LIKED = 4.0  # stars: an earlier title the user liked, for "like X, but ..."
BATCH = 128  # users scored at once


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- simulated requests ---------------------------------------------------------------------------


def spoken_title(title: str) -> str:
    """A catalogue title as a person types it: "Matrix, The (a.k.a. X)" -> "The Matrix"."""
    title = re.sub(r"\s*\([^)]*\)", "", title).strip()
    match = re.match(r"^(.*), (The|A|An)$", title)
    return f"{match.group(2)} {match.group(1)}" if match else title


def usable_tags(dataset, item: int, index) -> list[str]:
    """The item's tags that name no catalogue title, hold neither its own title nor a negation or "like" (which
    would read as an exclusion or a title)."""
    own = normalise_title(dataset.items["title"].iloc[item])
    tags = []
    for tag in genre_names(dataset.items["tags"].iloc[item]) if "tags" in dataset.items else []:
        key = normalise_title(tag)
        words = set(re.findall(r"[a-z']+", tag.lower()))
        if key and key not in index.exact and own not in key and not words & (NEGATIONS | {"like"}):
            tags.append(tag)
    return tags


def simulated_request(dataset, index, history: np.ndarray, ratings, target: int, template: str, rng) -> str | None:
    """One request of ``template`` for ``target`` (None when the target has no genre, or a named request has no
    liked title to name)."""
    genres = [genre.lower().replace("-", " ") for genre in genre_names(dataset.items["genres"].iloc[target])]
    genres = [genre for genre in genres if genre != "(no genres listed)"]
    if not genres:
        return None
    genres = list(rng.choice(genres, size=min(2, len(genres)), replace=False))
    tags = usable_tags(dataset, target, index)
    tags = list(rng.choice(tags, size=min(int(rng.integers(1, 3)), len(tags)), replace=False)) if tags else []
    with_tags = f" with {' and '.join(tags)}" if tags else ""
    if template == "plain":
        return f"a {' and '.join(genres)} film{with_tags}"
    if template == "mood":
        return f"I'm in the mood for {' or '.join(genres)}" + (f", something about {tags[0]}" if tags else "")
    if template == "ask":
        return f"any {' or '.join(genres)} recommendations?" + (f" ideally {' and '.join(tags)}" if tags else "")
    liked = history if ratings is None else history[ratings >= LIKED]
    if not len(liked):
        return None
    title = spoken_title(dataset.items["title"].iloc[int(rng.choice(liked))])
    return f"like {title}, but {' or '.join(genres)}{with_tags}"


def phase_requests(dataset, phase: EvalSet, seed: int) -> dict[str, list[str | None]]:
    """Each template's request for every row of ``phase`` (seeded per template and row)."""
    index = catalogue_index(dataset)
    ratings = phase.history.ratings
    requests: dict[str, list[str | None]] = {}
    for number, template in enumerate(TEMPLATES):
        rows = []
        for row in range(len(phase)):
            rng = np.random.default_rng([seed, number, int(phase.users[row])])
            start, stop = phase.history.offsets[row], phase.history.offsets[row + 1]
            row_ratings = None if ratings is None else ratings[start:stop]
            target = int(phase.targets[row][0])
            rows.append(simulated_request(dataset, index, phase.history[row], row_ratings, target, template, rng))
        requests[template] = rows
    return requests


# -- evaluation -----------------------------------------------------------------------------------


@torch.inference_mode()
def evaluate_phase(model, dataset, phase: EvalSet, requests: dict, vectors: np.ndarray, weights) -> dict[str, Any]:
    """NDCG@10 and HR@10 of no request, request only and fused (each weight), per template and over all
    (user, template) pairs."""
    by_template: dict[str, Any] = {}
    for template, texts in requests.items():
        rows = np.array([row for row, text in enumerate(texts) if text is not None], dtype=np.int64)
        if not len(rows):
            continue
        subset = phase.subset(rows)
        parsed = [parse_request(texts[row], dataset) for row in rows]
        lists = rank_variants(model, dataset, subset, parsed, vectors, weights)
        resolved = float(np.mean([len(request.named_items) > 0 for request in parsed]))
        by_template[template] = {
            "users": len(rows),
            "named_resolved": resolved if template == "named" else None,
            **{name: accuracy_metrics(top, subset.targets, KS) for name, top in lists.items()},
        }
    counts = {template: figures["users"] for template, figures in by_template.items()}
    variants = [name for name in next(iter(by_template.values())) if name not in ("users", "named_resolved")]
    pooled = {  # each template's means weighted by its users: the mean over every (user, template) pair
        name: {
            metric: sum(counts[t] * by_template[t][name][metric] for t in counts) / sum(counts.values())
            for metric in by_template[next(iter(counts))][name]
        }
        for name in variants
    }
    return {"by_template": by_template, "all": pooled}


def rank_variants(model, dataset, phase: EvalSet, parsed: list, vectors: np.ndarray, weights) -> dict[str, np.ndarray]:
    """Top-10 lists [U, 10] of every variant for the rows of ``phase`` (``parsed``: each row's request)."""
    lists: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(phase), BATCH):
        rows = np.arange(start, min(start + BATCH, len(phase)))
        requests = [parsed[row] for row in rows]
        history = phase.history.rows(rows)
        extended = with_named_items(history, [request.named_items for request in requests])
        allowed = torch.from_numpy(np.stack([allowed_items(request, dataset) for request in requests]))
        content = torch.from_numpy(content_scores(requests, vectors))  # [B, N]
        plain = model.score(history).float().cpu()  # [B, N]
        sequence = plain if extended is history else model.score(extended).float().cpu()
        variants = {
            "no_request": plain.clone(),
            "request_only": fuse_scores(None, content, REQUEST_ONLY, allowed),
            **{f"fused_w{weight:g}": fuse_scores(sequence, content, weight, allowed) for weight in weights},
        }
        for name, scores in variants.items():
            top, _ = top_k(exclude_seen(scores.clone(), extended), max(KS))
            lists.setdefault(name, []).append(top.numpy())
    return {name: np.concatenate(tops) for name, tops in lists.items()}


def latency(model, dataset, phase: EvalSet, texts: list[str | None], vectors, weight: float, n: int) -> dict:
    """Milliseconds of one request-conditioned top-10 for one user (parse included), one thread."""
    torch.set_num_threads(1)
    users = dataset.user_ids[phase.users]
    pairs = [(users[row], text) for row, text in enumerate(texts) if text is not None]
    pairs = (pairs * (n // max(len(pairs), 1) + 1))[: n + 5]
    seconds = []
    for user, text in pairs:
        start = time.perf_counter()
        rank_with_request(model, dataset, [user], parse_request(text, dataset), 10, weight, vectors)
        seconds.append(time.perf_counter() - start)
    measured = sorted(seconds[5:])  # the first five warm up the kernels
    return {
        "requests": len(measured),
        "median_ms": 1000 * statistics.median(measured),
        "p90_ms": 1000 * measured[int(0.9 * (len(measured) - 1))],
        "threads": 1,
    }


# -- models ---------------------------------------------------------------------------------------


def fitted_model(args, dataset, the_split, seed: int) -> tuple[Any, float | None]:
    """The sequence model of ``seed``: loaded from --runs when it was fitted on this data with this config."""
    overrides = {"epochs": args.epochs} if args.epochs else {}
    features = None if args.item_features == "none" else load_item_features(args.item_features, dataset, False)
    model = build_ranker(args.ranker, args.config, overrides, seed, features)
    identity = {
        "ranker": args.ranker,
        "config": model.config.model_dump(mode="json"),
        "item_features": args.item_features,
        "data": dataset_fingerprint(dataset),
    }
    epochs = f"-e{args.epochs}" if args.epochs else ""
    name = f"{args.ranker}-{args.config or 'default'}-{args.item_features}{epochs}-seed{seed}"
    directory = Path(args.runs) / name
    record = directory / "bench_identity.json"
    if record.is_file() and read_json(record) == identity and (directory / "model.safetensors").is_file():
        log(f"seed {seed}: loading {directory}")
        return load_ranker(str(directory)), None
    log(f"seed {seed}: fitting {args.ranker} ({args.config or 'defaults'}) ...")
    start = time.perf_counter()
    fit_ranker(model, the_split, progress=args.progress)
    seconds = time.perf_counter() - start
    model.save_pretrained(directory)
    write_json(record, identity)
    log(f"seed {seed}: fitted in {seconds:.1f} s, saved to {directory}")
    return model, seconds


# -- summary --------------------------------------------------------------------------------------


def summarise(result: dict[str, Any], seeds: list[int], weights: list[float]) -> None:
    """The chosen weight (best mean validation NDCG@10), and the test figures' mean and spread over seeds."""

    def over_seeds(phase: str, variant: str, metric: str) -> list[float]:
        return [result["seeds"][seed][phase]["all"][variant][metric] for seed in seeds]

    by_weight = {f"{w:g}": float(np.mean(over_seeds("valid", f"fused_w{w:g}", "NDCG@10"))) for w in weights}
    chosen = max(weights, key=lambda w: by_weight[f"{w:g}"])
    variants = {
        "no request": "no_request",
        "request only": "request_only",
        f"fused (w={chosen:g})": f"fused_w{chosen:g}",
    }
    if DEFAULT_REQUEST_WEIGHT in weights and chosen != DEFAULT_REQUEST_WEIGHT:
        variants[f"fused (default w={DEFAULT_REQUEST_WEIGHT:g})"] = f"fused_w{DEFAULT_REQUEST_WEIGHT:g}"
    summary = {
        label: {
            metric: {"mean": float(np.mean(values)), "std": float(np.std(values))}
            for metric in ("NDCG@10", "HR@10")
            for values in [over_seeds("test", variant, metric)]
        }
        for label, variant in variants.items()
    }
    base, fused = summary["no request"]["NDCG@10"]["mean"], summary[f"fused (w={chosen:g})"]["NDCG@10"]["mean"]
    result |= {
        "chosen_weight": chosen,
        "valid_ndcg10_by_weight": by_weight,
        "test_summary": summary,
        "fused_over_no_request": fused / base if base else None,
    }


def print_figures(result: dict[str, Any], seeds: list[int], weights: list[float]) -> None:
    chosen = result["chosen_weight"]
    print(
        f"\nvalidation NDCG@10 of fused, mean over seeds {seeds} "
        f"({result['users']} users x {len(TEMPLATES)} templates):"
    )
    for w in weights:
        print(
            f"  w = {w:<5g} {result['valid_ndcg10_by_weight'][f'{w:g}']:.4f}" + ("  <- chosen" if w == chosen else "")
        )
    print(f"test, mean +- std over seeds {seeds}:")
    for label, metrics in result["test_summary"].items():
        print(
            f"  {label:<24} NDCG@10 {metrics['NDCG@10']['mean']:.4f} +- {metrics['NDCG@10']['std']:.4f}   "
            f"HR@10 {metrics['HR@10']['mean']:.4f} +- {metrics['HR@10']['std']:.4f}"
        )
    ratio = result["fused_over_no_request"]
    print(f"  fused / no request: {'n/a' if ratio is None else f'{ratio:.2f}x'} (target >= 1.5x, above request only)")
    named = [result["seeds"][seed]["test"]["by_template"].get("named", {}).get("named_resolved") for seed in seeds]
    named = [share for share in named if share is not None]
    if named:
        print(f"  named requests whose liked title was resolved: {np.mean(named):.3f}")
    lat = result["latency"]
    print(
        f"latency: median {lat['median_ms']:.1f} ms, p90 {lat['p90_ms']:.1f} ms "
        f"({lat['requests']} requests, one thread)"
    )


# -- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="movielens-latest-small")
    parser.add_argument("--ranker", default="hstu")
    parser.add_argument("--config", default="hstu-demo", help="a named ranker config (or a JSON file)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--item-features", default="minilm", help="the sequence model's item features (a run's default), or none"
    )
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs (smoke runs)")
    parser.add_argument("--users", type=int, default=None, help="a seeded sample of N evaluated users (default all)")
    parser.add_argument("--weights", default=",".join(f"{w:g}" for w in WEIGHTS), help="fusion weights tried")
    parser.add_argument("--latency-requests", type=int, default=100)
    parser.add_argument("--runs", default="runs/bench-requests", help="where fitted models are kept and reused")
    parser.add_argument("--cache-dir", default=None, help="the embedding cache (default: $GENREC_CACHE_DIR)")
    parser.add_argument("--json", default=None, help="write every figure here")
    parser.add_argument("--progress", action="store_true", help="progress bars while fitting")
    args = parser.parse_args(argv)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    weights = [float(weight) for weight in args.weights.split(",")]

    dataset = load_dataset(args.dataset)
    the_split = split(dataset)
    log(f"{dataset.name}: {dataset.n_users} users, {dataset.n_items} items; MiniLM item vectors ...")
    vectors = request_item_vectors(dataset, args.cache_dir, progress=args.progress)
    rows = np.arange(len(the_split.test))
    if args.users:
        rows = np.sort(np.random.default_rng(0).choice(rows, size=min(args.users, len(rows)), replace=False))
    valid, test = the_split.valid.subset(rows), the_split.test.subset(rows)
    result: dict[str, Any] = {
        "dataset": dataset.name,
        "ranker": args.ranker,
        "config": args.config,
        "epochs_override": args.epochs,
        "users": len(rows),
        "templates": list(TEMPLATES),
        "weights": weights,
        "default_weight": DEFAULT_REQUEST_WEIGHT,
        "seeds": {},
    }
    for seed in seeds:
        model, fit_seconds = fitted_model(args, dataset, the_split, seed)
        figures: dict[str, Any] = {"fit_seconds": fit_seconds}
        for name, phase in (("valid", valid), ("test", test)):
            start = time.perf_counter()
            requests = phase_requests(dataset, phase, seed)
            figures[name] = evaluate_phase(model, dataset, phase, requests, vectors, weights)
            figures[f"{name}_examples"] = {template: texts[:3] for template, texts in requests.items()}
            overall = figures[name]["all"]
            log(
                f"seed {seed} {name}: no request {overall['no_request']['NDCG@10']:.4f}, request only "
                f"{overall['request_only']['NDCG@10']:.4f}, fused "
                + ", ".join(f"w{w:g} {overall[f'fused_w{w:g}']['NDCG@10']:.4f}" for w in weights)
                + f" (NDCG@10; {time.perf_counter() - start:.1f} s)"
            )
        result["seeds"][seed] = figures

    summarise(result, seeds, weights)
    log(f"latency: {args.latency_requests} requests, one thread ...")
    texts = phase_requests(dataset, test, seeds[-1])["named"]
    result["latency"] = latency(model, dataset, test, texts, vectors, result["chosen_weight"], args.latency_requests)
    print_figures(result, seeds, weights)
    if args.json:
        write_json(Path(args.json), json.loads(json.dumps(result, default=float)))
        print(f"figures: {args.json}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
