"""One plan: a run's stages in the card's order, each ``stage(run_dir, settings, progress)`` over one run directory.

::

    select-users -> encode -> train -> recommend -> images -> describe -> evaluate -> report

- **select-users** writes users.json (:class:`~genrec.pipelines.settings.UserSelection`);
- **encode** puts the catalogue's vectors under the run's encoder, and under MiniLM when they are the
  ranker's item features (the default for hstu and sasrec: content-aware rankers), into the
  embedding cache: the generators, the metrics and the ranker read them from there, so nothing is
  encoded twice;
- **train** fits the ranker on the leave-one-out training split into model/ (reused when its key,
  a hash of the data, ranker, resolved config, item features and split, is unchanged); skipped
  when the run gives ``items``;
- **recommend** writes recommendations.parquet: the ranker's top-k from each user's full history,
  seen items excluded, conditioned on the run's request when it has one
  (:mod:`genrec.pipelines.request_ranking`; request.json records how it was read), or the given items;
- **images** writes a personalised image and its non-personalised baseline per recommendation;
- **describe** writes a grounded description and its non-personalised baseline per recommendation;
- **evaluate** writes metrics.json; **report** writes report.html.

Every stage takes the run directory, the :class:`~genrec.pipelines.settings.RunSettings` and
whether to show progress, and returns the path it wrote (train: None when skipped). Stages talk
through the run directory only (:class:`~genrec.run_directory.RunDirectory`), so
:func:`run_pipeline` runs :data:`PLAN` in-process and :func:`genrec.flows.pipeline.pipeline_flow`
submits the same plan as Prefect tasks. Each stage records the settings it ran with and its own
inputs in config.json. Nothing here imports Prefect.

User profiles (what personalises images and descriptions) come from the run's encoder when it has
trained weights, else from plain counts of each user's history (:func:`~genrec.grounding.facts.profile_from_history`):
a random-weight encoder's vectors would make them noise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genrec.config import ConfigError
from genrec.data import Dataset
from genrec.pipelines.settings import RunSettings, check_models_installed, load_run_preset
from genrec.run_directory import RunDirectory

StageFunction = Callable[[str | Path, RunSettings, bool], Path | None]


# -- the stages ---------------------------------------------------------------------------------


def select_users(run_dir: str | Path, settings: RunSettings, progress: bool = True) -> Path:
    """users.json: the raw ids of the selected users (:meth:`UserSelection.select`)."""
    run = _start(run_dir, settings)
    users = settings.users.select(load_run_dataset(settings), settings.seed)
    return run.write_users(users)


def encode(run_dir: str | Path, settings: RunSettings, progress: bool = True) -> Path:
    """The catalogue through the run's encoder (and MiniLM, when the ranker's item features ask for it) into
    the embedding cache; returns the cache directory."""
    from genrec.encoders import create_encoder
    from genrec.pipelines.encode import encode_items

    run = _start(run_dir, settings)
    dataset, cache = load_run_dataset(settings), run.cache_dir(settings.generation.cache_dir)
    encode_items(dataset, run_encoder(settings), cache_dir=cache, progress=progress)
    if settings.items is None and (settings.resolved_item_features == "minilm" or settings.request is not None):
        encode_items(dataset, create_encoder("minilm"), cache_dir=cache, progress=progress)  # features, requests
    return cache


def train(run_dir: str | Path, settings: RunSettings, progress: bool = True) -> Path | None:
    """Fit the ranker on the leave-one-out training split and save it to model/; None when the run gives items.

    A rerun with the same reuse key (recorded in model/train.json and config.json) fits nothing.
    """
    from genrec.evaluation import SplitConfig
    from genrec.pipelines.ranking import fit_ranker, split
    from genrec.rankers import create_ranker

    run = _start(run_dir, settings)
    if settings.items is not None:
        return None
    dataset = load_run_dataset(settings)
    resolved = settings.resolved_ranker_config()
    inputs = {
        "ranker": str(settings.ranker),
        "config": resolved.model_dump(mode="json"),
        "data": dataset_fingerprint(dataset),
        "split": SplitConfig().model_dump(mode="json"),
        "item_features": _item_features_identity(settings),
    }
    key = _digest(inputs)
    record = run.read_train_record()
    if record.get("key") != key or not run.has_model():
        run.train_record.unlink(missing_ok=True)  # the weights about to be written are not the recorded model's
        features = _item_features(dataset, settings, run, progress)
        model = create_ranker(settings.ranker, resolved, item_features=features)
        report = fit_ranker(model, split(dataset), progress=progress)
        model.save_pretrained(run.model_dir)
        record = {"key": key, **inputs, "dataset": dataset.name, "fit": report.to_dict()}
        run.write_json(f"{RunDirectory.MODEL}/{RunDirectory.TRAIN_RECORD}", record)
    run.update_config("train", {"key": key, "dataset": dataset.name, **inputs})
    return run.model_dir


def recommend(run_dir: str | Path, settings: RunSettings, progress: bool = True) -> Path:
    """recommendations.parquet: the saved ranker's top-k for the selected users (seen items excluded),
    conditioned on the run's request when it has one (request.json: the request as read), or the run's
    given items for each of them."""
    from genrec.requests import parse_request

    run = _start(run_dir, settings)
    users, dataset = run.read_users(), load_run_dataset(settings)
    parsed = None
    if settings.items is not None:
        table = given_items_table(dataset, users, settings.items)
        record: dict[str, Any] = {"users": users, "items": settings.items}
    else:
        model = load_saved_ranker(run.model_dir, dataset)
        parsed = parse_request(settings.request, dataset)
        cache = run.cache_dir(settings.generation.cache_dir)
        table = top_k_table(model, dataset, users, settings.k, parsed, cache, progress)
        record = {"users": users, "k": settings.k, "model_key": run.read_train_record().get("key")}
        record["request"] = None if parsed is None else dataclasses.asdict(parsed)
    run.write_request(None if parsed is None else dataclasses.asdict(parsed))
    path = run.write_table(RunDirectory.RECOMMENDATIONS, table)
    run.update_config("recommend", record)
    return path


def generate_images(run_dir: str | Path, settings: RunSettings, progress: bool = True) -> Path:
    """images/ with images.parquet (personalised) and images_baseline.parquet (the non-personalised baseline).

    The safety check (zero-shot, in the run encoder's space) moves flagged images to
    images/blocked/; with a random-weight encoder it is skipped (its scores would be noise) and
    metrics.json says so. Finished images are reused on a rerun.
    """
    from genrec.generators import ImageSafetyChecker, create_image_generator
    from genrec.pipelines.images import generate_images as write_images

    run = _start(run_dir, settings)
    table, dataset = run.read_recommendations(), load_run_dataset(settings)
    encoder, profiles = run_profiles(dataset, settings, run, table["user_id"].unique().tolist(), progress)
    generator = create_image_generator(
        settings.generation.image_generator, settings.generation.image_generator_overrides
    )
    safety = None if encoder.config.random_weights else ImageSafetyChecker(encoder)
    options = {"out_dir": run.path, "seeds": (settings.seed,), "safety": safety, "progress": progress}
    # The non-personalised image of the same (user, item, seed) is the baseline personalisation is measured against.
    write_images(generator, table, profiles, dataset, personalization="none", **options)
    write_images(generator, table, profiles, dataset, **options)
    run.update_config("images", {"generator": str(settings.generation.image_generator), "profiles": _source(encoder)})
    return run / RunDirectory.IMAGES


def describe(run_dir: str | Path, settings: RunSettings, progress: bool = True) -> Path:
    """descriptions.parquet (+ its grounding report) and the non-personalised baseline's, beside it.

    Finished descriptions are reused on a rerun.
    """
    from genrec.generators import create_text_generator
    from genrec.pipelines.describe import generate_descriptions
    from genrec.requests import parsed_request

    run = _start(run_dir, settings)
    table, dataset = run.read_recommendations(), load_run_dataset(settings)
    encoder, profiles = run_profiles(dataset, settings, run, table["user_id"].unique().tolist(), progress)
    name = settings.generation.text_generator
    sampling = {} if name == "template" else {"seed": settings.seed}  # the template generator has no randomness
    describer = create_text_generator(name, {**sampling, **settings.generation.text_generator_overrides}, dataset)
    request = parsed_request(run.read_request())  # the recommend stage's record of the run's request
    generate_descriptions(describer, table, profiles, dataset, out_dir=run.path, progress=progress, request=request)
    # The non-personalised description of the same (user, item, seed, request): the text personalisation baseline.
    generate_descriptions(
        describer, table, profiles, dataset, out_dir=run.path, progress=progress, personalize=False, request=request
    )
    run.update_config("describe", {"generator": str(name), "profiles": _source(encoder)})
    return run / RunDirectory.DESCRIPTIONS


def evaluate(run_dir: str | Path, settings: RunSettings, progress: bool = True) -> Path:
    """metrics.json: whatever the run directory holds, scored.

    - ``ranking``: the saved ranker's full-ranking test metrics (leave-one-out, the split it was
      fitted on), cold-start slice, extras and fit report; when model/ exists;
    - ``images``: CLIP score, cross-user diversity and personalisation against the baseline (the
      run encoder's space) with the counts of generated, reused and flagged images;
    - ``descriptions``, ``grounding_report`` and ``baseline_grounding_report``: the guard's rates
      (the LLM's own pass rate before any fallback, regeneration, fallback, final), grounding,
      preference coverage and the personalisation lift against the baseline.

    NaN metrics are written as null.
    """
    from genrec.evaluation.run_metrics import images_section, ranking_section
    from genrec.pipelines.describe import description_figures
    from genrec.pipelines.encode import encode_histories
    from genrec.pipelines.ranking import split
    from genrec.requests import parsed_request

    run = _start(run_dir, settings)
    dataset = load_run_dataset(settings)
    metrics: dict[str, Any] = {}
    if run.has_model():
        model = load_saved_ranker(run.model_dir, dataset)
        metrics["ranking"] = ranking_section(model, split(dataset), run.read_train_record(), progress)
    if run.has(RunDirectory.RECOMMENDATIONS):
        metrics["recommendations"] = len(run.read_recommendations())
    if run.has(RunDirectory.IMAGES) or run.has(RunDirectory.DESCRIPTIONS):
        users = run.read_recommendations()["user_id"].unique().tolist()
        encoder, profiles = run_profiles(dataset, settings, run, users, progress)
        if run.has(RunDirectory.IMAGES):
            histories = encode_histories(dataset, _item_vectors(dataset, encoder, run, settings, progress), users=users)
            user_vectors = dict(zip(histories.user_ids.tolist(), histories.embeddings, strict=True))
            baseline = run.read_table(RunDirectory.BASELINE_IMAGES) if run.has(RunDirectory.BASELINE_IMAGES) else None
            metrics["images"] = images_section(
                run.read_table(RunDirectory.IMAGES), baseline, encoder, dataset, user_vectors
            )
        if run.has(RunDirectory.DESCRIPTIONS):
            metrics |= description_figures(
                run.read_table(RunDirectory.DESCRIPTIONS),
                run.read_table(RunDirectory.BASELINE_DESCRIPTIONS),
                run.read_json(RunDirectory.DESCRIPTIONS_REPORT),
                run.read_json(RunDirectory.BASELINE_DESCRIPTIONS_REPORT),
                profiles,
                dataset,
                request=parsed_request(run.read_request()),
            )
    return run.write_json(RunDirectory.METRICS, metrics)


def report(run_dir: str | Path, settings: RunSettings, progress: bool = True) -> Path:
    """report.html from what the run directory holds."""
    from genrec.evaluation.report import write_report

    _start(run_dir, settings)
    return write_report(run_dir, dataset=load_run_dataset(settings))


@dataclass(frozen=True)
class Stage:
    """One step of the plan: its name, its function, and what it reads from the run directory.

    ``reads``: the run-directory entries the stage's output depends on (the flows fingerprint them
    into the task's cache key; ``"*"``: the whole directory). ``gpu``: it runs models that a GPU speeds up.
    """

    name: str
    run: StageFunction
    reads: tuple[str, ...] = ()
    gpu: bool = False


PLAN: tuple[Stage, ...] = (
    Stage("select-users", select_users),
    Stage("encode", encode, gpu=True),
    Stage("train", train, gpu=True),
    Stage("recommend", recommend, reads=(RunDirectory.USERS, RunDirectory.MODEL)),
    Stage("images", generate_images, reads=(RunDirectory.RECOMMENDATIONS,), gpu=True),
    Stage("describe", describe, reads=(RunDirectory.RECOMMENDATIONS,), gpu=True),
    Stage("evaluate", evaluate, reads=("*",), gpu=True),
    Stage("report", report, reads=("*", RunDirectory.METRICS)),
)
STAGES = {stage.name: stage for stage in PLAN}


def run_pipeline(settings: RunSettings, run_dir: str | Path, progress: bool = True) -> Path:
    """Every stage of :data:`PLAN`, in order, in this process; returns the run directory.

    The settings were validated when built (every name and option); the run holds the directory's
    one-writer lock throughout (:meth:`RunDirectory.writing`); a rerun reuses what is finished.
    """
    check_models_installed(settings.generation)
    with RunDirectory(run_dir).writing():
        for stage in PLAN:
            stage.run(run_dir, settings, progress)
    return Path(run_dir)


def run_demo(out: str | Path = "runs/demo", preset: str = "demo", progress: bool = True) -> Path:
    """The main job as plain functions, without Prefect: :func:`run_pipeline` with the ``demo`` run preset.

    ``genrec demo`` runs the same settings as the ``pipeline`` flow.
    """
    return run_pipeline(load_run_preset(preset), out, progress)


# -- serving and shared pieces --------------------------------------------------------------------


def serve_recommendations(model_dir: str | Path, settings: RunSettings) -> pd.DataFrame:
    """Top-k from a saved ranker (a run directory or its model/) for the settings' users: no refit, no run directory.

    The same table the recommend stage writes for the same model, data set, users, k and request (its
    MiniLM item vectors come from ``generation.cache_dir``, else the default embedding cache); what the
    request was read as is ``table.attrs["request"]``.
    """
    from genrec.requests import parse_request

    dataset = load_run_dataset(settings)
    model = load_saved_ranker(model_dir, dataset)
    parsed = parse_request(settings.request, dataset)
    users = settings.users.select(dataset, settings.seed)
    table = top_k_table(model, dataset, users, settings.k, parsed, settings.generation.cache_dir)
    table.attrs["request"] = None if parsed is None else dataclasses.asdict(parsed)
    return table


def load_saved_ranker(model_dir: str | Path, dataset: Dataset) -> Any:
    """The ranker saved in ``model_dir`` (a run's model/, or a run directory), checked against ``dataset``."""
    from genrec.rankers import load_ranker

    model_dir = Path(model_dir)
    if RunDirectory(model_dir).has_model():  # a run directory: its model/
        model_dir = RunDirectory(model_dir).model_dir
    if not (model_dir / "config.json").is_file() or not (model_dir / "model.safetensors").is_file():
        raise ConfigError(f"{model_dir}: no saved ranker (config.json and model.safetensors); run train first")
    model = load_ranker(str(model_dir))
    if model.n_items != dataset.n_items:
        raise ConfigError(
            f"{model_dir}: the ranker was trained on {model.n_items} items, {dataset.name} has {dataset.n_items}; "
            "train it on this data set"
        )
    return model


def top_k_table(
    model: Any,
    dataset: Dataset,
    users: list[Any],
    k: int,
    request: Any = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """The ranker's top-``k`` for ``users`` from their full history, seen items excluded: the recommendations table.

    ``request``: a :class:`~genrec.requests.ParsedRequest` conditioning the ranking
    (:func:`~genrec.pipelines.request_ranking.rank_with_request`, its MiniLM item vectors through the
    embedding cache in ``cache_dir``).
    """
    from genrec.pipelines.ranking import rank
    from genrec.pipelines.request_ranking import rank_with_request, request_item_vectors

    try:
        if request is None or request.empty:
            return rank(model, dataset, users=users, k=k)
        vectors = request_item_vectors(dataset, cache_dir, progress)
        return rank_with_request(model, dataset, users, request, k, item_vectors=vectors)
    except KeyError as err:
        raise ConfigError(err.args[0]) from None


def given_items_table(dataset: Dataset, users: list[Any], items: list[Any]) -> pd.DataFrame:
    """The given ``items`` for every user, in the given order, shaped like :func:`top_k_table`'s table."""
    try:
        user_idx, item_idx = dataset.user_index(users), dataset.item_index(items)
    except KeyError as err:
        raise ConfigError(err.args[0]) from None
    return pd.DataFrame(
        {
            "user_id": np.repeat(dataset.user_ids[user_idx], len(item_idx)),
            "rank": np.tile(np.arange(1, len(item_idx) + 1), len(user_idx)),
            "item_id": np.tile(dataset.item_ids[item_idx], len(user_idx)),
            "item_idx": np.tile(item_idx, len(user_idx)),
            "score": float("nan"),
            "title": np.tile(dataset.items["title"].to_numpy()[item_idx], len(user_idx)),
        }
    )


def run_profiles(
    dataset: Dataset, settings: RunSettings, run: RunDirectory, users: list[Any], progress: bool
) -> tuple[Any, dict[Any, Any]]:
    """The run's encoder and each user's preference profile (user -> profile).

    Profiles come from the encoder's vectors when it has trained weights, else from counts of the
    history (:func:`~genrec.grounding.facts.profile_from_history`: most frequent genres and tags,
    most recent liked titles).
    """
    from genrec.grounding.facts import profile_from_history
    from genrec.pipelines.encode import encode_histories, preference_profile

    encoder = run_encoder(settings)
    if encoder.config.random_weights:
        return encoder, {user: profile_from_history(dataset, user) for user in users}
    vectors = _item_vectors(dataset, encoder, run, settings, progress)
    histories = encode_histories(dataset, vectors, users=users)
    profiles = preference_profile(dataset, histories, vectors, encoder=encoder)
    return encoder, {profile.user_id: profile for profile in profiles}


def dataset_fingerprint(dataset: Dataset) -> str:
    """A content hash of what a ranker learns from: the interactions, the user ids and the item ids."""
    digest = hashlib.blake2b(digest_size=16)
    columns = dataset.interactions[["user_idx", "item_idx", "timestamp", "rating"]]
    digest.update(pd.util.hash_pandas_object(columns, index=False).to_numpy().tobytes())
    for ids in (dataset.user_ids, dataset.item_ids):
        digest.update(pd.util.hash_pandas_object(pd.Series(ids).astype(str), index=False).to_numpy().tobytes())
    return digest.hexdigest()


_LOADED: dict[str, Dataset] = {}
_LOADING = threading.Lock()
_ENCODERS: dict[str, Any] = {}


def run_encoder(settings: RunSettings) -> Any:
    """The run's encoder, built once per process (the stages of one run share it; weights are read once)."""
    from genrec.encoders import create_encoder

    name = str(settings.generation.encoder)
    with _LOADING:
        if name not in _ENCODERS:
            _ENCODERS.clear()  # one encoder at a time: a real CLIP holds hundreds of MB
            _ENCODERS[name] = create_encoder(name)
        return _ENCODERS[name]


def load_run_dataset(settings: RunSettings) -> Dataset:
    """The run's data set, loaded once per process for the same data settings and unchanged files.

    The stages of one in-process run, or of a flow run's tasks in threads of one process, share it.
    """
    sources = (settings.dataset, settings.generation.images)
    data = [settings.dataset, settings.load.model_dump(mode="json"), settings.generation.images]
    key = json.dumps(
        [*data, *(files_fingerprint(path) for path in map(local_path, sources) if path is not None)],
        sort_keys=True,
        default=str,
    )
    with _LOADING:
        if key not in _LOADED:
            _LOADED.clear()  # one data set at a time: a catalogue with its vocabularies is large
            _LOADED[key] = settings.load_dataset()
        return _LOADED[key]


def local_path(value: Any) -> Path | None:
    """The existing file or directory a data source or path names (``FORMAT:PATH`` too); None for a bundled name."""
    if not isinstance(value, str | Path) or not str(value):
        return None
    text = str(value)
    candidates = [Path(text), *([Path(text.split(":", 1)[1])] if ":" in text else [])]
    return next((candidate for candidate in candidates if candidate.exists()), None)


def files_fingerprint(path: Path, skip: frozenset[str] = frozenset()) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of a file or of every file under a directory, sorted; a directory's
    top-level entries named in ``skip`` are left out (e.g. a run directory's own results)."""
    if path.is_file():
        stat = path.stat()
        return [(path.name, stat.st_size, stat.st_mtime_ns)]
    rows = []
    for root, dirs, files in os.walk(path):
        top = Path(root) == path
        dirs[:] = sorted(d for d in dirs if not (top and d in skip))
        for name in sorted(files):
            if not (top and name in skip):
                stat = (Path(root) / name).stat()
                rows.append((str((Path(root) / name).relative_to(path)), stat.st_size, stat.st_mtime_ns))
    return rows


def _start(run_dir: str | Path, settings: RunSettings) -> RunDirectory:
    """The run directory, with the settings this stage runs under recorded in config.json."""
    run = RunDirectory(run_dir)
    run.update_config("settings", settings.model_dump(mode="json"))
    return run


def _item_vectors(dataset: Dataset, encoder: Any, run: RunDirectory, settings: RunSettings, progress: bool) -> Any:
    from genrec.pipelines.encode import encode_items

    return encode_items(dataset, encoder, cache_dir=run.cache_dir(settings.generation.cache_dir), progress=progress)


def _item_features_identity(settings: RunSettings) -> str | None:
    """What the ranker's item features are, for its reuse key (a file by its content)."""
    source = settings.resolved_item_features
    if source is None or source == "minilm":
        return source
    if source == "encoder":
        return f"encoder:{settings.generation.encoder}"
    return "npy:" + hashlib.blake2b(Path(source).read_bytes(), digest_size=16).hexdigest()


def _item_features(dataset: Dataset, settings: RunSettings, run: RunDirectory, progress: bool) -> Any:
    from genrec.pipelines.encode import load_item_features

    source = settings.resolved_item_features
    if source is None:
        return None
    name = settings.generation.encoder if source == "encoder" else source
    return load_item_features(name, dataset, progress, cache_dir=run.cache_dir(settings.generation.cache_dir))


def _source(encoder: Any) -> str:
    return "history counts" if encoder.config.random_weights else f"encoder {encoder.name}"


def _digest(value: Any) -> str:
    return hashlib.blake2b(json.dumps(value, sort_keys=True).encode("utf-8"), digest_size=16).hexdigest()
