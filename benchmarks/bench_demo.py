"""Wall time of ``genrec demo``: a first run into a new run directory, then a rerun that reuses it.

Each run is a fresh ``python -m genrec.cli demo`` process (imports included), as a user types it:
a run of the ``pipeline`` flow, on the Prefect server ``PREFECT_API_URL`` names or, without one, on
the temporary server Prefect starts for the process. The first run starts with no run directory
(so no saved ranker, no embedding cache, no images, no cached task). ``--cache-dir`` and
``--prefect-home`` make it a fresh install too: genrec's cache (``$GENREC_CACHE_DIR``, else
``~/.cache/genrec``, where the SmolLM2 GGUF is converted once) and Prefect's home (``$PREFECT_HOME``,
else ``~/.prefect``, where the temporary server's database is created) become those directories,
emptied first. Prints one JSON object: seconds of each run, their ratio, and the load average around them.

    heavy -2 python benchmarks/bench_demo.py --out runs/demo --cache-dir runs/cache --prefect-home runs/prefect \
        --json runs/demo.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from genrec.encoders.cache import CACHE_ENV
from genrec.io import write_json


def timed_demo(out: Path, preset: str, env: dict[str, str]) -> float:
    """Seconds of one ``genrec demo`` process; raises if it fails."""
    command = [sys.executable, "-m", "genrec.cli", "demo", "--out", str(out), "--preset", preset, "--no-progress"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    print(done.stdout, file=sys.stderr)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-demo"), help="run directory (deleted first)")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="genrec's cache for both runs (emptied first): a fresh install"
    )
    parser.add_argument(
        "--prefect-home", type=Path, default=None, help="PREFECT_HOME for both runs (emptied first): a fresh install"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    env = dict(os.environ)
    for directory in (args.out, args.cache_dir, args.prefect_home):
        if directory is not None and directory.exists():
            shutil.rmtree(directory)
    if args.cache_dir is not None:
        env[CACHE_ENV] = str(args.cache_dir.resolve())
    if args.prefect_home is not None:
        env["PREFECT_HOME"] = str(args.prefect_home.resolve())
    load_before = os.getloadavg()
    first = timed_demo(args.out, args.preset, env)
    load_between = os.getloadavg()
    rerun = timed_demo(args.out, args.preset, env)
    metrics = json.loads((args.out / "metrics.json").read_text(encoding="utf-8"))
    result = {
        "preset": args.preset,
        "cache_dir": env.get(CACHE_ENV),
        "prefect_home": env.get("PREFECT_HOME"),
        "prefect_api_url": env.get("PREFECT_API_URL"),  # None: Prefect's temporary server
        "first_seconds": round(first, 1),
        "rerun_seconds": round(rerun, 1),
        "rerun_share": round(rerun / first, 3),
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "loadavg_before": load_before,
        "loadavg_between": load_between,
        "loadavg_after": os.getloadavg(),
        "metrics": metrics["ranking"]["metrics"],
        "fit": {name: value for name, value in metrics["ranking"]["fit"].items() if name != "history"},
        "description_rates": metrics.get("grounding_report", {}).get("rates"),
    }
    print(json.dumps(result, indent=2))
    if args.json is not None:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
