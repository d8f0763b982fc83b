"""Synthetic run directories for the report tests and benchmarks/bench_report.py, written file by file.

No model runs: the images are seeded noise PNGs carrying the tEXt chunks ``generate_images``
writes, the tables have the columns the pipeline writes, and metrics.json holds a
``ranking_result``-shaped block. Layouts of the image tables:

- ``separate``: images.parquet (personalised) and images_baseline.parquet (``"none"``);
- ``combined``: one images.parquet holding both modes;
- ``png-only``: images.parquet lists only the baseline rows (what ``genrec generate`` wrote before
  the baseline had its own table); the personalised PNGs are found by their metadata.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from genrec.pipelines.images import noise_seed

EVIL_TITLE = "<script>document.title='pwned'</script> Evil"  # an item title with markup in it
MODEL_ID = "genrec:tiny:random-seed-0"  # how a random-weight image generator names itself


def write_movielens(directory: Path, n_users: int, n_items: int, per_user: int, posters: Sequence[int] = ()) -> Path:
    """A MovieLens-latest directory (item 3 has :data:`EVIL_TITLE`) and, for ``posters``, JPEGs in posters/."""
    directory.mkdir(parents=True, exist_ok=True)
    ratings = ["userId,movieId,rating,timestamp"]
    for user in range(1, n_users + 1):
        for step in range(per_user):
            ratings.append(f"{user},{(user * 7 + step) % n_items + 1},4.0,{1000 + 100 * user + step}")
    titles = {item: f"Movie {item} ({1990 + item % 30})" for item in range(1, n_items + 1)}
    titles[3] = f"{EVIL_TITLE} (1999)"
    movies = ["movieId,title,genres"] + [f'{item},"{title}",Drama|Comedy' for item, title in titles.items()]
    (directory / "ratings.csv").write_text("\n".join(ratings) + "\n")
    (directory / "movies.csv").write_text("\n".join(movies) + "\n")
    poster_dir = directory / "posters"
    poster_dir.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for item in posters:
        pixels = rng.integers(0, 255, size=(60, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((185, 278)).save(poster_dir / f"{item}.jpg", quality=85)
    return directory


def write_run(
    run_dir: Path,
    data_dir: Path,
    users: Sequence[int] = (1, 2),
    top_k: int = 3,
    layout: str = "separate",
    images: bool = True,
    descriptions: bool = True,
    ranking: bool = True,
    image_size: int = 64,
    items: Sequence[int] | None = None,
) -> Path:
    """A complete run directory over ``data_dir`` (from :func:`write_movielens`); flags leave parts out.

    Each user gets ``items`` (default 3, 1, 2, ...: the evil-titled item first) at ranks 1..top_k.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    items = list(items) if items is not None else [3, *[i for i in range(1, top_k + 2) if i != 3]][:top_k]
    config = {
        "dataset": f"movielens-latest:{data_dir}",
        "images": str(data_dir / "posters"),
        "preset": "tiny",
        "users": list(users),
        "top_k": top_k,
        "items": None,
        "ranker": "sasrec",
        "text_generator": "template",
        "image_generator": "tiny",
        "encoder": "tiny",
        "seed": 0,
    }
    (run_dir / "config.json").write_text(json.dumps(config))
    recs = pd.DataFrame(
        [
            {"user_id": user, "rank": rank, "item_id": item, "score": 1.0 / rank, "title": f"title of {item}"}
            for user in users
            for rank, item in enumerate(items, start=1)
        ]
    )
    recs.loc[recs["item_id"] == 3, "title"] = EVIL_TITLE
    recs.to_parquet(run_dir / "recommendations.parquet", index=False)
    if images:
        _write_images(run_dir, recs, layout, image_size)
    if descriptions:
        _write_descriptions(run_dir, recs)
    metrics: dict[str, Any] = {
        "images": {"clip_score": 21.5, "personalization_lift": 0.01, "cross_user_diversity": None, "generated": 4},
        "descriptions": {"grounding_rate": 1.0, "distinct_2": 0.8},
        "grounding_report": {"descriptions": len(recs), "template": len(recs), "blocked": 1, "blocked_outputs": []},
        "recommendations": len(recs),
        "timings": {"fit-ranker": 12.5, "generate-images": 3.25},
    }
    if ranking:
        metrics["ranking"] = ranking_block("sasrec", 0.05)
        metrics["ranking_baselines"] = {"popular": ranking_block("popular", 0.02, history=False)}
        model = run_dir / "model"
        model.mkdir(exist_ok=True)
        (model / "config.json").write_text(json.dumps({"ranker": "sasrec", "n_items": 40, "config": {"seed": 0}}))
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


def ranking_block(ranker: str, ndcg10: float, history: bool = True) -> dict[str, Any]:
    """A ``ranking_result``-shaped dict with metrics at K = 5, 10, 20 scaled from ``ndcg10``."""
    metrics = {}
    for k, scale in ((5, 0.8), (10, 1.0), (20, 1.3)):
        metrics |= {f"HR@{k}": 2 * ndcg10 * scale, f"Recall@{k}": 2 * ndcg10 * scale, f"NDCG@{k}": ndcg10 * scale}
        metrics |= {f"MRR@{k}": 0.7 * ndcg10 * scale, f"Coverage@{k}": 0.1 * scale, f"AvgPop@{k}": 200.0 / scale}
    epochs = [
        {"epoch": e, "loss": 5.0 / e, "valid_NDCG@10": ndcg10 * min(e, 4) / 4, "seconds": 1.0} for e in range(1, 7)
    ]
    return {
        "ranker": ranker,
        "dataset": "toy",
        "split": "leave-one-out",
        "seed": 0,
        "config": {"seed": 0, "epochs": 6},
        "metrics": metrics,
        "cold_start": {"n_users": 2, "HR@10": 0.0, "NDCG@10": 0.0},
        "extra": {},
        "fit_seconds": 12.5,
        "eval_seconds": 0.5,
        "epochs": 6 if history else 1,
        "best_epoch": 4 if history else 1,
        "history": epochs if history else [],
    }


def _write_images(run_dir: Path, recs: pd.DataFrame, layout: str, size: int) -> None:
    rows = {"prompt": [], "none": []}
    for record in recs.to_dict("records"):
        for mode in ("prompt", "none"):
            seed = noise_seed(record["item_id"], 0)
            path = run_dir / "images" / f"user-{record['user_id']}_item-{record['item_id']}_seed-0_{mode}.png"
            prompt = f'a poster for "{record["title"]}"'
            _png(
                path,
                {
                    "user_id": record["user_id"],
                    "item_id": record["item_id"],
                    "seed": seed,
                    "personalization": mode,
                    "prompt": prompt,
                    "model": MODEL_ID,
                },
                size,
            )
            rows[mode].append(
                {
                    "user_id": record["user_id"],
                    "item_id": record["item_id"],
                    "rank": record["rank"],
                    "seed": 0,
                    "noise_seed": seed,
                    "personalization": mode,
                    "prompt": prompt,
                    "model": MODEL_ID,
                    "reused": False,
                    "unsafe_score": np.nan,
                    "flagged": False,
                    "path": str(path),
                }
            )
    personal, baseline = pd.DataFrame(rows["prompt"]), pd.DataFrame(rows["none"])
    if layout == "separate":
        personal.to_parquet(run_dir / "images.parquet", index=False)
        baseline.to_parquet(run_dir / "images_baseline.parquet", index=False)
    elif layout == "combined":
        pd.concat([personal, baseline], ignore_index=True).to_parquet(run_dir / "images.parquet", index=False)
    elif layout == "png-only":
        baseline.to_parquet(run_dir / "images.parquet", index=False)
    else:
        raise ValueError(f"unknown layout {layout!r}; expected separate, combined or png-only")


def _png(path: Path, text: dict[str, Any], size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, str(value))
    seed = zlib.crc32(path.name.encode())
    pixels = np.random.default_rng(seed).integers(0, 255, size=(size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG", pnginfo=info)


def _write_descriptions(run_dir: Path, recs: pd.DataFrame) -> None:
    sources = ["template", "llm_retry", "blocked"]
    rows = []
    for index, record in enumerate(recs.to_dict("records")):
        source = sources[index % len(sources)]
        text = "" if source == "blocked" else f"Because you like Drama, {record['title']} <img src=x onerror=alert(1)>"
        rows.append(
            {
                "user_id": record["user_id"],
                "item_id": record["item_id"],
                "rank": record["rank"],
                "title": record["title"],
                "description": text,
                "source": source,
                "attempts": 2 if source == "llm_retry" else 1,
                "unsupported": ["year:1991"] if source == "llm_retry" else [],
                "blocked_terms": ["badword"] if source == "blocked" else [],
                "generator": "template",
            }
        )
    pd.DataFrame(rows).to_parquet(run_dir / "descriptions.parquet", index=False)
