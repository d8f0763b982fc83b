"""Content-aware rankers against id-only ones: valid and test metrics, the cold-start slice, fit seconds.

Each ``--run`` fits one ranker per seed on the same data and split (``--protocol`` default or
llamarec) and records validation NDCG@10 (the fit's best, the figure defaults are chosen on),
test NDCG@10 / HR@10 / MRR@10, HR@10 and HR@20 on the cold-start slice (test targets with no
training interaction), the same figures on the validation phase, fit seconds, torch threads and
the load average. Item features come from the encoders' cache (``minilm``: MiniLM over each item's
title, year, genres and tags; any encoder preset name or a ``.npy`` file works), encoded once.

    python benchmarks/bench_content_rankers.py --protocol llamarec --seeds 0,1,2 --runs runs/content \\
        --run 'H=hstu' --run 'HC=hstu+minilm:{"id_dropout": 0.2}'
    python benchmarks/bench_content_rankers.py --table runs/content/*.json

``--run LABEL=RANKER[@NAMED_CONFIG][+FEATURES][:JSON_OVERRIDES]``. Every (label, protocol, seed)
result is written to ``--runs DIR/<protocol>__<label>__seed<N>.json`` after its fit; a result that
is already there is read back, not rerun. ``--table FILES`` prints one markdown row per (protocol,
label): means over the seeds found, next to LlamaRec's published figures on its protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genrec.data import load_dataset
from genrec.evaluation import split
from genrec.io import write_json
from genrec.pipelines.encode import load_item_features
from genrec.pipelines.ranking import build_ranker, evaluate_ranker, fit_ranker

RUN = re.compile(r"^(?P<label>[\w.-]+)=(?P<ranker>\w+)(@(?P<config>[\w.-]+))?(\+(?P<features>[^:]+))?(:(?P<json>.+))?$")

# LlamaRec (Yue et al., 2023), its "ML-100k" (the ml-latest-small download, 5-core: 610 users, 3,650 items, which
# protocol="llamarec" reproduces): published test NDCG@10 and Recall@10 of its retriever LRURec and of LlamaRec.
PUBLISHED = {"LRURec (published)": (0.0705, 0.1426), "LlamaRec (published)": (0.0759, 0.1524)}


def parse_run(text: str) -> dict[str, Any]:
    match = RUN.match(text)
    if match is None:
        raise SystemExit(f"--run expects LABEL=RANKER[@CONFIG][+FEATURES][:JSON], got {text!r}")
    parts = match.groupdict()
    parts["overrides"] = json.loads(parts.pop("json") or "{}")
    return parts


def slice_figures(evaluation, prefix: str) -> dict[str, Any]:
    cold = evaluation.cold_start
    return {
        **{f"{prefix}_{name}": evaluation.metrics[name] for name in ("NDCG@10", "HR@10", "MRR@10", "HR@20")},
        f"{prefix}_cold_users": evaluation.n_cold_users,
        **{f"{prefix}_cold_{name}": cold.get(name) for name in ("NDCG@10", "HR@10", "HR@20")},
    }


def reserve_places(ranker, every: int | None) -> None:
    """Set ``cold_start_every`` on a fitted sasrec/hstu, or on every member of an ensemble of them."""
    for model in getattr(ranker, "members", [ranker]):
        model.config.cold_start_every = every


def run_once(
    dataset, the_split, run: dict[str, Any], seed: int, features_cache: dict, cold_start_every: int | None
) -> dict[str, Any]:
    source = run["features"]
    if source is not None and source not in features_cache:
        features_cache[source] = load_item_features(source, dataset, progress=False)
    features = None if source is None else features_cache[source]
    ranker = build_ranker(run["ranker"], run["config"], run["overrides"], seed, features)
    load_before = os.getloadavg()
    start = time.perf_counter()
    report = fit_ranker(ranker, the_split, progress=False)
    fit_seconds = time.perf_counter() - start
    reserved = {}
    if cold_start_every is not None and features is not None:  # the same fit, ranked with places for new items
        reserve_places(ranker, cold_start_every)
        for phase in ("valid", "test"):
            figures = slice_figures(evaluate_ranker(ranker, the_split, phase, ks=(10, 20)), phase)
            reserved |= {f"reserved_{key}": value for key, value in figures.items()}
        reserve_places(ranker, run["overrides"].get("cold_start_every"))
    return {
        "label": run["label"],
        "ranker": run["ranker"],
        "config": run["config"],
        "features": source,
        "overrides": run["overrides"],
        "seed": seed,
        "threads": torch.get_num_threads(),
        "fit_seconds": fit_seconds,
        "epochs": report.epochs,
        "best_epoch": report.best_epoch,
        "best_valid_NDCG@10": report.best_valid_ndcg10,
        **slice_figures(evaluate_ranker(ranker, the_split, "valid", ks=(10, 20)), "valid"),
        **slice_figures(evaluate_ranker(ranker, the_split, "test", ks=(10, 20)), "test"),
        "cold_start_every": cold_start_every,
        **reserved,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "history": report.history,
    }


COLUMNS = (
    ("fit_seconds", "fit s", "{:.0f}"),
    ("best_valid_NDCG@10", "valid NDCG@10", "{:.4f}"),
    ("test_NDCG@10", "test NDCG@10", "{:.4f}"),
    ("test_HR@10", "HR@10", "{:.4f}"),
    ("test_MRR@10", "MRR@10", "{:.4f}"),
    ("valid_cold_HR@10", "valid cold HR@10", "{:.4f}"),
    ("test_cold_HR@10", "cold HR@10", "{:.4f}"),
    ("test_cold_HR@20", "cold HR@20", "{:.4f}"),
    ("reserved_valid_NDCG@10", "reserved: valid NDCG@10", "{:.4f}"),
    ("reserved_test_NDCG@10", "reserved: test NDCG@10", "{:.4f}"),
    ("reserved_test_cold_HR@10", "reserved: cold HR@10", "{:.4f}"),
    ("reserved_test_cold_HR@20", "reserved: cold HR@20", "{:.4f}"),
)


def table(paths: list[Path]) -> str:
    """One markdown row per (protocol, label): means over the seeds found, then the published rows."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for path in sorted(paths):
        row = json.loads(path.read_text())
        groups.setdefault((row["protocol"], row["label"]), []).append(row)
    header = ["protocol", "ranker", "features", "seeds", "threads", *(title for _, title, _ in COLUMNS), "load"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (protocol, label), rows in groups.items():
        first = rows[0]
        name = f"{label}: {first['ranker']}" + (f"@{first['config']}" if first["config"] else "")
        if first["overrides"]:
            name += " " + json.dumps(first["overrides"])
        cells = [protocol, name, first["features"] or "ids only", ",".join(str(row["seed"]) for row in rows)]
        cells.append(str(first["threads"]))
        for key, _, form in COLUMNS:
            values = [row[key] for row in rows if row.get(key) is not None]
            cells.append(form.format(np.mean(values)) if values else "n/a")
        loads = [value for row in rows for value in (row["loadavg_before"][0], row["loadavg_after"][0])]
        cells.append(f"{min(loads):.1f}-{max(loads):.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    if any(protocol == "llamarec" for protocol, _ in groups):
        for name, (ndcg, recall) in PUBLISHED.items():
            cells = ["llamarec", name, "", "", "", "", "", str(ndcg), f"{recall} (Recall@10)"]
            cells += [""] * (len(header) - len(cells))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="movielens-latest-small")
    parser.add_argument("--protocol", default=None, help="named preprocessing, e.g. llamarec (default: none)")
    parser.add_argument("--run", action="append", default=[], help="LABEL=RANKER[@CONFIG][+FEATURES][:JSON]")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument(
        "--cold-start-every",
        type=int,
        default=None,
        help="also rank each content-aware fit with places every, 2 x every, ... reserved for untrained items",
    )
    parser.add_argument("--runs", type=Path, default=Path("runs/bench_content"), help="one JSON per result")
    parser.add_argument("--table", type=Path, nargs="+", default=None, help="print the table of these results")
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return
    if not args.run:
        parser.error("give at least one --run (or --table)")
    runs = [parse_run(text) for text in args.run]
    seeds = [int(seed) for seed in args.seeds.split(",")]
    protocol = args.protocol or "default"
    dataset = load_dataset(args.dataset, protocol=args.protocol)
    the_split = split(dataset)
    features_cache: dict[str, np.ndarray] = {}
    print(f"{dataset.name} ({protocol}): {dataset.n_users} users, {dataset.n_items} items", flush=True)
    for seed in seeds:
        for run in runs:
            path = args.runs / f"{protocol}__{run['label']}__seed{seed}.json"
            if path.exists():
                print(f"{run['label']} seed {seed}: already in {path}", flush=True)
                continue
            result = run_once(dataset, the_split, run, seed, features_cache, args.cold_start_every)
            row = {"protocol": protocol, "dataset": dataset.name, **result}
            write_json(path, row)
            print(
                f"{run['label']} seed {seed}: fit {row['fit_seconds']:.0f} s ({row['epochs']} epochs, best "
                f"{row['best_epoch']}), valid {row['best_valid_NDCG@10']:.4f}, test NDCG@10 {row['test_NDCG@10']:.4f} "
                f"HR@10 {row['test_HR@10']:.4f}, cold HR@10 {row['test_cold_HR@10']} "
                f"({row['test_cold_users']} users), valid cold HR@10 {row['valid_cold_HR@10']}, "
                f"load {row['loadavg_after'][0]:.2f}"
                + (
                    f"; with places for new items: valid {row['reserved_valid_NDCG@10']:.4f}, test NDCG@10 "
                    f"{row['reserved_test_NDCG@10']:.4f}, cold HR@10 {row['reserved_test_cold_HR@10']}, "
                    f"cold HR@20 {row['reserved_test_cold_HR@20']}"
                    if "reserved_test_NDCG@10" in row
                    else ""
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
