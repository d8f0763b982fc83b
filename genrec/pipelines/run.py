"""The whole run as plain functions over one run directory: select users -> train -> recommend ->
generate -> evaluate, and :func:`run_pipeline` chaining them (issue 12).

Every function takes and returns small values (paths, ids, registry names, pydantic configs),
never a dataset, a model or a tensor, so a Prefect task can wrap each one to one and the run
directory is the contract between stages. Nothing here imports Prefect.

API::

    select_users(dataset, users=None, all_users=False, sample=None, active_since=None, seed=0) -> list
    train(dataset, ranker, run_dir, config=None, overrides=None, seed=0, progress=True) -> Path      # run_dir/model
    recommend(model_dir, dataset, run_dir, users, k) -> Path                    # run_dir/recommendations.parquet
    recommend_items(dataset, run_dir, users, items) -> Path                     # the same table, explicit items
    generate(recommendations, dataset, run_dir, image_generator, text_generator, encoder, seed=0,
             images=None, progress=True, cache_dir=None) -> GeneratedOutputs
    evaluate(run_dir, dataset, encoder=None, images=None, cache_dir=None, progress=True) -> Path  # metrics.json
    run_pipeline(dataset, run_dir, ranker, ..., progress=True) -> Path                            # run_dir
    demo_settings(preset="tiny") -> dict                       # the demo's run_pipeline arguments
    run_demo(out="runs/demo", preset="tiny", progress=True) -> Path     # the demo without Prefect

Names follow the issue; two additions: :func:`recommend_items` (``genrec generate --items``: the
given items instead of a ranking, so no model is trained) and :func:`demo_settings` with
:func:`run_demo` (the main job's settings, so neither the CLI nor the flows hold any; ``genrec demo``
runs them as the ``pipeline`` flow, :func:`genrec.flows.demo.run_demo_flow`). ``dataset`` is a
bundled name, a path or ``FORMAT:PATH``; in Python a loaded :class:`~genrec.data.Dataset` is
accepted too, which :func:`run_pipeline` uses to load the data once. ``images`` is a directory of
``<item_id>.<ext>`` history images.

The run directory holds config.json (one section per stage: its inputs, and for ``train`` the
reuse key), model/ (the saved ranker plus train.json), recommendations.parquet, images/ with
images.parquet (personalised) and images_baseline.parquet (the non-personalised baseline),
descriptions.parquet with descriptions_report.json, metrics.json and the embedding cache
(cache/, unless ``cache_dir`` names another). Every write is atomic and stays in the run
directory; a rerun with the same inputs reuses the model, the embeddings, the images and the
descriptions.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from genrec.config import ConfigError, StrictModel
from genrec.data import Dataset, load_dataset
from genrec.evaluation.report import REPORT_FILE as REPORT_FILE  # part of the run directory's vocabulary
from genrec.evaluation.report import write_report
from genrec.io import atomic_path, read_json, write_json

RUN_CONFIG = "config.json"
MODEL_DIR = "model"
TRAIN_RECORD = "train.json"  # in MODEL_DIR: the reuse key and the fit report of the saved ranker
RECOMMENDATIONS_TABLE = "recommendations.parquet"
METRICS_FILE = "metrics.json"
CACHE_DIR = "cache"  # the run's embedding cache when no cache_dir is given

DEMO_DATASET = "movielens-latest-small"  # bundled: the demo runs offline
DEMO_TEXT_GENERATOR = "smollm2"  # the best offline text generator available (SmolLM2-135M-Instruct)
DEMO_RANKER, DEMO_RANKER_CONFIG = "hstu", "hstu-demo"
# A seeded sample of this many users, this many items each: 8 (user, item) pairs, one batch of the
# smollm2 preset per attempt. SmolLM2 writes each pair's description and its non-personalised baseline,
# up to 3 attempts each: with 5 x 3 pairs that took 353 of a fresh demo's 790 s (one thread;
# benchmarks/RESULTS.md, "genrec demo").
DEMO_USERS, DEMO_TOP_K = 4, 2
# preset -> (encoder, image generator, text generator)
DEMO_PRESETS = {"tiny": ("tiny", "tiny", DEMO_TEXT_GENERATOR), "standard": ("standard", "standard", "standard")}
# text generator -> its config fields over the preset's in the demo. The demo's LLMs regenerate a
# rejected text once, not twice (the presets' default): the first two attempts sample the same texts
# either way, the third attempt passed little for its cost (benchmarks/RESULTS.md, "genrec demo"), and
# a text still rejected gets the template, as before.
DEMO_TEXT_GENERATOR_OVERRIDES = {name: {"grounding": {"max_retries": 1}} for name in (DEMO_TEXT_GENERATOR, "standard")}

UserId = int | str


class UserSelection(StrictModel):
    """Which users a run is for: explicit ids, all users, or users active since a time, optionally sampled.

    ``users`` and ``all_users`` stand alone; ``sample`` (a seeded random sample of N) draws from
    every user, or from those active since ``active_since`` when both are given.
    """

    users: list[UserId] | None = Field(None, description="explicit user ids")
    all_users: bool = Field(False, description="every user of the data set")
    sample: int | None = Field(None, ge=1, description="a seeded random sample of this many users")
    active_since: datetime | int | None = Field(
        None, description="users with an interaction at or after this time (ISO date/time or unix seconds)"
    )
    seed: int = Field(0, description="seeds the random sample")

    @model_validator(mode="after")
    def _one_mode(self) -> UserSelection:
        modes = [
            name
            for name, given in (
                ("users", self.users is not None),
                ("all_users", self.all_users),
                ("sample/active_since", self.sample is not None or self.active_since is not None),
            )
            if given
        ]
        if len(modes) != 1:
            raise ValueError(
                "choose exactly one of: users (explicit ids), all_users, sample and/or active_since; "
                f"got {', '.join(modes) or 'none'}"
            )
        if self.users is not None:
            if not self.users:
                raise ValueError("users is empty; give at least one user id")
            seen: set[UserId] = set()
            for user in self.users:
                if user in seen:
                    raise ValueError(f"user id {user!r} is given twice")
                seen.add(user)
        return self

    def since_seconds(self) -> int | None:
        """``active_since`` as unix seconds (naive date/times are UTC)."""
        moment = self.active_since
        if moment is None or isinstance(moment, int):
            return moment
        return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


class GeneratedOutputs(StrictModel):
    """What :func:`generate` wrote, as paths inside the run directory."""

    images_dir: Path = Field(description="the PNGs (flagged ones under images/blocked/)")
    images: Path = Field(description="images.parquet: the personalised images, one row per image")
    baseline_images: Path = Field(description="images_baseline.parquet: the non-personalised baseline")
    descriptions: Path = Field(description="descriptions.parquet: one description per recommendation")
    descriptions_report: Path = Field(description="descriptions_report.json: the grounding report of the call")


def select_users(
    dataset: str | Path | Dataset,
    users: list[UserId] | None = None,
    all_users: bool = False,
    sample: int | None = None,
    active_since: datetime | int | str | None = None,
    seed: int = 0,
) -> list[UserId]:
    """The raw ids of the selected users, in the data set's user order (explicit ids in the given order).

    Raises:
        ConfigError: no mode or several, duplicate or unknown ids, a sample larger than the
            candidates, or no user active since the given time.
    """
    selection = UserSelection.from_dict(
        {"users": users, "all_users": all_users, "sample": sample, "active_since": active_since, "seed": seed},
        source="user selection",
    )
    loaded = _load(dataset)
    if selection.users is not None:
        try:
            index = loaded.user_index(list(selection.users))
        except KeyError as err:
            raise ConfigError(err.args[0]) from None
        return [_plain(user) for user in loaded.user_ids[index]]
    candidates = np.arange(loaded.n_users)
    since = selection.since_seconds()
    if since is not None:
        last = np.maximum.reduceat(loaded.interactions["timestamp"].to_numpy(), loaded.user_offsets[:-1])
        candidates = candidates[last >= since]
        if not len(candidates):
            newest = pd.Timestamp(int(last.max()), unit="s", tz="UTC")
            raise ConfigError(
                f"{loaded.name}: no user has an interaction at or after {pd.Timestamp(since, unit='s', tz='UTC')} "
                f"(the newest interaction is at {newest})"
            )
    if selection.sample is not None:
        if selection.sample > len(candidates):
            raise ConfigError(
                f"{loaded.name}: cannot sample {selection.sample} users from {len(candidates)} candidates"
            )
        rng = np.random.default_rng(selection.seed)
        candidates = np.sort(rng.choice(candidates, size=selection.sample, replace=False))
    return [_plain(user) for user in loaded.user_ids[candidates]]


def train(
    dataset: str | Path | Dataset,
    ranker: str,
    run_dir: str | Path,
    config: str | Path | dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Fit ``ranker`` on the leave-one-out training split and save it to ``run_dir/model``; return that dir.

    The reuse key is a content hash of the data (interactions and ids), the ranker name, its
    resolved config (``config``: a named config, a JSON file or a dict; ``overrides`` win; the
    seed wins over both) and the split; it is recorded in ``model/train.json`` and in the run's
    config.json. A rerun with the same key loads nothing and fits nothing: it returns the saved
    directory.
    """
    from genrec.evaluation import SplitConfig
    from genrec.pipelines.ranking import fit_ranker, split
    from genrec.rankers import RANKERS, create_ranker, resolve_ranker_config

    RANKERS.get(ranker)
    resolved = resolve_ranker_config(ranker, config, {**(overrides or {}), "seed": seed})
    run_dir = check_run_dir(run_dir)
    loaded = _load(dataset)
    data = dataset_fingerprint(loaded)
    split_config = SplitConfig()
    inputs = {
        "ranker": ranker,
        "config": resolved.model_dump(mode="json"),
        "data": data,
        "split": split_config.model_dump(mode="json"),
    }
    key = _digest(inputs)
    model_dir = run_dir / MODEL_DIR
    record_path = model_dir / TRAIN_RECORD
    record = read_json(record_path) if record_path.is_file() else None
    if record is None or record.get("key") != key or not _saved_ranker(model_dir):
        record_path.unlink(missing_ok=True)  # the weights about to be written are not the recorded model's
        model = create_ranker(ranker, resolved)
        report = fit_ranker(model, split(loaded, split_config), progress=progress)
        model.save_pretrained(model_dir)
        record = {"key": key, **inputs, "dataset": loaded.name, "fit": report.to_dict()}
        write_json(record_path, record)
    update_run_config(run_dir, "train", {"key": key, "dataset": loaded.name, **inputs, "seed": seed})
    return model_dir


def recommend(
    model_dir: str | Path, dataset: str | Path | Dataset, run_dir: str | Path, users: list[UserId], k: int
) -> Path:
    """The saved ranker's top-``k`` items for ``users`` from their full history, seen items excluded.

    Writes ``run_dir/recommendations.parquet`` (user_id, rank, item_id, item_idx, score, title)
    and returns its path.
    """
    from genrec.pipelines.ranking import rank
    from genrec.rankers import load_ranker

    if k < 1:
        raise ConfigError(f"k (items per user) must be >= 1, got {k}")
    users = _check_users(users)
    run_dir = check_run_dir(run_dir)
    model_dir = Path(model_dir)
    if not _saved_ranker(model_dir):
        raise ConfigError(f"{model_dir}: no saved ranker (config.json and model.safetensors); run train first")
    loaded = _load(dataset)
    model = load_ranker(str(model_dir))
    if model.n_items != loaded.n_items:
        raise ConfigError(
            f"{model_dir}: the ranker was trained on {model.n_items} items, {loaded.name} has {loaded.n_items}; "
            "train it on this data set"
        )
    try:
        table = rank(model, loaded, users=users, k=k)
    except KeyError as err:
        raise ConfigError(err.args[0]) from None
    path = _write_table(table, run_dir / RECOMMENDATIONS_TABLE)
    key = read_json(model_dir / TRAIN_RECORD).get("key") if (model_dir / TRAIN_RECORD).is_file() else None
    update_run_config(run_dir, "recommend", {"users": users, "k": k, "model": str(model_dir), "model_key": key})
    return path


def recommend_items(
    dataset: str | Path | Dataset, run_dir: str | Path, users: list[UserId], items: list[UserId]
) -> Path:
    """The given ``items`` for every user, in the given order, shaped like :func:`recommend`'s table."""
    users, items = _check_users(users), _check_users(items, kind="item")
    run_dir = check_run_dir(run_dir)
    loaded = _load(dataset)
    try:
        user_idx, item_idx = loaded.user_index(users), loaded.item_index(items)
    except KeyError as err:
        raise ConfigError(err.args[0]) from None
    table = pd.DataFrame(
        {
            "user_id": np.repeat(loaded.user_ids[user_idx], len(item_idx)),
            "rank": np.tile(np.arange(1, len(item_idx) + 1), len(user_idx)),
            "item_id": np.tile(loaded.item_ids[item_idx], len(user_idx)),
            "item_idx": np.tile(item_idx, len(user_idx)),
            "score": float("nan"),
            "title": np.tile(loaded.items["title"].to_numpy()[item_idx], len(user_idx)),
        }
    )
    path = _write_table(table, run_dir / RECOMMENDATIONS_TABLE)
    update_run_config(run_dir, "recommend", {"users": users, "items": items})
    return path


def generate(
    recommendations: str | Path,
    dataset: str | Path | Dataset,
    run_dir: str | Path,
    image_generator: str,
    text_generator: str,
    encoder: str,
    seed: int = 0,
    images: str | Path | None = None,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    text_generator_overrides: dict[str, Any] | None = None,
) -> GeneratedOutputs:
    """A personalised image, its non-personalised baseline and a grounded description per recommendation.

    User profiles come from ``encoder`` (``encode_items`` -> ``encode_histories`` ->
    ``preference_profile``); the image safety checker (zero-shot, in the same encoder's space)
    scores every image and moves flagged ones to ``images/blocked/``, marked ``flagged`` in the
    tables; with a random-weight encoder (``tiny``) it is skipped and ``metrics.json`` says so.
    Finished images and descriptions are reused on a rerun. ``text_generator_overrides``: config
    fields over the text generator preset's, e.g. ``{"grounding": {"max_retries": 1}}``.
    """
    from genrec.generators import ImageSafetyChecker, create_image_generator, create_text_generator
    from genrec.pipelines.describe import DESCRIPTIONS_REPORT, DESCRIPTIONS_TABLE, generate_descriptions
    from genrec.pipelines.images import BASELINE_IMAGES_TABLE, IMAGES_TABLE, generate_images

    check_names(image_generator=image_generator, text_generator=text_generator, encoder=encoder)
    check_text_generator_overrides(text_generator, text_generator_overrides)
    run_dir = check_run_dir(run_dir)
    table = _read_recommendations(recommendations)
    loaded = _load(dataset, images)
    clip, _, profiles = _profiles(loaded, encoder, table["user_id"].unique().tolist(), run_dir, cache_dir, progress)
    image_model = create_image_generator(image_generator)
    # A random-weight CLIP (the tiny preset) scores noise: its flags would hide images at random
    # and its counts would mean nothing, so the check runs only with trained weights.
    safety = None if clip.config.random_weights else ImageSafetyChecker(clip)
    options = {"out_dir": run_dir, "seeds": (seed,), "safety": safety, "progress": progress}
    # The non-personalised image of the same (user, item, seed) is the baseline the
    # personalization score is measured against.
    generate_images(image_model, table, profiles, loaded, personalization="none", **options)
    generate_images(image_model, table, profiles, loaded, **options)
    sampling = {} if text_generator == "template" else {"seed": seed}  # the template generator has no randomness
    describer = create_text_generator(text_generator, {**sampling, **(text_generator_overrides or {})}, loaded)
    generate_descriptions(describer, table, profiles, loaded, out_dir=run_dir, progress=progress)
    # The non-personalised description of the same (user, item, seed): the text personalisation baseline.
    generate_descriptions(describer, table, profiles, loaded, out_dir=run_dir, progress=progress, personalize=False)
    update_run_config(
        run_dir,
        "generate",
        {
            "recommendations": str(recommendations),
            "image_generator": image_generator,
            "text_generator": text_generator,
            "text_generator_overrides": text_generator_overrides,
            "encoder": encoder,
            "seed": seed,
            "dataset": loaded.name,  # reloadable: a bundled name or FORMAT:PATH
            "images": None if images is None else str(Path(images).resolve()),
        },
    )
    return GeneratedOutputs(
        images_dir=run_dir / "images",
        images=run_dir / IMAGES_TABLE,
        baseline_images=run_dir / BASELINE_IMAGES_TABLE,
        descriptions=run_dir / DESCRIPTIONS_TABLE,
        descriptions_report=run_dir / DESCRIPTIONS_REPORT,
    )


def evaluate(
    run_dir: str | Path,
    dataset: str | Path | Dataset,
    encoder: str | None = None,
    images: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Score what the run directory holds; write ``run_dir/metrics.json`` and return its path.

    - ``ranking``: the saved ranker's full-ranking test metrics (leave-one-out; the split it was
      fitted on), cold-start slice, extras and its fit report; when ``model/`` exists.
    - ``images``: CLIP score, cross-user diversity and the personalization score against the
      baseline (``encoder``'s space; default the encoder ``generate`` used), with the counts of
      generated, reused and flagged images; when images.parquet exists.
    - ``descriptions``, ``grounding_report`` and ``baseline_grounding_report``: the guard's honest
      rates (the LLM's own pass rate before any fallback, regeneration, fallback, final), grounding,
      preference coverage and the text personalisation lift against the non-personalised
      descriptions (MiniLM); when descriptions.parquet exists.

    NaN metrics (e.g. diversity when no item is shared by two users) are written as null.
    """
    from genrec.pipelines.describe import DESCRIPTIONS_TABLE
    from genrec.pipelines.images import BASELINE_IMAGES_TABLE, IMAGES_TABLE

    run_dir = check_run_dir(run_dir)
    recorded = read_run_config(run_dir).get("generate", {})
    encoder = encoder or recorded.get("encoder")
    metrics: dict[str, Any] = {}
    if _saved_ranker(run_dir / MODEL_DIR):
        metrics["ranking"] = _ranking_metrics(run_dir / MODEL_DIR, _load(dataset), progress)
    if (run_dir / RECOMMENDATIONS_TABLE).is_file():
        metrics["recommendations"] = len(pd.read_parquet(run_dir / RECOMMENDATIONS_TABLE))
    image_table = run_dir / IMAGES_TABLE
    description_table = run_dir / DESCRIPTIONS_TABLE
    if image_table.is_file() or description_table.is_file():
        if encoder is None:
            raise ConfigError(f"{run_dir}: give the encoder to score images and descriptions with")
        check_names(encoder=encoder)
        loaded = _load(dataset, images if images is not None else recorded.get("images"))
        users = pd.read_parquet(run_dir / RECOMMENDATIONS_TABLE)["user_id"].unique().tolist()
        clip, histories, profiles = _profiles(loaded, encoder, users, run_dir, cache_dir, progress)
        if image_table.is_file():
            metrics["images"] = _image_metrics(image_table, run_dir / BASELINE_IMAGES_TABLE, clip, loaded, histories)
        if description_table.is_file():
            metrics |= _description_metrics(run_dir, loaded, profiles)
    path = run_dir / METRICS_FILE
    write_json(path, _json_ready(metrics))
    return path


def run_pipeline(
    dataset: str | Path | Dataset = "movielens-latest-small",
    run_dir: str | Path = "runs/pipeline",
    ranker: str = "popular",
    config: str | Path | dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    users: list[UserId] | None = None,
    all_users: bool = False,
    sample: int | None = None,
    active_since: datetime | int | str | None = None,
    k: int = 3,
    items: list[UserId] | None = None,
    image_generator: str = "tiny",
    text_generator: str = "template",
    encoder: str = "tiny",
    seed: int = 0,
    images: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    text_generator_overrides: dict[str, Any] | None = None,
) -> Path:
    """select_users -> train (skipped with explicit ``items``) -> recommend -> generate -> evaluate.

    Every name (ranker, its config and overrides, encoder, image and text generator) and every
    option is validated before any work starts or any file is written; then the data set is
    loaded once and the users are resolved. ``seed`` seeds the ranker, the user sample, the
    image noise and the LLM sampling. Returns ``run_dir``.
    """
    from genrec.rankers import resolve_ranker_config

    check_names(ranker=ranker, image_generator=image_generator, text_generator=text_generator, encoder=encoder)
    check_text_generator_overrides(text_generator, text_generator_overrides)
    if items is None:
        resolve_ranker_config(ranker, config, {**(overrides or {}), "seed": seed})
    else:
        _check_users(items, kind="item")
    if k < 1:
        raise ConfigError(f"k (items per user) must be >= 1, got {k}")
    UserSelection.from_dict(
        {"users": users, "all_users": all_users, "sample": sample, "active_since": active_since, "seed": seed},
        source="user selection",
    )
    run_dir = check_run_dir(run_dir)
    loaded = _load(dataset, images)
    chosen = select_users(loaded, users, all_users, sample, active_since, seed)
    if items is None:
        model_dir = train(loaded, ranker, run_dir, config, overrides, seed, progress)
        recommendations = recommend(model_dir, loaded, run_dir, chosen, k)
    else:
        recommendations = recommend_items(loaded, run_dir, chosen, items)
    generate(
        recommendations,
        loaded,
        run_dir,
        image_generator,
        text_generator,
        encoder,
        seed,
        images,
        progress,
        cache_dir,
        text_generator_overrides,
    )
    evaluate(run_dir, loaded, encoder, images, cache_dir, progress)
    write_report(run_dir, dataset=loaded)
    return run_dir


def demo_settings(preset: str = "tiny") -> dict[str, Any]:
    """The demo's :func:`run_pipeline` arguments for ``preset``, all but the run directory and ``progress``.

    ``tiny``: offline (random-weight tiny CLIP and diffusion model, :data:`DEMO_TEXT_GENERATOR`);
    ``standard``: the pretrained hub models. The ranker is :data:`DEMO_RANKER` with the
    :data:`DEMO_RANKER_CONFIG` named config either way, for a seeded sample of :data:`DEMO_USERS`
    users and :data:`DEMO_TOP_K` items each; the text generator with its
    :data:`DEMO_TEXT_GENERATOR_OVERRIDES`. The one definition of the demo: :func:`run_demo` and the
    ``genrec demo`` flow run (:func:`genrec.flows.demo.run_demo_flow`) both read it.
    """
    if preset not in DEMO_PRESETS:
        raise ConfigError(f"unknown demo preset {preset!r}; valid presets: {', '.join(DEMO_PRESETS)}")
    encoder, image_generator, text_generator = DEMO_PRESETS[preset]
    return {
        "dataset": DEMO_DATASET,
        "ranker": DEMO_RANKER,
        "config": DEMO_RANKER_CONFIG,
        "sample": DEMO_USERS,
        "k": DEMO_TOP_K,
        "image_generator": image_generator,
        "text_generator": text_generator,
        "encoder": encoder,
        "text_generator_overrides": DEMO_TEXT_GENERATOR_OVERRIDES.get(text_generator),
    }


def run_demo(
    out: str | Path = "runs/demo", preset: Literal["tiny", "standard"] = "tiny", progress: bool = True
) -> Path:
    """The main job as plain functions, without Prefect: :func:`run_pipeline` with :func:`demo_settings`.

    ``genrec demo`` runs the same settings as the ``pipeline`` flow. Returns the run directory.
    """
    return run_pipeline(run_dir=out, progress=progress, **demo_settings(preset))


# -- checks ----------------------------------------------------------------------------------


def check_names(
    ranker: str | None = None,
    encoder: str | None = None,
    image_generator: str | None = None,
    text_generator: str | None = None,
) -> None:
    """Raise UnknownNameError (listing the valid names) for any unregistered name; builds nothing.

    ``encoder`` must have an image tower (an open_clip preset or a saved CLIP encoder): the
    safety check and the image metrics embed images.
    """
    from genrec.encoders.base import ENCODER_BACKENDS
    from genrec.encoders.presets import ENCODERS, HF_PREFIX, is_saved_encoder
    from genrec.generators import IMAGE_GENERATORS, TEXT_GENERATORS
    from genrec.persistence import read_manifest
    from genrec.rankers import RANKERS

    if ranker is not None:
        RANKERS.get(ranker)
    if image_generator is not None:
        IMAGE_GENERATORS.get(image_generator)
    if text_generator is not None:
        TEXT_GENERATORS.get(text_generator)
    if encoder is not None:
        if is_saved_encoder(encoder):
            saved, source = read_manifest(Path(encoder).expanduser())
            if saved.kind != "encoder" or not ENCODER_BACKENDS.get(saved.type).supports_images:
                raise ConfigError(
                    f"{source}: a {saved.type!r} {saved.kind} has no image tower; the pipeline needs a CLIP encoder"
                )
            return
        clip_presets = [name for name, preset in ENCODERS.items() if ENCODER_BACKENDS.get(preset.type).supports_images]
        if encoder.startswith(HF_PREFIX) or (encoder in ENCODERS and encoder not in clip_presets):
            raise ConfigError(
                f"encoder {encoder!r} has no image tower; the pipeline needs a CLIP encoder: {', '.join(clip_presets)}"
            )
        ENCODERS.get(encoder)


def check_text_generator_overrides(text_generator: str, overrides: dict[str, Any] | None) -> None:
    """Raise ConfigError unless ``overrides`` over the text generator preset's config make a valid config.

    Builds nothing: :func:`run_pipeline` checks them before any work starts.
    """
    from genrec.generators import TEXT_GENERATOR_TYPES, TEXT_GENERATORS

    if not overrides:
        return
    preset = TEXT_GENERATORS.get(text_generator)
    config_class = TEXT_GENERATOR_TYPES.get(preset.type).config_class
    config_class.from_dict({**preset.config, **overrides}, source=f"text generator {text_generator!r} overrides")


def check_run_dir(run_dir: str | Path) -> Path:
    """``run_dir`` as a Path; a path naming an existing file (not a directory) is an error."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: the run directory is an existing file; give a directory (new or a run's)")
    return run_dir


def _check_users(ids: list[UserId], kind: str = "user") -> list[UserId]:
    if not ids:
        raise ConfigError(f"give at least one {kind} id")
    seen: set[UserId] = set()
    for value in ids:
        if value in seen:
            raise ConfigError(f"{kind} id {value!r} is given twice")
        seen.add(value)
    return [_plain(value) for value in ids]


# -- run directory -----------------------------------------------------------------------------


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The run's config.json (``{}`` before any stage wrote it)."""
    path = Path(run_dir) / RUN_CONFIG
    return read_json(path) if path.is_file() else {}


def update_run_config(run_dir: str | Path, section: str, values: dict[str, Any]) -> None:
    """Replace one stage's section of the run's config.json (atomic read-modify-write)."""
    write_json(Path(run_dir) / RUN_CONFIG, {**read_run_config(run_dir), section: _json_ready(values)})


def dataset_fingerprint(dataset: Dataset) -> str:
    """A content hash of what a ranker learns from: the interactions, the user ids and the item ids."""
    digest = hashlib.blake2b(digest_size=16)
    columns = dataset.interactions[["user_idx", "item_idx", "timestamp", "rating"]]
    digest.update(pd.util.hash_pandas_object(columns, index=False).to_numpy().tobytes())
    for ids in (dataset.user_ids, dataset.item_ids):
        digest.update(pd.util.hash_pandas_object(pd.Series(ids).astype(str), index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _digest(value: Any) -> str:
    return hashlib.blake2b(json.dumps(value, sort_keys=True).encode("utf-8"), digest_size=16).hexdigest()


def _saved_ranker(model_dir: Path) -> bool:
    from genrec.rankers.base import CONFIG_FILE, WEIGHTS_FILE

    return (model_dir / CONFIG_FILE).is_file() and (model_dir / WEIGHTS_FILE).is_file()


def _load(dataset: str | Path | Dataset, images: str | Path | None = None) -> Dataset:
    return dataset if isinstance(dataset, Dataset) else load_dataset(dataset, images=images)


def _plain(value: Any) -> UserId:
    """A numpy scalar id as a Python int/str (JSON- and Prefect-friendly)."""
    return value.item() if isinstance(value, np.generic) else value


def _write_table(table: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as temporary:
        table.to_parquet(temporary, index=False)
    return path


def _read_recommendations(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: recommendations table not found; run recommend first")
    table = pd.read_parquet(path)
    missing = {"user_id", "item_id"} - set(table.columns)
    if missing:
        raise ConfigError(f"{path}: missing column(s) {sorted(missing)}; expected user_id, rank and item_id")
    return table


def _json_ready(value: Any) -> Any:
    """NaN -> None (strict JSON), numpy scalars -> Python, recursively."""
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


# -- stage internals ---------------------------------------------------------------------------


def _profiles(
    dataset: Dataset,
    encoder_name: str,
    users: list[UserId],
    run_dir: Path,
    cache_dir: str | Path | None,
    progress: bool,
) -> tuple[Any, Any, dict[UserId, Any]]:
    """The encoder, the users' history vectors and their preference profiles (user -> profile)."""
    from genrec.encoders import create_encoder
    from genrec.pipelines.encode import encode_histories, encode_items, preference_profile

    encoder = create_encoder(encoder_name)
    cache = Path(cache_dir) if cache_dir is not None else run_dir / CACHE_DIR
    item_embeddings = encode_items(dataset, encoder, cache_dir=cache, progress=progress)
    histories = encode_histories(dataset, item_embeddings, users=users)
    profiles = {p.user_id: p for p in preference_profile(dataset, histories, item_embeddings, encoder=encoder)}
    return encoder, histories, profiles


def _ranking_metrics(model_dir: Path, dataset: Dataset, progress: bool) -> dict[str, Any]:
    from genrec.pipelines.ranking import evaluate_ranker, split
    from genrec.rankers import load_ranker

    model = load_ranker(str(model_dir))
    evaluation = evaluate_ranker(model, split(dataset), progress=progress)
    record = read_json(model_dir / TRAIN_RECORD) if (model_dir / TRAIN_RECORD).is_file() else {}
    return {
        "ranker": model.name,
        "phase": "test",
        "metrics": evaluation.metrics,
        "cold_start": {"n_users": evaluation.n_cold_users, **evaluation.cold_start},
        "extra": evaluation.extra,
        "fit": record.get("fit"),
        "key": record.get("key"),
    }


def _image_metrics(table_path: Path, baseline_path: Path, encoder: Any, dataset: Dataset, histories: Any) -> dict:
    from genrec.evaluation.image_metrics import image_metrics

    table = pd.read_parquet(table_path)
    baseline = pd.read_parquet(baseline_path) if baseline_path.is_file() else None
    user_vectors = dict(zip(histories.user_ids.tolist(), histories.embeddings, strict=True))
    scored = image_metrics(table, encoder, dataset, user_vectors, baseline=baseline) if len(table) else {}
    return {
        **scored,
        "generated": int((~table["reused"]).sum()),
        "reused": int(table["reused"].sum()),
        "flagged": int(table["flagged"].sum()),
        "safety_checked": bool(table["unsafe_score"].notna().any()) if len(table) else False,
        "baseline_flagged": int(baseline["flagged"].sum()) if baseline is not None else None,
    }


def _description_metrics(run_dir: Path, dataset: Dataset, profiles: dict) -> dict[str, Any]:
    from genrec.pipelines.describe import (
        BASELINE_REPORT,
        BASELINE_TABLE,
        DESCRIPTIONS_REPORT,
        DESCRIPTIONS_TABLE,
        description_figures,
    )

    return description_figures(
        pd.read_parquet(run_dir / DESCRIPTIONS_TABLE),
        pd.read_parquet(run_dir / BASELINE_TABLE),
        read_json(run_dir / DESCRIPTIONS_REPORT),
        read_json(run_dir / BASELINE_REPORT),
        profiles,
        dataset,
    )
