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

The ratio is the 2-worker throughput over the 1-worker one. To say where the time goes, each stage
also reports every task's seconds (for Prefect: in its Running state, from the API) and the CPU
seconds each kind of process used during it (Ray task workers, Ray's daemons, the Prefect server,
this driver), sampled with psutil before and after the stage. ``--orchestration ray`` runs the
same pipeline functions (:mod:`genrec.pipelines.batches`) as plain Ray tasks with no Prefect, to
tell Ray's scaling from Prefect's cost per task.

    heavy -2 python benchmarks/bench_scale_out.py --json benchmarks/results/scale_out.json
"""

from __future__ import annotations

import argparse
import functools
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


def process_kind(process: Any) -> str:
    cmdline = " ".join(process.info["cmdline"] or [])
    if process.info["pid"] == os.getpid():
        return "driver"
    if cmdline.startswith("ray::"):
        return "ray task workers"
    if "ray" in cmdline and ("raylet" in cmdline or "gcs_server" in cmdline or "/ray/" in cmdline):
        return "ray daemons"
    if "prefect" in cmdline or "uvicorn" in cmdline:
        return "prefect server"
    return "other"


def cpu_seconds_by_process() -> dict[int, tuple[str, float]]:
    import psutil

    seconds = {}
    for process in psutil.process_iter(["pid", "cmdline", "cpu_times"]):
        times = process.info["cpu_times"]
        if times is not None:
            seconds[process.info["pid"]] = (process_kind(process), times.user + times.system)
    return seconds


def cpu_seconds_between(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds per kind of process between two snapshots (processes that ended in between are missed)."""
    used: dict[str, float] = {}
    for pid, (kind, seconds) in after.items():
        used[kind] = used.get(kind, 0.0) + seconds - before.get(pid, (kind, 0.0))[1]
    return {kind: round(seconds, 2) for kind, seconds in sorted(used.items())}


def task_run_seconds(flow_state: Any) -> dict[str, list[float]]:
    """Seconds each task run of a finished flow run spent Running, by task name, in start order."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_state.state_details.flow_run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC,
        )
    seconds: dict[str, list[float]] = {}
    for run in runs:
        name = run.name.rsplit("-", 1)[0]  # a task run is named after its task plus a run key
        seconds.setdefault(name, []).append(round(run.total_run_time.total_seconds(), 2))
    return seconds


def measured(run: Any, *args: Any) -> tuple[Any, float, dict[str, float]]:
    """``run(*args)``, its wall seconds and the CPU seconds by process kind while it ran."""
    before = cpu_seconds_by_process()
    result, seconds = timed_call(run, *args)
    return result, seconds, cpu_seconds_between(before, cpu_seconds_by_process())


def timed_stage(run_flow: Any, *args: Any) -> dict[str, Any]:
    """Wall seconds, per-task Running seconds and CPU seconds by process kind of one flow run."""
    state, seconds, cpu = measured(functools.partial(run_flow, return_state=True), *args)
    state.result()  # raises if the flow run failed
    return {"seconds": seconds, "task_run_seconds": task_run_seconds(state), "cpu_seconds": cpu}


def timed_call(function: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    return function(*args), time.perf_counter() - start


def timed_ray_stage(run_stage: Any, *args: Any) -> dict[str, Any]:
    """The same figures as :func:`timed_stage` for a stage run as plain Ray tasks."""
    task_seconds, seconds, cpu = measured(run_stage, *args)
    return {"seconds": seconds, "task_run_seconds": task_seconds, "cpu_seconds": cpu}


def run_settings(dataset: str, users: int = 1, items: list[int] | None = None) -> Any:
    """The settings of the measured stages: the tiny generators, given items (no ranker)."""
    from genrec.pipelines.settings import RunSettings

    generation = {"encoder": ENCODER, "image_generator": IMAGE_GENERATOR, "text_generator": TEXT_GENERATOR}
    values = {"dataset": dataset, "users": {"mode": "sample", "sample": users}, "items": items or [1]}
    return RunSettings.model_validate(values | {"generation": generation})


def ray_encode(settings: Any, run_dir: str, batches: int) -> dict[str, list[float]]:
    import ray

    from genrec.pipelines import batches as gb

    remote = ray.remote(num_cpus=1)(timed_call)
    parts = ray.get([remote.remote(gb.encode_items_batch, run_dir, settings, b, batches) for b in range(batches)])
    merged = timed_call(gb.merge_item_batches, run_dir, settings, [path for path, _ in parts])
    return {"encode-items-batch": [round(t, 2) for _, t in parts], "merge-item-batches": [round(merged[1], 2)]}


def ray_generate(settings: Any, run_dir: str, batches: int) -> dict[str, list[float]]:
    import ray

    from genrec.pipelines import batches as gb

    seconds = ray_encode(settings, run_dir, batches)
    remote = ray.remote(num_cpus=1)(timed_call)
    parts = ray.get([remote.remote(gb.generate_batch, run_dir, settings, b, batches) for b in range(batches)])
    merged = timed_call(gb.merge_generated_batches, run_dir, settings, [path for path, _ in parts])
    return seconds | {
        "generate-batch": [round(t, 2) for _, t in parts],
        "merge-generated-batches": [round(merged[1], 2)],
    }


def encode_flow_fn(settings: Any, run_dir: str, batches: int) -> Path:
    from genrec.flows.batches import encode_in_batches

    return encode_in_batches(run_dir, settings, batches, after=[]).result()


def generate_flow_fn(settings: Any, run_dir: str, batches: int) -> Any:
    from genrec.flows.batches import encode_in_batches, generate_in_batches

    encoded = encode_in_batches(run_dir, settings, batches, after=[])
    return generate_in_batches(run_dir, settings, batches, after=[encoded]).result()


def measure(
    dataset: str, workers: int, batches: int, users: int, items: list[int], root: Path, orchestration: str
) -> dict[str, Any]:
    import pandas as pd
    import ray
    from prefect import flow

    from genrec.flows.runners import RAY_WORKER_RUNTIME_ENV, TaskRunnerConfig, create_task_runner
    from genrec.pipelines import stages
    from genrec.run_directory import RunDirectory

    # the runner joins this cluster, so it gets the runner's worker environment here
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, runtime_env=RAY_WORKER_RUNTIME_ENV)
    try:
        warm_up(workers)
        if orchestration == "prefect":
            runner = create_task_runner(TaskRunnerConfig(kind="ray", workers=workers))
            encode = functools.partial(timed_stage, flow(name="bench-encode", task_runner=runner)(encode_flow_fn))
            generate = functools.partial(timed_stage, flow(name="bench-generate", task_runner=runner)(generate_flow_fn))
        else:
            encode, generate = (
                functools.partial(timed_ray_stage, ray_encode),
                functools.partial(timed_ray_stage, ray_generate),
            )

        settings = run_settings(dataset, users, items)
        encode_dir = root / f"encode-{workers}"
        encoded = encode(settings, str(encode_dir), batches)

        gen_dir = root / f"generate-{workers}"
        gen_dir.mkdir()
        shutil.copytree(encode_dir / RunDirectory.CACHE, gen_dir / RunDirectory.CACHE)  # the catalogue is encoded
        stages.select_users(gen_dir, settings, progress=False)
        stages.recommend(gen_dir, settings, progress=False)
        generated = generate(settings, str(gen_dir), batches)
        images = len(pd.read_parquet(gen_dir / "images.parquet")) + len(
            pd.read_parquet(gen_dir / "images_baseline.parquet")
        )
    finally:
        ray.shutdown()
    n_items = stages.load_run_dataset(run_settings(dataset)).n_items
    return {
        "orchestration": orchestration,
        "workers": workers,
        "batches": batches,
        "encode_seconds": encoded["seconds"],
        "items": n_items,
        "items_per_second": n_items / encoded["seconds"],
        "encode_task_run_seconds": encoded["task_run_seconds"],
        "encode_cpu_seconds": encoded["cpu_seconds"],
        "generate_seconds": generated["seconds"],
        "images": images,
        "images_per_second": images / generated["seconds"],
        "generate_task_run_seconds": generated["task_run_seconds"],
        "generate_cpu_seconds": generated["cpu_seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="movielens-latest-small")
    parser.add_argument("--items", type=int, nargs="+", default=[1, 260, 2571], help="given items (no ranker)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, default=4, help="mapped tasks per stage (same for every worker count)")
    parser.add_argument("--users", type=int, default=128)
    parser.add_argument(
        "--orchestration",
        choices=["prefect", "ray"],
        default="prefect",
        help="the pipeline flow's tasks on the Ray task runner, or the same functions as plain Ray tasks",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ["GENREC_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-scale-out-cache-")
    from prefect.testing.utilities import prefect_test_harness

    root = Path(tempfile.mkdtemp(prefix="bench-scale-out-"))
    rows = []
    with prefect_test_harness(server_startup_timeout=180):
        for workers in args.workers:
            row = measure(args.dataset, workers, args.batches, args.users, args.items, root, args.orchestration)
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
