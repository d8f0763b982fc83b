"""Prefect artifacts of a run directory: a metrics table, each user's recommendations, the report link.

The ``*_rows`` / ``*_markdown`` functions only read the run directory and build the content;
:func:`publish_run_artifacts` creates the artifacts in the current flow run. Keys name the
run directory (``genrec-<dir name>-<path hash>-metrics`` ...), so the Artifacts page keeps one history per run
directory and each flow run adds a version.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from genrec.io import read_json
from genrec.run_directory import RunDirectory

SKIPPED = frozenset({"fit", "key", "phase", "ranker"})  # metrics.json entries that are not metrics


def artifact_key(run_dir: str | Path, kind: str) -> str:
    """``genrec-<run dir name>-<hash of its full path>-<kind>``: lowercase letters, digits and dashes, as Prefect
    requires; the hash keeps ``/a/run`` and ``/b/run`` apart."""
    resolved = Path(run_dir).resolve()
    name = re.sub(r"[^a-z0-9]+", "-", resolved.name.lower()).strip("-") or "run"
    digest = hashlib.blake2b(str(resolved).encode("utf-8"), digest_size=4).hexdigest()
    return f"genrec-{name}-{digest}-{kind}"


def metrics_rows(metrics: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """One row per numeric metric of metrics.json: stage (ranking, images, ...), metric, value."""
    rows = []
    for name, value in metrics.items():
        if name in SKIPPED:
            continue
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(value, dict):
            rows += metrics_rows(value, path)
        elif isinstance(value, bool) or not isinstance(value, int | float | None):
            continue
        else:
            stage, _, metric = path.partition(".")
            metric = metric.removeprefix("metrics.")
            rows.append({"stage": stage, "metric": metric or stage, "value": None if value is None else float(value)})
    return rows


def cell(value: Any) -> str:
    """A markdown table cell: no line breaks or pipes, missing values empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).replace("|", "\\|").replace("\n", " ")


def recommendations_markdown(run_dir: str | Path) -> str:
    """Each user's recommended items with their description and image path (relative to the run dir)."""
    run_dir = Path(run_dir)
    table = pd.read_parquet(run_dir / RunDirectory.RECOMMENDATIONS)
    keys = ["user_id", "item_id"]
    if (run_dir / RunDirectory.DESCRIPTIONS).is_file():
        descriptions = pd.read_parquet(run_dir / RunDirectory.DESCRIPTIONS, columns=[*keys, "description"])
        table = table.merge(descriptions, on=keys, how="left")
    if (run_dir / RunDirectory.IMAGES).is_file():
        images = pd.read_parquet(run_dir / RunDirectory.IMAGES, columns=[*keys, "path", "flagged"])
        table = table.merge(images.drop_duplicates(keys), on=keys, how="left")
    lines = [f"# Recommendations in `{run_dir}`", ""]
    for user, rows in table.groupby("user_id", sort=False):
        lines += [f"## User {user}", "", "| rank | item | title | description | image |", "|---|---|---|---|---|"]
        for row in rows.sort_values("rank").to_dict("records"):
            image = row.get("path")
            if isinstance(image, str):
                image = f"`{Path(image).relative_to(run_dir) if Path(image).is_relative_to(run_dir) else image}`"
                image += " (flagged)" if row.get("flagged") else ""
            lines.append(
                f"| {row['rank']} | {cell(row['item_id'])} | {cell(row.get('title'))} "
                f"| {cell(row.get('description'))} | {cell(image)} |"
            )
        lines.append("")
    return "\n".join(lines)


def publish_run_artifacts(run_dir: str | Path) -> list[str]:
    """Create the run's artifacts in the current flow run (what exists of them); return their keys."""
    run_dir = Path(run_dir)
    keys = []
    if (run_dir / RunDirectory.METRICS).is_file():
        key = artifact_key(run_dir, "metrics")
        rows = metrics_rows(read_json(run_dir / RunDirectory.METRICS))
        create_table_artifact(rows, key=key, description=f"Ranking and generation metrics of {run_dir}")
        keys.append(key)
    if (run_dir / RunDirectory.RECOMMENDATIONS).is_file():
        key = artifact_key(run_dir, "recommendations")
        description = f"Each user's recommendations, descriptions and images in {run_dir}"
        create_markdown_artifact(recommendations_markdown(run_dir), key=key, description=description)
        keys.append(key)
    report = run_dir / RunDirectory.REPORT
    if report.is_file():
        key = artifact_key(run_dir, "report")
        create_link_artifact(
            report.resolve().as_uri(), link_text=f"report of {run_dir}", key=key, description="The HTML report"
        )
        keys.append(key)
    return keys
