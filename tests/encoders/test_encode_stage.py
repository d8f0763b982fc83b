"""The encode stage end to end: real posters, the pipeline functions, ``genrec encode``."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from genrec import pipelines as gp
from genrec.cli import app
from genrec.encoders import EncodeReport
from tests.conftest import write_posters


def test_posters_encode_with_their_images(movielens_small, tiny, make_dataset, tmp_path):
    rows = movielens_small.items.head(12).to_dict("records")
    posters = write_posters(tmp_path / "posters", [row["item_id"] for row in rows])
    items = [row | {"image_path": str(posters / f"{row['item_id']}.jpg")} for row in rows]
    dataset = make_dataset(items, [(1, row["item_id"], step, 4.0) for step, row in enumerate(rows)])
    report = EncodeReport()
    vectors = gp.encode_items(dataset, tiny, cache_dir=tmp_path, progress=False, report=report)
    assert vectors.shape == (12, 64)
    assert (report.with_image, report.image_fallback) == (12, 0)
    users = gp.encode_histories(dataset, vectors, method="recency")
    (profile,) = gp.preference_profile(dataset, users, vectors, encoder=tiny, top_k=3)
    assert len(profile.genres) == len(profile.visual) == 3


def test_genrec_encode_fills_the_cache_then_encodes_nothing(toy_latest_dir, tmp_path):
    runner = CliRunner()
    args = ["encode", "--dataset", str(toy_latest_dir), "--encoder", "tiny", "--no-progress"]
    args += ["--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "items.npy")]
    first = runner.invoke(app, [*args, "--json", str(tmp_path / "first.json")])
    assert first.exit_code == 0, first.output
    assert "8 encoded, 0 from cache" in first.output
    assert np.load(tmp_path / "items.npy").shape == (8, 64)
    second = runner.invoke(app, [*args, "--json", str(tmp_path / "second.json")])
    assert second.exit_code == 0, second.output
    report = json.loads((tmp_path / "second.json").read_text())
    assert (report["encoded"], report["cached"]) == (0, 8)


def test_genrec_encode_reports_unknown_encoders(toy_latest_dir):
    result = CliRunner().invoke(app, ["encode", "--dataset", str(toy_latest_dir), "--encoder", "clip-xl"])
    assert result.exit_code == 2
    assert "unknown encoder 'clip-xl'" in result.output and "tiny" in result.output
