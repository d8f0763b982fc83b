"""Prefect artifacts of a run directory, readable in the Prefect UI itself: the results and a metrics table.

- ``results`` (markdown): the headline figures, then each user's recommended items with their
  description, its grounding status and the image's path, and where report.html lies (as text:
  browsers refuse ``file://`` links from a web page);
- ``metrics`` (table): the headline figures first, then every other number of metrics.json;
  configuration (generator configs, reuse keys, fit records) is left out.

The ``*_rows`` / ``*_markdown`` functions only read the run directory and build the content;
:func:`publish_run_artifacts` creates the artifacts in the current flow run. Keys name the run
directory (``genrec-<dir name>-<path hash>-results`` ...), so the Artifacts page keeps one history
per run directory and each flow run adds a version.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from genrec.io import read_json
from genrec.run_directory import RunDirectory

# metrics.json entries that are records or configuration, not figures
SKIPPED = frozenset({"fit", "key", "phase", "ranker", "generator", "config", "blocked_outputs", "extra"})
# (stage, metric) of the headline figures, in the order a reader looks for them
HEADLINE = (
    ("ranking", "NDCG@10"),
    ("ranking", "HR@10"),
    ("ranking", "MRR@10"),
    ("ranking", "cold_start.HR@10"),
    ("images", "clip_score"),
    ("images", "personalization_lift"),
    ("descriptions", "llm_pass_rate"),
    ("descriptions", "final_pass_rate"),
    ("descriptions", "template_share"),
    ("descriptions", "guard_precision"),
    ("descriptions", "personalization_lift"),
    ("recommendations", "recommendations"),
)


def artifact_key(run_dir: str | Path, kind: str) -> str:
    """``genrec-<run dir name>-<hash of its full path>-<kind>``: lowercase letters, digits and dashes, as Prefect
    requires; the hash keeps ``/a/run`` and ``/b/run`` apart."""
    resolved = Path(run_dir).resolve()
    name = re.sub(r"[^a-z0-9]+", "-", resolved.name.lower()).strip("-") or "run"
    digest = hashlib.blake2b(str(resolved).encode("utf-8"), digest_size=4).hexdigest()
    return f"genrec-{name}-{digest}-{kind}"


def metrics_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per numeric figure of metrics.json (stage, metric, value): the :data:`HEADLINE` ones first."""
    rows = _figures(metrics)
    order = {key: position for position, key in enumerate(HEADLINE)}
    return sorted(rows, key=lambda row: order.get((row["stage"], row["metric"]), len(order)))


def _figures(metrics: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    rows = []
    for name, value in metrics.items():
        if name in SKIPPED:
            continue
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(value, dict):
            rows += _figures(value, path)
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


def headline_markdown(metrics: dict[str, Any]) -> list[str]:
    """The headline figures of metrics.json as a markdown table (those the run has)."""
    rows = {(row["stage"], row["metric"]): row["value"] for row in _figures(metrics)}
    lines = ["| figure | value |", "|---|---|"]
    for stage, metric in HEADLINE:
        if (stage, metric) in rows and rows[(stage, metric)] is not None:
            value = rows[(stage, metric)]
            lines.append(f"| {stage} {metric} | {value:.4f} |" if value % 1 else f"| {stage} {metric} | {value:g} |")
    return lines if len(lines) > 2 else []


def results_markdown(run_dir: str | Path) -> str:
    """The run's results as one markdown page: headline figures, each user's items, where the report is."""
    run = RunDirectory(run_dir)
    lines = [f"# Results of `{run.path.resolve()}`", ""]
    headline = headline_markdown(run.read_json(RunDirectory.METRICS, {}))
    if headline:
        lines += ["## Headline figures", "", *headline, ""]
    if run.has(RunDirectory.RECOMMENDATIONS):
        lines.append(recommendations_markdown(run.path))
    if run.report.is_file():
        lines += [
            "## Report",
            "",
            f"`{run.report.resolve()}`: open it from the disk of the machine that ran the flow "
            "(no browser opens a file link from a web page), "
            f"or run `genrec report {run.path}` to render it again.",
        ]
    return "\n".join(lines)


def recommendations_markdown(run_dir: str | Path) -> str:
    """Each user's recommended items with their description, its grounding status and the image path (relative)."""
    run_dir = Path(run_dir)
    table = pd.read_parquet(run_dir / RunDirectory.RECOMMENDATIONS)
    keys = ["user_id", "item_id"]
    if (run_dir / RunDirectory.DESCRIPTIONS).is_file():
        columns = [
            *keys,
            "description",
            *(["source"] if _has_column(run_dir / RunDirectory.DESCRIPTIONS, "source") else []),
        ]
        descriptions = pd.read_parquet(run_dir / RunDirectory.DESCRIPTIONS, columns=columns)
        table = table.merge(descriptions, on=keys, how="left")
    if (run_dir / RunDirectory.IMAGES).is_file():
        images = pd.read_parquet(run_dir / RunDirectory.IMAGES, columns=[*keys, "path", "flagged"])
        table = table.merge(images.drop_duplicates(keys), on=keys, how="left")
    lines = []
    # A list, not a table: a description is a paragraph, and a table cuts it at the page's width.
    for user, rows in table.groupby("user_id", sort=False):
        lines += [f"## User {user}", ""]
        for row in rows.sort_values("rank").to_dict("records"):
            lines.append(f"{row['rank']}. **{cell(row.get('title'))}** (item {cell(row['item_id'])})")
            if isinstance(row.get("description"), str):
                status = GROUNDING.get(row.get("source"), row.get("source"))
                lines.append(f"   {cell(row['description'])}" + (f" *({cell(status)})*" if status else ""))
            image = row.get("path")
            if isinstance(image, str):
                relative = Path(image).relative_to(run_dir) if Path(image).is_relative_to(run_dir) else image
                lines.append(f"   image: `{relative}`" + (" (flagged)" if row.get("flagged") else ""))
        lines.append("")
    return "\n".join(lines)


def publish_run_artifacts(run_dir: str | Path) -> list[str]:
    """Create the run's artifacts in the current flow run (what exists of them); return their keys."""
    run_dir = Path(run_dir)
    keys = []
    if (run_dir / RunDirectory.RECOMMENDATIONS).is_file() or (run_dir / RunDirectory.METRICS).is_file():
        key = artifact_key(run_dir, "results")
        description = f"Headline figures, each user's recommendations and descriptions, the report's path: {run_dir}"
        create_markdown_artifact(results_markdown(run_dir), key=key, description=description)
        keys.append(key)
    if (run_dir / RunDirectory.METRICS).is_file():
        key = artifact_key(run_dir, "metrics")
        rows = metrics_rows(read_json(run_dir / RunDirectory.METRICS))
        create_table_artifact(rows, key=key, description=f"Ranking and generation metrics of {run_dir}")
        keys.append(key)
    return keys


# a description row's source -> what its grounding status means for a reader
GROUNDING = {
    "llm": "passed the guard",
    "llm_retry": "passed the guard (regenerated)",
    "template": "template",
    "fallback": "template (the LLM's texts were rejected)",
    "blocked": "blocked by the output filter",
}


def _has_column(path: Path, column: str) -> bool:
    import pyarrow.parquet as pq

    return column in pq.read_schema(path).names
