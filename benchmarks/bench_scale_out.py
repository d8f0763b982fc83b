"""Scale-out on Ray: catalogue encoding and image generation throughput with 1 and 2 Ray workers (issue 17).

Both stages run as the ``pipeline`` flow maps them (:mod:`genrec.flows.batches`), under a local
Prefect test server and on a local Ray cluster of ``--workers`` CPUs (one task per worker at a
time, one torch thread per task). For each worker count the cluster is started, every worker
imports genrec and builds the encoder and the image generator once (untimed warm-up), then:

- encode: the whole bundled catalogue (movielens-latest-small, 9,742 items; item texts, no
  posters) through the tiny CLIP in ``--batches`` mapped tasks and their merge, into a fresh run
  directory; items per second.
- generate: ``--users`` sampled users x the ``--items`` given (default Toy Story, Star Wars, The
  Matrix: no ranker is trained), a personalised image and its non-personalised baseline each
  (tiny diffusion model) plus template descriptions, in ``--batches`` mapped tasks and their
  merge, reading an embedding cache filled beforehand; images per second.

The ratio is the 2-worker throughput over the 1-worker one.

    heavy -2 python benchmarks/bench_scale_out.py --json benchmarks/results/scale_out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from genrec.io import write_json

ENCODER, IMAGE_GENERATOR, TEXT_GENERATOR = "tiny", "tiny", "template"


def warm_up(workers: int) -> None:
    """Every worker process imports the batch tasks and builds the tiny encoder and image generator once."""
    import ray

    @ray.remote(num_cpus=1)
    def build() -> int:
        import genrec.flows.batches  # noqa: F401  (what every task imports first)
        from genrec.encoders import create_encoder
        from genrec.generators import create_image_generator

        create_encoder(ENCODER)
        create_image_generator(IMAGE_GENERATOR)
        time.sleep(2)  # hold this worker so the next build lands on another one
        return os.getpid()

    pids = ray.get([build.remote() for _ in range(workers)])
    if len(set(pids)) != workers:
        raise RuntimeError(f"warm-up reached {len(set(pids))} of {workers} workers")


def encode_flow_fn(dataset: str, run_dir: str, batches: int) -> Path:
    from genrec.flows.batches import batch_tasks

    tasks = batch_tasks(run_dir)
    encoded = tasks.encode_items.map(dataset, ENCODER, run_dir, list(range(batches)), batches, None)
    return tasks.merge_items.submit(ENCODER, run_dir, encoded).result()


def generate_flow_fn(dataset: str, recommendations: str, run_dir: str, batches: int) -> Any:
    from genrec.flows.batches import generate_in_batches

    future = generate_in_batches(
        Path(recommendations), dataset, run_dir, IMAGE_GENERATOR, TEXT_GENERATOR, ENCODER, 0, None, batches
    )
    return future.result()


def measure(dataset: str, workers: int, batches: int, users: int, items: list[int], root: Path) -> dict[str, Any]:
    import pandas as pd
    import ray
    from prefect import flow

    from genrec.flows.runners import TaskRunnerConfig, create_task_runner
    from genrec.pipelines import run as gr

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)  # the runner joins this cluster
    try:
        warm_up(workers)
        runner = create_task_runner(TaskRunnerConfig(kind="ray", workers=workers))
        encode = flow(name="bench-encode", task_runner=runner)(encode_flow_fn)
        generate = flow(name="bench-generate", task_runner=runner)(generate_flow_fn)

        encode_dir = root / f"encode-{workers}"
        start = time.perf_counter()
        encode(dataset, str(encode_dir), batches)
        encode_seconds = time.perf_counter() - start

        gen_dir = root / f"generate-{workers}"
        gen_dir.mkdir()
        shutil.copytree(encode_dir / gr.CACHE_DIR, gen_dir / gr.CACHE_DIR)  # the catalogue is encoded already
        chosen = gr.select_users(dataset, sample=users, seed=0)
        recommendations = gr.recommend_items(dataset, gen_dir, chosen, items)
        start = time.perf_counter()
        generate(dataset, str(recommendations), str(gen_dir), batches)
        generate_seconds = time.perf_counter() - start
        images = len(pd.read_parquet(gen_dir / "images.parquet")) + len(
            pd.read_parquet(gen_dir / "images_baseline.parquet")
        )
    finally:
        ray.shutdown()
    n_items = gr._load(dataset).n_items
    return {
        "workers": workers,
        "batches": batches,
        "encode_seconds": encode_seconds,
        "items": n_items,
        "items_per_second": n_items / encode_seconds,
        "generate_seconds": generate_seconds,
        "images": images,
        "images_per_second": images / generate_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="movielens-latest-small")
    parser.add_argument("--items", type=int, nargs="+", default=[1, 260, 2571], help="given items (no ranker)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, default=4, help="mapped tasks per stage (same for every worker count)")
    parser.add_argument("--users", type=int, default=128)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    os.environ["OMP_NUM_THREADS"] = "1"  # one torch thread per Ray task: workers, not threads, are compared
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ["GENREC_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-scale-out-cache-")
    from prefect.testing.utilities import prefect_test_harness

    root = Path(tempfile.mkdtemp(prefix="bench-scale-out-"))
    rows = []
    with prefect_test_harness(server_startup_timeout=180):
        for workers in args.workers:
            row = measure(args.dataset, workers, args.batches, args.users, args.items, root)
            rows.append(row)
            print(json.dumps(row), flush=True)
    shutil.rmtree(root, ignore_errors=True)
    result: dict[str, Any] = {"dataset": args.dataset, "runs": rows, "load_average_end": os.getloadavg()}
    by_workers = {row["workers"]: row for row in rows}
    if 1 in by_workers and 2 in by_workers:
        result["encode_ratio_2_over_1"] = by_workers[2]["items_per_second"] / by_workers[1]["items_per_second"]
        result["generate_ratio_2_over_1"] = by_workers[2]["images_per_second"] / by_workers[1]["images_per_second"]
    print(json.dumps({key: value for key, value in result.items() if key != "runs"}))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
