"""Image generation: genrec's overhead over a bare diffusers call, images/s and peak memory.

Prints figures only; timings are never asserted in tests (project rule). One preset per run
(a fresh process), so the peak memory is that preset's own.

1. overhead: the same prompts, seeds, model, steps and batch size run (a) as bare
   ``pipeline(**call_arguments)`` calls, (b) through ``ImageGenerator.generate`` and (c) through
   ``generate_images`` (prompt building from the catalogue and profiles, grouping, in memory)
   and (d) ``generate_images`` writing PNGs with metadata atomically; interleaved repeats,
   median wall and CPU seconds side by side (target: (c) <= 5% over (a));
2. images/s of ``generate_images`` and peak RSS.

    .venv/bin/python benchmarks/bench_image_generation.py --preset tiny --json tiny.json
    .venv/bin/python benchmarks/bench_image_generation.py --preset standard --random-weights \
        --users 1 --items 2 --batch-size 1 --repeats 3 --json sd-turbo.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch


def timed(work: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--random-weights", action="store_true", help="build the preset's architecture, no download")
    parser.add_argument("--users", type=int, default=4, help="users (ml-latest-small ids 1..N)")
    parser.add_argument("--items", type=int, default=4, help="recommended items per user")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=None, help="default: the preset's")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from genrec.data import load_dataset
    from genrec.generators import create_image_generator
    from genrec.pipelines.images import generate_images, noise_seed

    torch.set_num_threads(args.threads)
    dataset = load_dataset("movielens-latest-small")
    # Prompt personalisation without an adapter: the bare pipeline call then takes the very same arguments.
    overrides = {"batch_size": args.batch_size, "personalization": "prompt", "ip_adapter": None}
    if args.steps is not None:
        overrides["steps"] = args.steps
    start = time.perf_counter()
    generator = create_image_generator(args.preset, overrides, pretrained=not args.random_weights)
    build_seconds = time.perf_counter() - start
    rss_after_build = peak_rss_mib()

    # Popular items for every user, with a different profile per user so prompts differ.
    items = dataset.items["item_id"].iloc[: args.items].tolist()
    users = dataset.user_ids[: args.users].tolist()
    genres = sorted({genre for row in dataset.items["genres"] for genre in row})
    recs = pd.DataFrame(
        [(u, i, r + 1) for u in users for r, i in enumerate(items)], columns=["user_id", "item_id", "rank"]
    )
    profiles = {user: {"genres": [genres[n % len(genres)]], "visual": ["neon lights"]} for n, user in enumerate(users)}
    table = generate_images(generator, recs, profiles, dataset, progress=False)  # warm-up, and the exact prompts
    prompts, seeds = table["prompt"].tolist(), [noise_seed(item, 0) for item in table["item_id"]]
    negatives = table["negative_prompt"].tolist()

    def bare() -> None:
        with torch.inference_mode():
            for start in range(0, len(prompts), args.batch_size):
                span = slice(start, start + args.batch_size)
                generator.pipeline(**generator.call_arguments(prompts[span], seeds[span], negatives[span]))

    out_dir = Path(tempfile.mkdtemp(prefix="bench_images_"))
    runs = {
        "bare_diffusers": bare,
        "generator_generate": lambda: generator.generate(prompts, seeds, negatives),
        "generate_images": lambda: generate_images(generator, recs, profiles, dataset, progress=False),
        # A fresh directory per repeat, so nothing is reused: the cost of writing PNGs atomically.
        "generate_images_png": lambda: generate_images(
            generator, recs, profiles, dataset, out_dir / str(time.perf_counter_ns()), progress=False
        ),
    }
    walls: dict[str, list[float]] = {name: [] for name in runs}
    cpus: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(args.repeats):
        order = list(runs) if repeat % 2 == 0 else list(reversed(runs))  # interleaved, alternating order
        for name in order:
            wall, cpu = timed(runs[name])
            walls[name].append(wall)
            cpus[name].append(cpu)

    n_images = len(prompts)
    bare_wall, bare_cpu = statistics.median(walls["bare_diffusers"]), statistics.median(cpus["bare_diffusers"])
    result = {
        "preset": args.preset,
        "model": generator.model_id,
        "size": f"{generator.width}x{generator.height}",
        "steps": generator.config.steps,
        "batch_size": args.batch_size,
        "images_per_run": n_images,
        "repeats": args.repeats,
        "threads": args.threads,
        "build_seconds": build_seconds,
        "median_wall_seconds": {name: statistics.median(values) for name, values in walls.items()},
        "median_cpu_seconds": {name: statistics.median(values) for name, values in cpus.items()},
        "overhead_wall_pct": {
            name: 100 * (statistics.median(values) / bare_wall - 1)
            for name, values in walls.items()
            if name != "bare_diffusers"
        },
        "overhead_cpu_pct": {
            name: 100 * (statistics.median(values) / bare_cpu - 1)
            for name, values in cpus.items()
            if name != "bare_diffusers"
        },
        "images_per_second": n_images / statistics.median(walls["generate_images"]),
        "peak_rss_mib_after_build": rss_after_build,
        "peak_rss_mib": peak_rss_mib(),
    }
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
