"""The content of the run artifacts, built from a run directory's files (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from genrec.flows.artifacts import artifact_key, metrics_rows, recommendations_markdown


def test_metrics_rows_keep_numbers_and_drop_records():
    metrics = {
        "ranking": {"metrics": {"NDCG@10": 0.25}, "cold_start": {"n_users": 2}, "fit": {"epochs": 3}, "key": "ab"},
        "images": {"clip_score": None, "flagged": 1},
        "grounding_report": {"blocked_outputs": [], "blocked": 0},
        "recommendations": 6,
    }
    assert metrics_rows(metrics) == [
        {"stage": "ranking", "metric": "NDCG@10", "value": 0.25},
        {"stage": "images", "metric": "clip_score", "value": None},
        {"stage": "recommendations", "metric": "recommendations", "value": 6.0},
        {"stage": "ranking", "metric": "cold_start.n_users", "value": 2.0},
        {"stage": "images", "metric": "flagged", "value": 1.0},
        {"stage": "grounding_report", "metric": "blocked", "value": 0.0},
    ]


def test_recommendations_markdown_lists_each_users_items_descriptions_and_images(tmp_path: Path):
    run_dir = tmp_path / "My Run"
    run_dir.mkdir()
    recommendations = {"user_id": [7, 7, 9], "rank": [2, 1, 1], "item_id": [3, 5, 3], "title": ["C", "E|x", "C"]}
    pd.DataFrame(recommendations).to_parquet(run_dir / "recommendations.parquet")
    descriptions = {"user_id": [7, 7, 9], "item_id": [3, 5, 3], "description": ["a\nb", "e", "c"]}
    pd.DataFrame(descriptions).to_parquet(run_dir / "descriptions.parquet")
    image = str(run_dir / "images" / "blocked" / "user-9_item-3.png")
    pd.DataFrame({"user_id": [9], "item_id": [3], "path": [image], "flagged": [True]}).to_parquet(
        run_dir / "images.parquet"
    )
    lines = recommendations_markdown(run_dir).splitlines()
    assert lines.index("## User 7") < lines.index("## User 9")
    user7 = lines[lines.index("## User 7") + 2 : lines.index("## User 9")]
    assert user7 == ["1. **E\\|x** (item 5)", "   e", "2. **C** (item 3)", "   a b", ""]
    user9 = lines[lines.index("## User 9") + 2 :]
    assert user9 == ["1. **C** (item 3)", "   c", "   image: `images/blocked/user-9_item-3.png` (flagged)"]
    key = artifact_key(run_dir, "metrics")
    assert key.startswith("genrec-my-run-") and key.endswith("-metrics")
    twin = tmp_path / "elsewhere" / "My Run"  # the same last name in another place: another history
    assert artifact_key(twin, "metrics") != key
