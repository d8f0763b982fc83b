"""The run directory as the report reads it: one typed loader, the report's whole input contract.

A run directory is what ``genrec run`` and the pipeline flows write (:class:`genrec.run_directory.RunDirectory`
owns its file names).
Two files make a directory a run directory; everything else is optional, and the report says
what it lacks instead of failing:

================================  ========  ====================================================
file                              required  what the report uses
================================  ========  ====================================================
``config.json``                   yes       a JSON object: ``dataset`` (reloadable name or
                                            ``FORMAT:PATH``), ``images`` (poster directory),
                                            ``preset``, ``encoder``, ``image_generator``,
                                            ``text_generator``, ``ranker``, ``seed``, ``users``,
                                            ``top_k``; any other key is shown as recorded
``recommendations.parquet``       yes       ``user_id``, ``item_id``, ``rank``; optional
                                            ``title``, ``score``
``images.parquet``                no        ``user_id``, ``item_id``, ``seed``,
                                            ``personalization``, ``path``; optional ``flagged``,
                                            ``noise_seed``, ``unsafe_score``, ``prompt``,
                                            ``model``. Rows with
                                            ``personalization == "none"`` are baseline images
``images_baseline.parquet``       no        the non-personalised baseline, same columns
``images/**/*.png``               no        PNGs carry their user_id, item_id, noise seed and
                                            personalization in tEXt chunks: they fill in
                                            recommendations no table lists (a run written before
                                            the baseline had its own table)
``descriptions.parquet``          no        ``user_id``, ``item_id``, ``description``; optional
                                            ``source``, ``attempts``, ``unsupported``,
                                            ``blocked_terms``, ``generator`` and a grounding
                                            check per row (``passed``, ``about_item``,
                                            ``fluent``, ``unverifiable``, ``blocked``)
``descriptions_report.json``      no        ``generator`` (identity and resolved config) and
                                            the grounding counts
``metrics.json``                  no        ``images``, ``descriptions``, ``grounding_report``
                                            (generation metrics), ``ranking`` (the
                                            :func:`genrec.pipelines.ranking.ranking_result` dict
                                            of the run's ranker), ``ranking_baselines`` (name ->
                                            such a dict, e.g. ``popular``), ``timings`` (stage ->
                                            seconds)
``request.json``                  no        the run's request as the recommend stage read it
                                            (:class:`genrec.requests.ParsedRequest`): ``text``,
                                            ``named_titles``, ``want_genres``, ``avoid_genres``,
                                            ``years``, ``rest``, ``notes``
``model/config.json`` or          no        the saved ranker's manifest (``genrec.persistence``):
``models/<hash>/config.json``               ``type`` (ranker name), ``config`` (resolved), ``state``
================================  ========  ====================================================

Missing optional inputs are listed in :attr:`RunContents.absent`; malformed ones (a table
without its key columns, a ranking block of the wrong shape) raise :class:`RunDirectoryError`
naming the file and what was expected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, ValidationError

from genrec.config import ConfigError, format_validation_error
from genrec.io import read_json
from genrec.persistence import read_manifest
from genrec.run_directory import RunDirectory

MODEL_DIRS = (RunDirectory.MODEL, "models/*")  # a saved ranker: model/config.json, or models/<hash>/config.json
REQUIRED = (RunDirectory.CONFIG, RunDirectory.RECOMMENDATIONS)
BASELINE = "none"  # the personalization mode of the non-personalised baseline images

IMAGE_COLUMNS = ("user_id", "item_id", "seed", "personalization", "path")
# tEXt chunks every generated PNG carries -> image-table column; a PNG's "seed" is the noise seed
PNG_KEYS = {"user_id": "user_id", "item_id": "item_id", "personalization": "personalization", "seed": "noise_seed"}


class RunDirectoryError(ValueError):
    """A directory that is not a run directory, or a run file of the wrong shape; names the file."""


class RankingResult(BaseModel):
    """The fields of a :func:`~genrec.pipelines.ranking.ranking_result` dict the report shows; others are kept."""

    model_config = ConfigDict(extra="allow")

    ranker: str | None = None
    dataset: str | None = None
    split: str | None = None
    seed: int | None = None
    config: dict[str, Any] = {}
    metrics: dict[str, float | None]
    cold_start: dict[str, float | None] = {}
    extra: dict[str, float | None] = {}
    fit_seconds: float | None = None
    eval_seconds: float | None = None
    epochs: int | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = []  # per epoch: epoch, loss, valid_NDCG@10, seconds (rankers may add more)


@dataclass(frozen=True)
class SavedRanker:
    path: Path  # the directory holding config.json (+ model.safetensors)
    ranker: str
    config: dict[str, Any]


@dataclass
class RunContents:
    """Everything a run directory holds that the report reads; see the module docstring for the files."""

    path: Path
    config: dict[str, Any]
    recommendations: pd.DataFrame
    images: pd.DataFrame | None = None  # personalised images; column ``file``: the PNG (Path) or None
    baseline_images: pd.DataFrame | None = None  # personalization "none", same columns
    descriptions: pd.DataFrame | None = None
    descriptions_report: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    ranking: RankingResult | None = None
    ranking_baselines: dict[str, RankingResult] = field(default_factory=dict)
    saved_ranker: SavedRanker | None = None
    timings: dict[str, float] = field(default_factory=dict)
    request: dict[str, Any] | None = None  # the request the recommendations answer, as read (request.json)
    absent: list[str] = field(default_factory=list)  # optional inputs the directory lacks


def flat_run_config(config: dict[str, Any]) -> dict[str, Any]:
    """The flat keys the report reads, from a config.json holding the run's ``settings`` (and each stage's
    record), as the stages write it, or an already flat one."""
    settings = config.get("settings")
    if not isinstance(settings, dict):
        return config
    generation, users = settings.get("generation") or {}, settings.get("users") or {}
    recommend, train = config.get("recommend") or {}, config.get("train") or {}
    flat = {
        "dataset": settings.get("dataset"),
        "images": generation.get("images"),
        "users": recommend.get("users") or users.get("ids") or None,
        "user_selection": users.get("mode"),
        "top_k": None if settings.get("items") else settings.get("k"),
        "items": settings.get("items"),
        "ranker": None if settings.get("items") else settings.get("ranker"),
        "ranker_config": train.get("config") or settings.get("ranker_config"),
        "encoder": generation.get("encoder"),
        "image_generator": generation.get("image_generator"),
        "text_generator": generation.get("text_generator"),
        "profiles": (config.get("describe") or {}).get("profiles"),
        "seed": settings.get("seed"),
    }
    return {key: value for key, value in flat.items() if value is not None}


def load_run_directory(path: str | Path) -> RunContents:
    """Read a run directory (see the module docstring); raises :class:`RunDirectoryError` for a non-run."""
    path = Path(path)
    if not path.is_dir():
        what = "a file, not a directory" if path.exists() else "no such directory"
        raise RunDirectoryError(f"{path}: not a run directory ({what})")
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        raise RunDirectoryError(
            f"{path}: not a run directory: missing {', '.join(missing)} "
            f"(a run directory written by `genrec generate` or the pipeline holds {' and '.join(REQUIRED)})"
        )
    config = flat_run_config(_json_object(path / RunDirectory.CONFIG))
    recommendations = _table(path / RunDirectory.RECOMMENDATIONS, ("user_id", "item_id", "rank"))
    run = RunContents(path=path, config=config, recommendations=recommendations.sort_values(["user_id", "rank"]))

    tables = [
        _table(path / name, IMAGE_COLUMNS)
        for name in (RunDirectory.IMAGES, RunDirectory.BASELINE_IMAGES)
        if _has(path, name)
    ]
    images = pd.concat(tables, ignore_index=True) if tables else _empty_images()
    images = _with_png_metadata(path, images, recommendations)
    if not tables and images.empty:
        run.absent.append(RunDirectory.IMAGES)
    if not images.empty:
        images = images.assign(file=[_image_file(path, value) for value in images["path"]])
        is_baseline = images["personalization"].astype(str) == BASELINE
        run.images = images[~is_baseline].reset_index(drop=True)
        run.baseline_images = images[is_baseline].reset_index(drop=True)

    if _has(path, RunDirectory.DESCRIPTIONS, run.absent):
        run.descriptions = _table(path / RunDirectory.DESCRIPTIONS, ("user_id", "item_id", "description"))
    if _has(path, RunDirectory.DESCRIPTIONS_REPORT, run.absent):
        run.descriptions_report = _json_object(path / RunDirectory.DESCRIPTIONS_REPORT)
    if _has(path, RunDirectory.METRICS, run.absent):
        run.metrics = _json_object(path / RunDirectory.METRICS)
    if run.metrics.get("ranking") is not None:
        run.ranking = _ranking(path / RunDirectory.METRICS, "ranking", run.metrics["ranking"])
    else:
        run.absent.append(f"{RunDirectory.METRICS}: ranking")
    baselines = run.metrics.get("ranking_baselines") or {}
    if not isinstance(baselines, dict):
        raise RunDirectoryError(
            f"{path / RunDirectory.METRICS}: ranking_baselines must map ranker names to ranking results"
        )
    run.ranking_baselines = {
        str(name): _ranking(path / RunDirectory.METRICS, f"ranking_baselines.{name}", value)
        for name, value in baselines.items()
    }
    run.timings = _timings(path / RunDirectory.METRICS, run.metrics.get("timings") or {})
    if _has(path, RunDirectory.REQUEST):
        run.request = _json_object(path / RunDirectory.REQUEST)
    run.saved_ranker = _saved_ranker(path)
    if run.saved_ranker is None:
        run.absent.append("model/config.json (saved ranker)")
    return run


def _has(path: Path, name: str, absent: list[str] | None = None) -> bool:
    if (path / name).is_file():
        return True
    if absent is not None:
        absent.append(name)
    return False


def _json_object(path: Path) -> dict[str, Any]:
    try:
        data = read_json(path)
    except json.JSONDecodeError as err:
        raise RunDirectoryError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise RunDirectoryError(f"{path}: expected a JSON object at the top level, got {type(data).__name__}")
    return data


def _table(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise RunDirectoryError(f"{path}: not a readable Parquet table ({err})") from None
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise RunDirectoryError(
            f"{path}: missing column(s) {', '.join(missing)}; expected at least {', '.join(required)}"
        )
    return table


def _empty_images() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=object) for column in IMAGE_COLUMNS})


def _with_png_metadata(run_dir: Path, images: pd.DataFrame, recommendations: pd.DataFrame) -> pd.DataFrame:
    """``images`` plus the PNGs under images/ that no table lists, for recommendations lacking an image.

    Only looked at when some recommendation has no personalised or no baseline row.
    """
    listed = {
        (str(user), str(item), str(mode) == BASELINE)
        for user, item, mode in images[["user_id", "item_id", "personalization"]].itertuples(index=False)
    }
    wanted = {(str(u), str(i)) for u, i in recommendations[["user_id", "item_id"]].itertuples(index=False)}
    lacking = {(u, i, baseline) for u, i in wanted for baseline in (False, True)} - listed
    directory = run_dir / RunDirectory.IMAGES_DIR
    if not lacking or not directory.is_dir():
        return images
    found = []
    for png in sorted(directory.rglob("*.png")):
        text = _png_text(png)
        if text is None or any(key not in text for key in PNG_KEYS):
            continue
        if (text["user_id"], text["item_id"], text["personalization"] == BASELINE) in lacking:
            found.append(
                {column: text[key] for key, column in PNG_KEYS.items()} | _png_extras(text) | {"path": str(png)}
            )
    if not found:
        return images
    scanned = pd.DataFrame(found).assign(flagged=lambda t: [Path(p).parent.name == "blocked" for p in t["path"]])
    return pd.concat([images, scanned], ignore_index=True) if not images.empty else scanned


def _png_text(path: Path) -> dict[str, str] | None:
    try:
        with Image.open(path) as image:
            return dict(getattr(image, "text", {}))
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return None


def _png_extras(text: dict[str, str]) -> dict[str, str]:
    return {key: text[key] for key in ("prompt", "model") if key in text}


def _image_file(run_dir: Path, value: Any) -> Path | None:
    """The PNG a table's ``path`` names: as written (absolute or relative to the run dir), else under images/."""
    if not isinstance(value, str) or not value:
        return None
    given = Path(value)
    candidates = [given] if given.is_absolute() else [run_dir / given, given]
    candidates += [
        run_dir / RunDirectory.IMAGES_DIR / given.name,
        run_dir / RunDirectory.IMAGES_DIR / "blocked" / given.name,
    ]
    return next((candidate.resolve() for candidate in candidates if candidate.is_file()), None)


def _ranking(path: Path, key: str, value: Any) -> RankingResult:
    if not isinstance(value, dict):
        raise RunDirectoryError(f"{path}: {key} must be a ranking result (a JSON object), got {type(value).__name__}")
    try:
        return RankingResult.model_validate(value)
    except ValidationError as err:
        raise RunDirectoryError(format_validation_error(err, f"{path}: {key}", "ranking result")) from None


def _timings(path: Path, value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or not all(isinstance(v, int | float) for v in value.values()):
        raise RunDirectoryError(f"{path}: timings must map stage names to seconds, got {value!r}")
    return {str(stage): float(seconds) for stage, seconds in value.items()}


def _saved_ranker(run_dir: Path) -> SavedRanker | None:
    for pattern in MODEL_DIRS:
        for directory in sorted(run_dir.glob(pattern)):
            config_path = directory / RunDirectory.CONFIG
            if not config_path.is_file():
                continue
            try:
                manifest, _ = read_manifest(directory)
            except ConfigError as err:
                raise RunDirectoryError(str(err)) from None
            if manifest.kind != "ranker":
                raise RunDirectoryError(f"{config_path}: holds a saved {manifest.kind}, expected the run's ranker")
            return SavedRanker(directory, manifest.type, manifest.config)
    return None
