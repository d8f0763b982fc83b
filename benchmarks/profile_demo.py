"""Where ``genrec demo``'s time goes: one in-process demo run with every stage function timed.

Wraps the pipeline functions the demo calls (the run stages, the encoder, the ranker fit and
evaluation, the image and description generators and their model loads, the report) with
timers, runs :func:`genrec.pipelines.stages.run_demo` once (the demo's settings as plain functions:
``genrec demo`` runs the same functions as tasks of the ``pipeline`` flow, whose overhead
benchmarks/bench_flows.py measures) and prints a nested table of wall
seconds (a stage's time includes the stages listed under it) and one JSON object. Run it on a
fresh install, i.e. with ``GENREC_CACHE_DIR`` (the SmolLM2 conversion and ``encode``'s default
cache) pointing at an empty directory and a new ``--out``:

    GENREC_CACHE_DIR=/tmp/fresh-cache heavy -2 python benchmarks/profile_demo.py --out /tmp/demo-profile
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

# (module, attribute): patched on the module that callers look the name up on at call time
TIMED = [
    ("genrec.pipelines.stages", "load_run_dataset"),
    ("genrec.pipelines.stages", "run_profiles"),
    ("genrec.evaluation.run_metrics", "ranking_section"),
    ("genrec.evaluation.run_metrics", "images_section"),
    ("genrec.pipelines.ranking", "split"),
    ("genrec.pipelines.ranking", "fit_ranker"),
    ("genrec.pipelines.ranking", "evaluate_ranker"),
    ("genrec.pipelines.ranking", "rank"),
    ("genrec.rankers", "create_ranker"),
    ("genrec.rankers", "load_ranker"),
    ("genrec.encoders", "create_encoder"),
    ("genrec.encoders.catalogue", "encode_items"),
    ("genrec.pipelines.encode", "encode_histories"),
    ("genrec.pipelines.encode", "preference_profile"),
    ("genrec.generators", "create_image_generator"),
    ("genrec.generators", "create_text_generator"),
    ("genrec.generators.text", "load_causal_lm"),
    ("genrec.language_models", "smollm2_directory"),
    ("genrec.pipelines.images", "generate_images"),
    ("genrec.pipelines.describe", "generate_descriptions"),
    ("genrec.pipelines.describe", "description_figures"),
]


class Timings:
    """Nested wall-clock records: (depth, name, seconds), in call order."""

    def __init__(self) -> None:
        self.rows: list[list[Any]] = []
        self.depth = 0

    def wrap(self, name: str, function: Any) -> Any:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            row = [self.depth, name, None]
            self.rows.append(row)
            self.depth += 1
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                row[2] = time.perf_counter() - start
                self.depth -= 1

        return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/profile-demo"), help="run directory (deleted first)")
    parser.add_argument("--preset", default="demo", help="a run preset (genrec list run-presets)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    load_before = os.getloadavg()
    start = time.perf_counter()
    import dataclasses

    from genrec.pipelines import stages

    timings = Timings()
    imported = time.perf_counter() - start
    for module_name, attribute in TIMED:
        module = importlib.import_module(module_name)
        setattr(
            module, attribute, timings.wrap(f"{module_name.rsplit('.', 1)[-1]}.{attribute}", getattr(module, attribute))
        )
    stages.PLAN = tuple(  # run_pipeline reads the plan at call time: each stage timed as a whole
        dataclasses.replace(stage, run=timings.wrap(f"stage {stage.name}", stage.run)) for stage in stages.PLAN
    )
    stages.run_demo(args.out, args.preset, progress=False)
    total = time.perf_counter() - start
    for depth, name, seconds in timings.rows:
        print(f"{'  ' * depth}{name:<{48 - 2 * depth}} {seconds:8.2f} s", file=sys.stderr)
    print(f"{'import genrec.pipelines.stages':<48} {imported:8.2f} s\n{'total':<48} {total:8.2f} s", file=sys.stderr)
    result = {
        "preset": args.preset,
        "cache_dir": os.environ.get("GENREC_CACHE_DIR"),
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "total_seconds": round(total, 2),
        "import_seconds": round(imported, 2),
        "stages": [{"depth": d, "name": n, "seconds": round(s, 2)} for d, n, s in timings.rows],
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
