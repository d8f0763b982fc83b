"""A `pipeline` process killed during image generation resumes: nothing finished is redone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from prefect.settings import get_current_settings

from genrec.flows import pipeline_flow
from genrec.io import read_json
from tests.flows.prefect_api import task_runs

RESULTS = ".prefect"  # persisted Prefect task results (pickles), not outputs
GENERATION = {"image_generator": "tiny", "text_generator": "template", "encoder": "tiny"}


def params(toy_data: str, run_dir: Path) -> dict:
    settings = {"dataset": toy_data, "users": {"mode": "all"}, "k": 3, "ranker": "popular", "generation": GENERATION}
    return {"settings": settings, "run_dir": str(run_dir)}


def pngs(run_dir: Path) -> list[Path]:
    return sorted(path for path in run_dir.rglob("*.png") if not path.name.startswith("."))


def identities(run_dir: Path) -> dict[str, tuple[int, int]]:
    """PNG name -> (inode, mtime): the safety check moves flagged images to images/blocked/, which keeps both."""
    return {path.name: (path.stat().st_ino, path.stat().st_mtime_ns) for path in pngs(run_dir)}


def check_every_file(run_dir: Path) -> None:
    """Every output opens; left-over temporary files of interrupted atomic writes are hidden `.NAME.*.tmp`."""
    for path in run_dir.rglob("*"):
        if path.is_dir() or RESULTS in path.parts:
            continue
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            continue  # a write the kill interrupted: it never replaced an output
        if path.suffix == ".png":
            with Image.open(path) as image:
                image.verify()
        elif path.suffix == ".parquet":
            pd.read_parquet(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())


@pytest.mark.slow
def test_a_pipeline_killed_during_image_generation_resumes(toy_data: str, tmp_path: Path):
    reference = tmp_path / "reference"
    pipeline_flow(**params(toy_data, reference))

    crashed = tmp_path / "crashed"
    script = f"from genrec.flows import pipeline_flow\npipeline_flow(**{params(toy_data, crashed)!r})\n"
    env = {**os.environ, **get_current_settings().to_environment_variables(exclude_unset=True)}
    process = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.monotonic() + 300
    while len(pngs(crashed)) < 3:
        assert process.poll() is None, "the pipeline ended before it was killed"
        assert time.monotonic() < deadline, "no image after 300 s"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = identities(crashed)
    assert 3 <= len(finished) < len(pngs(reference)), "killed after the images were done"

    state = pipeline_flow(**params(toy_data, crashed), return_state=True)
    assert state.is_completed()
    states = {run.name.rsplit("-", 1)[0]: run.state.name for run in task_runs(state.state_details.flow_run_id)}
    assert states == {
        "select-users": "Cached",
        "encode": "Cached",
        "train": "Cached",
        "recommend": "Cached",
        "images": "Completed",
        "describe": "Completed",
        "evaluate": "Completed",
        "report": "Completed",
    }
    resumed = identities(crashed)
    assert {name: resumed[name] for name in finished} == finished  # no finished image regenerated
    check_every_file(crashed)

    assert [p.relative_to(crashed) for p in pngs(crashed)] == [p.relative_to(reference) for p in pngs(reference)]
    for path in pngs(reference):
        with Image.open(path) as expected, Image.open(crashed / path.relative_to(reference)) as resumed:
            assert expected.tobytes() == resumed.tobytes(), path.name
    for table in ("recommendations.parquet", "images.parquet", "images_baseline.parquet", "descriptions.parquet"):
        expected, resumed = pd.read_parquet(reference / table), pd.read_parquet(crashed / table)
        different = {"path", "reused"}  # absolute paths differ by run directory; reuse is what the rerun did
        columns = [column for column in expected.columns if column not in different]
        pd.testing.assert_frame_equal(expected[columns], resumed[columns])
    expected_metrics, resumed_metrics = read_json(reference / "metrics.json"), read_json(crashed / "metrics.json")
    for metrics in (expected_metrics, resumed_metrics):  # what the rerun did and how long the fit took differ
        metrics["images"].pop("generated"), metrics["images"].pop("reused")
        for timing in ("fit_seconds", "seconds_per_epoch"):
            metrics["ranking"]["fit"].pop(timing)
    assert expected_metrics == resumed_metrics
