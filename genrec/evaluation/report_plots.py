"""The report's plots: matplotlib figures on the Agg canvas (no display, no pyplot state), saved as PNG.

Each function draws one figure from plain numbers and writes it atomically; the report
(:mod:`genrec.evaluation.report`) decides what to plot and where the files go. A PNG records a
digest of its inputs, so a re-render with the same numbers keeps the file instead of redrawing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter
from PIL import Image, UnidentifiedImageError

from genrec.io import atomic_path

SIZE = (6.0, 3.4)  # inches; at DPI this is a 600 x 340 PNG
DPI = 100
MARGINS = {"left": 0.12, "right": 0.88, "bottom": 0.16, "top": 0.9}  # fixed: a layout engine doubles the time
INPUTS_KEY = "genrec-plot-inputs"  # PNG tEXt chunk holding the digest of what was plotted
VERSION = 1  # part of the digest: bump when a drawing changes, so older PNGs are redrawn


def ndcg_at_k(results: Mapping[str, Mapping[int, float]], path: str | Path) -> Path:
    """Grouped bars: NDCG@K (x: K) for each ranker (one colour each). ``results``: ranker -> {K: NDCG@K}."""
    digest = _digest("ndcg_at_k", {name: {str(k): v for k, v in values.items()} for name, values in results.items()})
    if _up_to_date(path, digest):
        return Path(path)
    ks = sorted({k for values in results.values() for k in values})
    figure, axes = _figure()
    width = 0.8 / max(len(results), 1)
    positions = np.arange(len(ks))
    for offset, (name, values) in enumerate(results.items()):
        heights = [values.get(k, np.nan) for k in ks]
        bars = axes.bar(positions + (offset - (len(results) - 1) / 2) * width, heights, width, label=name)
        axes.bar_label(bars, fmt="%.4f", fontsize=7)
    axes.margins(y=0.12)  # room for the bar labels
    axes.set_xticks(positions, [f"@{k}" for k in ks])
    axes.set_xlabel("cut-off K")
    axes.set_ylabel("NDCG@K (test)")
    axes.set_title("NDCG@K per ranker, full ranking")
    axes.legend(fontsize=8)
    return _save(figure, path, digest)


def popularity(catalogue: np.ndarray, recommended: np.ndarray, path: str | Path) -> Path:
    """Histograms on log bins: interactions per catalogue item against per recommended item (each share of its own)."""
    catalogue, recommended = np.asarray(catalogue, dtype=float), np.asarray(recommended, dtype=float)
    digest = _digest("popularity", catalogue.tobytes().hex(), recommended.tobytes().hex())
    if _up_to_date(path, digest):
        return Path(path)
    top = max(catalogue.max(initial=0.0), recommended.max(initial=0.0))
    bins = np.geomspace(1.0, top + 2.0, 30)  # over 1 + count, so items nobody interacted with have a bin
    figure, axes = _figure()
    for values, label in ((catalogue, f"catalogue ({len(catalogue)} items)"), (recommended, "recommended")):
        weights = np.full(len(values), 1.0 / max(len(values), 1))
        patches = axes.hist(values + 1.0, bins=bins, weights=weights, alpha=0.6, label=label)[2]
        if len(values):
            axes.axvline(values.mean() + 1.0, color=patches[0].get_facecolor(), linestyle="--", linewidth=1)
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("1 + interactions per item in the data set (log scale; dashed: mean)")
    axes.set_ylabel("share of items")
    axes.set_title("Popularity of recommended items against the catalogue")
    axes.legend(fontsize=8)
    return _save(figure, path, digest)


def validation_curve(history: Sequence[Mapping[str, float | None]], best_epoch: int | None, path: str | Path) -> Path:
    """Validation NDCG@10 per epoch (and the training loss on a second axis), the best epoch marked."""
    digest = _digest("validation_curve", list(history), best_epoch)
    if _up_to_date(path, digest):
        return Path(path)
    epochs = [row.get("epoch", number + 1) for number, row in enumerate(history)]
    figure, axes = _figure()
    axes.plot(epochs, [_number(row.get("valid_NDCG@10")) for row in history], marker=".", label="valid NDCG@10")
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation NDCG@10")
    if best_epoch:
        axes.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best epoch {best_epoch}")
    if any(row.get("loss") is not None for row in history):
        loss_axes = axes.twinx()
        loss_axes.plot(epochs, [_number(row.get("loss")) for row in history], color="tab:red", alpha=0.5)
        loss_axes.set_ylabel("training loss", color="tab:red")
    axes.set_title("Early stopping: validation curve")
    axes.legend(fontsize=8, loc="best")
    return _save(figure, path, digest)


def _number(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _digest(*inputs: object) -> str:
    payload = json.dumps([VERSION, *inputs], sort_keys=True, default=str).encode("utf-8")
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def _up_to_date(path: str | Path, digest: str) -> bool:
    """Whether ``path`` is a plot of exactly these inputs (its PNG text chunk holds ``digest``)."""
    try:
        with Image.open(path) as image:
            return getattr(image, "text", {}).get(INPUTS_KEY) == digest
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return False


def _figure():
    figure = Figure(figsize=SIZE, dpi=DPI)
    figure.subplots_adjust(**MARGINS)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure: Figure, path: str | Path, digest: str) -> Path:
    path = Path(path)
    with atomic_path(path) as temporary:  # no version stamp (Software): the same inputs give the same bytes
        figure.savefig(temporary, format="png", metadata={"Software": None, INPUTS_KEY: digest})
    return path
