"""Time report.html for a synthetic run of 100 users x 10 items, and measure what it writes.

The run directory is written file by file (tests/evaluation/report_runs.py: seeded-noise PNGs,
the pipeline's tables, a ranking block with a training history), over a synthetic MovieLens
directory whose items mostly have posters, so every history poster becomes a thumbnail. Three
renders: the first (plots and thumbnails drawn, data set passed in as ``genrec generate`` does),
a second (thumbnails reused), and one that reloads the data set from config.json (``genrec
report RUN_DIR``). Prints JSON; timings are never asserted in tests (project rule).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_report.py [--users 100] [--items 10]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from genrec.data import load_dataset
from genrec.evaluation.report import write_report
from genrec.run_directory import RunDirectory
from tests.evaluation.report_runs import write_movielens, write_run

CATALOGUE = 1000
HISTORY = 30  # interactions per user (10 are shown)
POSTERS = [item for item in range(1, CATALOGUE + 1) if item % 4]  # three items in four have a poster


def directory_bytes(path: Path) -> tuple[int, int]:
    files = [entry for entry in path.rglob("*") if entry.is_file()]
    return sum(entry.stat().st_size for entry in files), len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--items", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        data_dir = write_movielens(root / "data", args.users, CATALOGUE, HISTORY, posters=POSTERS)
        users = list(range(1, args.users + 1))
        run_dir = write_run(root / "run", data_dir, users, args.items, items=range(1, args.items + 1))
        dataset = load_dataset(data_dir, images=data_dir / "posters")

        timings = {}
        for label, given in (("first", dataset), ("second", dataset), ("reload_dataset", None)):
            start = time.perf_counter()
            page = write_report(run_dir, given)
            timings[f"{label}_s"] = round(time.perf_counter() - start, 3)
        assets_bytes, assets_files = directory_bytes(run_dir / RunDirectory.REPORT_ASSETS)
        html = page.read_text(encoding="utf-8")
        print(
            json.dumps(
                {
                    "users": args.users,
                    "items_per_user": args.items,
                    "recommendations": args.users * args.items,
                    **timings,
                    "report_html_bytes": page.stat().st_size,
                    "report_assets_bytes": assets_bytes,
                    "report_assets_files": assets_files,
                    "generated_img_tags": html.count('<img class="generated"'),
                    "poster_img_tags": html.count('<img class="poster"'),
                    "loadavg": os.getloadavg(),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
