"""Time to quality: configurations fitted side by side on the same data and split, in one run.

For each configuration: seconds per epoch (training + validation), epochs to the best
validation NDCG@10, seconds to first reach 90% and 100% of the final (best, restored)
validation NDCG@10, and test NDCG@10 / HR@10 / MRR@10, all read from ``FitReport.history``
and the benchmark result. With ``--bf16-parity`` each fitted sasrec/hstu model also scores the
first 256 test users under CPU bf16 autocast and reports the largest difference from fp32.

    python benchmarks/bench_time_to_quality.py --protocol llamarec --seed 0 \\
        --run default=sasrec --run 'sampled=sasrec:{"loss": "sampled", "negatives": 1024}' \\
        --set epochs=10 --json runs/ttq.json

``--run LABEL=RANKER[@NAMED_CONFIG][:JSON_OVERRIDES]``; ``--set key=value`` applies to every run.
``--table A.json B.json ...`` prints, instead of fitting, one markdown row per (protocol, label) of
those outputs: the mean over the seeds found (their count in the seeds column).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from genrec.config import parse_overrides
from genrec.data import load_dataset
from genrec.evaluation import split
from genrec.io import write_json
from genrec.pipelines.ranking import build_ranker, fit_and_evaluate
from genrec.rankers.sasrec import SASRecRanker, padded_times


def parse_run(text: str) -> tuple[str, str, str | None, dict]:
    """``LABEL=RANKER[@CONFIG][:JSON]`` -> (label, ranker, config, overrides)."""
    label, sep, rest = text.partition("=")
    if not sep or not label or not rest:
        raise SystemExit(f"--run expects LABEL=RANKER[@CONFIG][:JSON], got {text!r}")
    head, _, overrides = rest.partition(":")
    ranker, _, config = head.partition("@")
    return label, ranker, config or None, json.loads(overrides) if overrides else {}


def seconds_to(history: list[dict], target: float) -> float | None:
    """Cumulative seconds (training + validation) until validation NDCG@10 first reaches ``target``."""
    elapsed = np.cumsum([row["seconds"] for row in history])
    reached = [i for i, row in enumerate(history) if row.get("valid_NDCG@10", float("-inf")) >= target]
    return float(elapsed[reached[0]]) if reached else None


def seconds_text(seconds: float | None) -> str:
    """``None`` where the history has no per-epoch validation (a seed ensemble records one figure per member)."""
    return "n/a" if seconds is None else f"{seconds:.0f} s"


def bf16_parity(ranker: SASRecRanker, history) -> dict:
    """fp32 scores vs CPU bf16-autocast scores of the same model on one fixed batch."""
    fp32 = ranker.score(history)  # [B, n_items]
    tokens = history.padded(ranker.config.max_len)
    times = padded_times(history, ranker.config.max_len)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        table = ranker.module.item_table()
        bf16 = (ranker.module(tokens, times, table)[:, -1] @ table[1:].T).float()
    top_fp32, top_bf16 = fp32.topk(10).indices, bf16.topk(10).indices
    overlap = np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(top_fp32, top_bf16, strict=True)])
    return {
        "max_abs_diff": float((fp32 - bf16).abs().max()),
        "score_scale": float(fp32.abs().max()),
        "top10_overlap": float(overlap),
        "users": len(history),
    }


TABLE_COLUMNS = (
    ("threads", "threads", "{:.0f}"),
    ("seconds_per_epoch", "s / epoch", "{:.1f}"),
    ("best_epoch", "epochs to best", "{:.1f}"),
    ("epochs", "epochs run", "{:.1f}"),
    ("seconds_to_90", "s to 90%", "{:.0f}"),
    ("seconds_to_100", "s to 100%", "{:.0f}"),
    ("fit_seconds", "fit s", "{:.0f}"),
    ("best_valid_NDCG@10", "valid NDCG@10", "{:.4f}"),
    ("test_NDCG@10", "test NDCG@10", "{:.4f}"),
    ("test_HR@10", "HR@10", "{:.4f}"),
    ("test_MRR@10", "MRR@10", "{:.4f}"),
)


def table(paths: list[Path]) -> str:
    """Markdown table of bench outputs: one row per (protocol, label), means over the seeds found."""
    groups: dict[tuple[str, str], list[tuple[int, dict]]] = {}
    for path in paths:
        output = json.loads(path.read_text())
        for row in output["runs"]:
            groups.setdefault((output["protocol"] or "default", row["label"]), []).append((output["seed"], row))
    header = ["protocol", "config", "seeds", *(title for _, title, _ in TABLE_COLUMNS), "load after"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (protocol, label), rows in groups.items():
        cells = [protocol, label, ",".join(str(seed) for seed, _ in sorted(rows, key=lambda pair: pair[0]))]
        for key, _, form in TABLE_COLUMNS:
            values = [row[key] for _, row in rows if row.get(key) is not None]
            cells.append(form.format(np.mean(values)) if values else "n/a")
        loads = [row["loadavg_after"][0] for _, row in rows if "loadavg_after" in row]
        cells.append(f"{min(loads):.1f}-{max(loads):.1f}" if loads else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="movielens-latest-small")
    parser.add_argument("--protocol", default=None, help="named preprocessing, e.g. llamarec")
    parser.add_argument("--run", action="append", default=[], help="LABEL=RANKER[@CONFIG][:JSON]")
    parser.add_argument("--set", action="append", default=[], help="key=value for every run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bf16-parity", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="written after every run")
    parser.add_argument("--table", type=Path, nargs="+", default=None, help="print the table of these outputs")
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return
    if not args.run:
        parser.error("give at least one --run (or --table)")

    dataset = load_dataset(args.dataset, protocol=args.protocol)
    the_split = split(dataset)
    common = parse_overrides(args.set)
    rows = []
    for text in args.run:
        label, name, config, overrides = parse_run(text)
        ranker = build_ranker(name, config, {**common, **overrides}, args.seed)
        result = fit_and_evaluate(dataset, the_split, ranker, progress=False)
        history, best = result["history"], result["best_valid_NDCG@10"]
        row = {
            "label": label,
            "ranker": name,
            "config": config,
            "overrides": {**common, **overrides},
            "threads": torch.get_num_threads(),
            "seconds_per_epoch": result["seconds_per_epoch"],
            "epochs": result["epochs"],
            "best_epoch": result["best_epoch"],
            "best_valid_NDCG@10": best,
            "seconds_to_90": seconds_to(history, 0.9 * best),
            "seconds_to_100": seconds_to(history, best),
            "fit_seconds": result["fit_seconds"],
            "loadavg_after": os.getloadavg(),
            **{f"test_{k}": result["metrics"][k] for k in ("NDCG@10", "HR@10", "MRR@10")},
            "history": history,
        }
        if args.bf16_parity and isinstance(ranker, SASRecRanker):
            row["bf16_parity"] = bf16_parity(ranker, the_split.test.history.rows(np.arange(256)))
        rows.append(row)
        print(
            f"{label}: {row['seconds_per_epoch']:.1f} s/epoch, best epoch {row['best_epoch']}/{row['epochs']}, "
            f"valid {best:.4f}, to 90% {seconds_text(row['seconds_to_90'])}, "
            f"to 100% {seconds_text(row['seconds_to_100'])}, "
            f"test NDCG@10 {row['test_NDCG@10']:.4f} HR@10 {row['test_HR@10']:.4f} MRR@10 {row['test_MRR@10']:.4f}, "
            f"fit {row['fit_seconds']:.0f} s, load {row['loadavg_after'][0]:.2f}"
            + (f", bf16 {row['bf16_parity']}" if "bf16_parity" in row else ""),
            flush=True,
        )
        if args.json is not None:
            write_json(
                args.json,
                {
                    "dataset": dataset.name,
                    "protocol": args.protocol,
                    "seed": args.seed,
                    "loadavg_start": LOAD,
                    "runs": rows,
                },
            )
    print(f"load average at start {LOAD}, at end {os.getloadavg()}")


LOAD = os.getloadavg()

if __name__ == "__main__":
    main()
