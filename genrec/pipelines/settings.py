"""One run's settings, the one definition: :class:`RunSettings` (with :class:`UserSelection` and
:class:`GenerationSettings`), and the run presets (``genrec/presets/runs/*.json``, e.g. ``demo``).

The ``genrec`` run commands build their options from these fields, the Prefect flows take a
``RunSettings`` as their parameter (the UI form: a dropdown for every registry-backed field, with
descriptions and bounds), and the Python API takes one too. Every name (ranker, its named config
and overrides, encoder, generators and their overrides, data protocol) is checked here, once, by
validators, before any stage runs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

import numpy as np
import pandas as pd
from pydantic import BeforeValidator, Field, field_validator, model_validator

from genrec.config import ConfigError, Seed, StrictModel
from genrec.data import Dataset, LoadOptions, load_dataset
from genrec.encoders import list_encoders
from genrec.generators import list_image_generators, list_text_generators
from genrec.registry import PRESETS_DIR, Preset, Registry, UnknownNameError, load_presets
from genrec.requests import REQUEST_MAX_CHARS, clean_request

UserId = int | str
ItemId = int | str

# The run's default config of each ranker when none is named: the fastest setting that keeps most
# of the ranker's accuracy (benchmarks/RESULTS.md, "hstu-demo"); other rankers use their defaults.
RUN_DEFAULT_CONFIGS = {"hstu": "hstu-demo", "sasrec": "sasrec-demo"}
# The run's item features when none are named: MiniLM vectors of each item's title, year, genres and tags for the
# content-aware transformers (and ensembles of them), which rank better with them on validation and rank cold-start
# items (benchmarks/RESULTS.md, "Content-aware hstu and sasrec"); other rankers take none.
RUN_DEFAULT_ITEM_FEATURES = {"hstu": "minilm", "sasrec": "minilm"}
ITEM_FEATURE_SOURCES = ("default", "none", "minilm", "encoder")


def check_encoder(encoder: str) -> None:
    """Raise unless ``encoder`` has an image tower (an open_clip preset or a saved CLIP encoder).

    The safety check and the image metrics embed images.
    """
    from genrec.encoders.base import ENCODER_BACKENDS
    from genrec.encoders.presets import ENCODERS, HF_PREFIX, is_saved_encoder
    from genrec.persistence import read_manifest

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


def clip_encoders() -> list[str]:
    """Encoder presets with an image tower: the ones a run can use."""
    usable = []
    for name in list_encoders():
        try:
            check_encoder(name)
        except (ConfigError, UnknownNameError):
            continue
        usable.append(name)
    return usable


def _rankers() -> list[str]:
    from genrec.rankers import list_rankers

    return list_rankers()


def _named_configs() -> list[str]:
    from genrec.rankers import list_named_configs

    return list_named_configs()


DEFAULT_CONFIG = "default"  # ranker_config: the ranker's run default (RUN_DEFAULT_CONFIGS, else its own defaults)


# StrEnums built from the registries: a member is the registry name itself, and the JSON schema of
# a field of this type lists every choice (a dropdown in the Prefect UI form).
RankerName = StrEnum("RankerName", {name: name for name in _rankers()})
EncoderName = StrEnum("EncoderName", {name: name for name in clip_encoders()})
ImageGeneratorName = StrEnum("ImageGeneratorName", {name: name for name in list_image_generators()})
TextGeneratorName = StrEnum("TextGeneratorName", {name: name for name in list_text_generators()})
RankerConfigName = StrEnum("RankerConfigName", {name: name for name in [DEFAULT_CONFIG, *_named_configs()]})


def _registered(check: Callable[[str], Any]) -> BeforeValidator:
    """A validator giving the registry's own error for an unknown name ("unknown ranker 'x'; valid names: ...")."""

    def validate(value: Any) -> Any:
        if isinstance(value, str):
            try:
                check(value)
            except UnknownNameError as err:
                raise ValueError(str(err)) from None
        return value

    return BeforeValidator(validate)


def _ranker(name: str) -> None:
    from genrec.rankers import RANKERS

    RANKERS.get(name)


def _ranker_config(name: str) -> None:
    from genrec.rankers import NAMED_CONFIGS

    if name != DEFAULT_CONFIG:
        NAMED_CONFIGS.get(name)


def _image_generator(name: str) -> None:
    from genrec.generators import IMAGE_GENERATORS

    IMAGE_GENERATORS.get(name)


def _text_generator(name: str) -> None:
    from genrec.generators import TEXT_GENERATORS

    TEXT_GENERATORS.get(name)


Ranker = Annotated[RankerName, _registered(_ranker)]
RankerConfig = Annotated[RankerConfigName, _registered(_ranker_config)]
Encoder = Annotated[EncoderName, _registered(check_encoder)]
ImageGenerator = Annotated[ImageGeneratorName, _registered(_image_generator)]
TextGenerator = Annotated[TextGeneratorName, _registered(_text_generator)]


class UserMode(StrEnum):
    """How a run chooses its users; each mode reads only its own fields, so partial forms stay valid."""

    ids = "ids"  # the `ids` field
    sample = "sample"  # a seeded random sample of `sample` users
    active = "active"  # users with an interaction since `active_since`, or in the last `active_within_days` days
    all = "all"  # every user of the data set


class UserSelection(StrictModel):
    """Which users a run is for: explicit ids, a seeded sample, the active ones, or all."""

    mode: UserMode = Field(UserMode.sample, description="ids, sample (a seeded random sample), active, or all")
    ids: list[UserId] = Field(default_factory=list, description="user ids, for mode ids")
    sample: int = Field(5, ge=1, le=1_000_000, description="mode sample: how many users")
    active_since: datetime | int | None = Field(
        None, description="mode active: users with an interaction at or after this time (ISO date/time UTC, or unix s)"
    )
    active_within_days: float | None = Field(
        None, gt=0, le=36_500, description="mode active: users with an interaction in the last N days of the log"
    )

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.mode == UserMode.ids:
            if not self.ids:
                raise ValueError("mode ids needs at least one user id in ids")
            _check_unique(self.ids, "user")
        elif self.mode == UserMode.active and (self.active_since is None) == (self.active_within_days is None):
            raise ValueError("mode active needs exactly one of active_since and active_within_days")
        return self

    def since_seconds(self, newest: int) -> int | None:
        """Mode active's threshold as unix seconds (naive date/times are UTC; days count back from ``newest``)."""
        if self.active_within_days is not None:
            return newest - round(self.active_within_days * 86400)
        moment = self.active_since
        if moment is None or isinstance(moment, int):
            return moment
        return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())

    def select(self, dataset: Dataset, seed: int) -> list[UserId]:
        """The raw ids of the selected users, in the data set's user order (explicit ids in the given order).

        Raises ConfigError for unknown ids, a sample larger than the candidates, or no active user.
        """
        if self.mode == UserMode.ids:
            try:
                index = dataset.user_index(list(self.ids))
            except KeyError as err:
                raise ConfigError(err.args[0]) from None
            return [plain(user) for user in dataset.user_ids[index]]
        candidates = np.arange(dataset.n_users)
        if self.mode == UserMode.active:
            last = np.maximum.reduceat(dataset.interactions["timestamp"].to_numpy(), dataset.user_offsets[:-1])
            since = self.since_seconds(int(last.max()))
            candidates = candidates[last >= since]
            if not len(candidates):
                raise ConfigError(
                    f"{dataset.name}: no user has an interaction at or after {pd.Timestamp(since, unit='s', tz='UTC')} "
                    f"(the newest interaction is at {pd.Timestamp(int(last.max()), unit='s', tz='UTC')})"
                )
        if self.mode == UserMode.sample:
            if self.sample > len(candidates):
                raise ConfigError(
                    f"{dataset.name}: cannot sample {self.sample} users from {len(candidates)} candidates"
                )
            candidates = np.sort(np.random.default_rng(seed).choice(candidates, size=self.sample, replace=False))
        return [plain(user) for user in dataset.user_ids[candidates]]


class GenerationSettings(StrictModel):
    """What makes a run's images and descriptions: the encoder, the generators, and where inputs live."""

    encoder: Encoder = Field(
        EncoderName("tiny"), description="CLIP encoder of the catalogue, the image safety check and the image metrics"
    )
    image_generator: ImageGenerator = Field(ImageGeneratorName("tiny"), description="registered image generator")
    text_generator: TextGenerator = Field(
        TextGeneratorName("smollm2-facts"), description="registered description generator"
    )
    image_generator_overrides: dict[str, Any] = Field(
        default_factory=dict, description='image generator config fields over its preset\'s, e.g. {"steps": 2}'
    )
    text_generator_overrides: dict[str, Any] = Field(
        default_factory=dict,
        description='description generator config fields over its preset\'s, e.g. {"grounding": {"max_retries": 1}}',
    )
    images: str | None = Field(
        None, description="a directory of item images named by item id (posters); empty: text-only items"
    )
    cache_dir: str | None = Field(None, description="the embedding cache directory; empty: cache/ in the run directory")

    @model_validator(mode="after")
    def _check(self) -> Self:
        from genrec.generators import IMAGE_GENERATORS, TEXT_GENERATOR_TYPES, TEXT_GENERATORS
        from genrec.generators.diffusion import ImageGeneratorConfig

        if self.image_generator_overrides:
            ImageGeneratorConfig.from_dict(
                {**IMAGE_GENERATORS.get(self.image_generator).config, **self.image_generator_overrides},
                source=f"image generator '{self.image_generator}' overrides",
            )
        if self.text_generator_overrides:
            preset = TEXT_GENERATORS.get(self.text_generator)
            TEXT_GENERATOR_TYPES.get(preset.type).config_class.from_dict(
                {**preset.config, **self.text_generator_overrides},
                source=f"text generator '{self.text_generator}' overrides",
            )

        if self.images is not None and not Path(self.images).is_dir():
            raise ValueError(f"images: {self.images}: no such directory (expected a directory of item images)")
        return self


def check_models_installed(generation: GenerationSettings) -> None:
    """ConfigError when the description generator's offline model is not installed: called before a run's first
    stage, so it fails in the first second rather than after the ranker's fit (not a validator: the settings
    stay buildable, e.g. as the flows' defaults, on a machine without it)."""
    from genrec.generators import TEXT_GENERATORS
    from genrec.language_models import SMOLLM2, LanguageModelNotInstalledError, smollm2_gguf

    preset = TEXT_GENERATORS.get(generation.text_generator)
    if {**preset.config, **generation.text_generator_overrides}.get("model") == SMOLLM2:
        try:
            smollm2_gguf()
        except (LanguageModelNotInstalledError, FileNotFoundError) as err:
            raise ConfigError(f"text generator '{generation.text_generator}': {err}") from None


class RunSettings(StrictModel):
    """Everything that defines a run: data, users, ranker, items per user, the user's request, generation, seed."""

    dataset: str = Field("movielens-latest-small", min_length=1, description="a bundled name, a path, or FORMAT:PATH")
    load: LoadOptions = Field(
        default_factory=LoadOptions,
        description="how loading treats imperfect input, column mapping and preprocessing (k-core, protocol)",
    )
    users: UserSelection = Field(default_factory=UserSelection, description="which users the run is for")
    ranker: Ranker = Field(RankerName("hstu"), description="registered ranker (ID-driven or LLM)")
    ranker_config: RankerConfig = Field(
        RankerConfigName(DEFAULT_CONFIG),
        description="a named ranker config; default: hstu-demo for hstu, sasrec-demo for sasrec, else the ranker's "
        "own defaults (a JSON config file: its fields as ranker_overrides, or genrec run --config FILE.json)",
    )
    ranker_overrides: dict[str, Any] = Field(
        default_factory=dict, description='ranker config fields over the config\'s, e.g. {"epochs": 20}'
    )
    item_features: str = Field(
        "default",
        min_length=1,
        description="item vectors the ranker takes: default (minilm for hstu, sasrec and their ensembles, else none), "
        "none, minilm (text of title, year, genres, tags), encoder (the run's CLIP encoder) or a .npy file "
        "[n_items, D]",
    )
    k: int = Field(3, ge=1, le=1000, description="recommended items per user")
    items: list[ItemId] | None = Field(None, description="item ids to use instead of ranking (no ranker is trained)")
    seed: Seed = Field(0, description="seeds the ranker, the user sample, the image noise and the LLM's sampling")
    request: str | None = Field(
        None,
        description="a request in your words that conditions the ranking, e.g. 'something like Alien, but funny, "
        f"no horror, from the 90s' (sanitised, cut at {REQUEST_MAX_CHARS} characters); empty: none",
    )
    generation: GenerationSettings = Field(
        default_factory=GenerationSettings, description="encoder, image and description generators"
    )

    @field_validator("ranker_config", mode="before")
    @classmethod
    def _none_is_default(cls, value: Any) -> Any:
        return DEFAULT_CONFIG if value is None else value  # settings recorded before "default" existed

    @field_validator("item_features", mode="before")
    @classmethod
    def _none_is_none(cls, value: Any) -> Any:
        return "none" if value is None else value  # settings recorded before "default" meant no features

    @field_validator("request", mode="before")
    @classmethod
    def _sanitised_request(cls, value: Any) -> Any:
        """Untrusted text: markup, links and control tokens removed, cut at REQUEST_MAX_CHARS; blank: None."""
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"request: expected text, got {type(value).__name__}")
        return clean_request(value)[0] or None

    @model_validator(mode="after")
    def _check(self) -> Self:
        from genrec.rankers import RANKERS

        if self.items is not None:
            if not self.items:
                raise ValueError("items is empty; give at least one item id, or leave it empty to rank")
            if self.request is not None:
                raise ValueError(
                    "request: a request conditions the ranking, and a run that gives its items ranks nothing; "
                    "leave request or items empty"
                )
            _check_unique(self.items, "item")
            return self
        self.resolved_ranker_config()
        if self.item_features not in ITEM_FEATURE_SOURCES and not Path(self.item_features).is_file():
            raise ValueError(
                f"item_features: {self.item_features}: expected {', '.join(ITEM_FEATURE_SOURCES)} or an existing "
                ".npy file"
            )
        if self.item_features not in ("default", "none"):
            RANKERS.get(self.ranker).check_accepts_item_features()
        return self

    @property
    def ranker_config_name(self) -> str | None:
        if self.ranker_config != DEFAULT_CONFIG:
            return str(self.ranker_config)
        return RUN_DEFAULT_CONFIGS.get(str(self.ranker))

    @property
    def resolved_item_features(self) -> str | None:
        """The ranker's item features: the named source, the run default for ``default``, None for ``none``."""
        if self.item_features != "default":
            return None if self.item_features == "none" else self.item_features
        ranker = str(self.ranker)
        if ranker == "ensemble":
            ranker = self.resolved_ranker_config().member
        return RUN_DEFAULT_ITEM_FEATURES.get(ranker)

    def resolved_ranker_config(self) -> Any:
        """The ranker's config: the named config (or file), the overrides, then the run's seed."""
        from genrec.rankers import resolve_ranker_config

        overrides = {**self.ranker_overrides, "seed": self.seed}
        return resolve_ranker_config(str(self.ranker), self.ranker_config_name, overrides)

    def load_dataset(self) -> Dataset:
        """The run's data set, loaded and validated with its load options, protocol and item images."""
        return load_dataset(self.dataset, images=self.generation.images, options=self.load)

    def with_values(self, values: dict[str, Any], source: str = "run settings") -> RunSettings:
        """These settings with ``values`` (nested dicts for nested fields) over them, validated."""
        return RunSettings.from_dict(merge_settings(self.model_dump(mode="json"), values), source=source)


RUN_PRESETS: Registry[Preset] = Registry(
    "run preset", stage="run-presets", description="whole runs by name (genrec run --preset NAME): RunSettings fields"
)
load_presets(RUN_PRESETS, PRESETS_DIR / "runs", types={"run": RunSettings})


def load_run_preset(name: str, values: dict[str, Any] | None = None) -> RunSettings:
    """The run settings of a preset (``genrec/presets/runs/<name>.json``), with ``values`` over them."""
    preset = RUN_PRESETS.get(name)
    return RunSettings.from_dict(merge_settings(preset.config, values or {}), source=f"run preset {name!r}")


def ranker_config_values(config: str) -> dict[str, Any]:
    """The settings a ``--config`` option gives: a named config, or a JSON config file's fields as ranker overrides."""
    from genrec.config import load_json_object

    if config.endswith(".json") or Path(config).is_file():
        return {"ranker_overrides": load_json_object(config)}
    return {"ranker_config": config}


def list_run_presets() -> list[str]:
    return RUN_PRESETS.names()


def plain(value: Any) -> Any:
    """A numpy scalar id as a Python int/str (JSON- and Prefect-friendly)."""
    return value.item() if isinstance(value, np.generic) else value


def _check_unique(ids: list[Any], kind: str) -> None:
    seen: set[Any] = set()
    for value in ids:
        if value in seen:
            raise ValueError(f"{kind} id {value!r} is given twice")
        seen.add(value)


def merge_settings(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` over ``base``, recursively for nested settings (a dict value of an override field replaces)."""
    merged = dict(base)
    for key, value in values.items():
        nested = isinstance(value, dict) and isinstance(base.get(key), dict) and not key.endswith("overrides")
        merged[key] = merge_settings(base[key], value) if nested else value
    return merged
