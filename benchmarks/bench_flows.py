"""Prefect overhead: the `pipeline` flow against the same pipeline functions in a plain loop.

Both sides run the plan of genrec.pipelines.stages (select users -> encode -> train -> recommend ->
images -> describe -> evaluate -> report), with the same settings (tiny presets: tiny CLIP encoder,
tiny diffusion model, template descriptions; the popular ranker so that generation, not a fit, dominates), each into a
fresh run directory (cold) and then again into the same one (warm: the plain loop reuses the
finished outputs, the flow's tasks are all cached). Runs alternate between the two sides; the
script prints the median of each and the flow's overhead in percent, and each run's CPU seconds
in this process and in the Prefect server (more wall time at equal CPU is waiting, not work). The
flow runs against a temporary local Prefect server (prefect_test_harness), started once and not
timed.

    heavy -2 python benchmarks/bench_flows.py --repeats 3 --json benchmarks/results/flows.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from genrec.io import write_json

# The test server's start (a new SQLite database, migrated) outlasted Prefect's default 30 s under load here.
SERVER_STARTUP_SECONDS = 180


def plain_loop(run_dir: str, settings: dict[str, Any]) -> None:
    from genrec.pipelines.settings import RunSettings
    from genrec.pipelines.stages import run_pipeline

    run_pipeline(RunSettings.model_validate(settings), run_dir, progress=False)


def flow(run_dir: str, settings: dict[str, Any]) -> None:
    from genrec.flows import pipeline_flow

    state = pipeline_flow(settings=settings, run_dir=run_dir, progress=False, return_state=True)
    if not state.is_completed():
        raise RuntimeError(f"the pipeline flow ended {state.name}: {state.message}")


def children_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process's live child processes (the Prefect test server).

    Read from /proc (Linux); 0.0 elsewhere.
    """
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def timed(function, run_dir: str, settings: dict[str, Any]) -> tuple[float, float, float]:
    """(wall seconds, this process's CPU seconds, its child processes' CPU seconds) of one run."""
    start, cpu, children = time.perf_counter(), os.times(), children_cpu_seconds()
    function(run_dir, settings)
    end = os.times()
    own = end.user + end.system - cpu.user - cpu.system
    return time.perf_counter() - start, own, children_cpu_seconds() - children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="movielens-latest-small")
    parser.add_argument("--sample", type=int, default=5, help="users per run (a seeded sample)")
    parser.add_argument("--k", type=int, default=3, help="items per user")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    settings = {
        "dataset": args.dataset,
        "ranker": "popular",
        "users": {"mode": "sample", "sample": args.sample},
        "k": args.k,
        "generation": {"image_generator": "tiny", "text_generator": "template", "encoder": "tiny"},
        "seed": 0,
    }
    from prefect.testing.utilities import prefect_test_harness

    load_start = os.getloadavg()

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    times: dict[str, list[float]] = {"plain cold": [], "flow cold": [], "plain warm": [], "flow warm": []}
    cpu: dict[str, list[float]] = {name: [] for name in times}  # this process
    server_cpu: dict[str, list[float]] = {name: [] for name in times}  # the test server (a child process)
    harness = prefect_test_harness(server_startup_timeout=SERVER_STARTUP_SECONDS)
    with tempfile.TemporaryDirectory(prefix="bench-flows-") as root, harness:
        # one untimed run of each side: imports, the first model builds and the server's first requests
        plain_loop(f"{root}/warmup-plain", settings)
        flow(f"{root}/warmup-flow", settings)
        for repeat in range(args.repeats):
            order = [("plain", plain_loop), ("flow", flow)]
            for side, function in order if repeat % 2 == 0 else order[::-1]:
                run_dir = f"{root}/{side}-{repeat}"
                for phase in ("cold", "warm"):
                    wall, own, server = timed(function, run_dir, settings)
                    times[f"{side} {phase}"].append(wall)
                    cpu[f"{side} {phase}"].append(own)
                    server_cpu[f"{side} {phase}"].append(server)
    medians = {name: statistics.median(values) for name, values in times.items()}
    overhead = {phase: 100 * (medians[f"flow {phase}"] / medians[f"plain {phase}"] - 1) for phase in ("cold", "warm")}

    def listed(values: list[float], digits: int) -> str:
        return ", ".join(f"{value:.{digits}f}" for value in values)

    for name, values in times.items():
        print(
            f"{name:>11}: median {medians[name]:.2f} s ({listed(values, 2)}); "
            f"CPU s: process {listed(cpu[name], 1)}, server {listed(server_cpu[name], 1)}"
        )
    for phase, percent in overhead.items():
        seconds = medians[f"flow {phase}"] - medians[f"plain {phase}"]
        print(f"flow overhead, {phase}: {percent:+.1f}% ({seconds:+.2f} s)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "settings": settings,
            "repeats": args.repeats,
            "seconds": times,
            "process_cpu_seconds": cpu,
            "server_cpu_seconds": server_cpu,
            "threads": os.environ.get("OMP_NUM_THREADS"),
            "loadavg_start": load_start,
            "median_seconds": medians,
            "overhead_percent": overhead,
            "loadavg_end": os.getloadavg(),
        }
        write_json(args.json, result)


if __name__ == "__main__":
    main()
