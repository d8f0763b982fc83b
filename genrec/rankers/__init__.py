"""Generative ranking models behind one registry.

>>> from genrec.rankers import create_ranker, list_rankers
>>> ranker = create_ranker("popular")
>>> ranker = create_ranker("popular", config={"eval_batch_size": 512})
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genrec.config import ConfigError, load_json_object
from genrec.rankers.base import RANKERS, FitReport, NotFittedError, Ranker, RankerConfig
from genrec.rankers.cfgan import CFGANRanker
from genrec.rankers.diffrec import DiffRecRanker
from genrec.rankers.llm import LLMRanker
from genrec.rankers.multvae import MultVAERanker
from genrec.rankers.popularity import PopularityRanker
from genrec.rankers.sasrec import HSTURanker, SASRecRanker
from genrec.rankers.tiger import TigerRanker
from genrec.registry import PRESETS_DIR, Preset, Registry, load_presets

for _ranker, _description in (
    (PopularityRanker, None),  # None: the first line of the class docstring
    (MultVAERanker, None),
    (DiffRecRanker, None),
    (CFGANRanker, None),
    (SASRecRanker, None),
    (HSTURanker, None),
    (TigerRanker, "TIGER (Rajput et al., NeurIPS 2023): generative retrieval, decoding an item's semantic id"),
    (LLMRanker, "LlamaRec-style: a causal LM (SmolLM2 by default, LoRA fine-tuned) reranks a retriever's top N"),
):
    RANKERS.register(_ranker.name, _ranker, description=_description)

# Named configurations, one JSON file each in genrec/presets/rankers/: a ranker's default config is its
# best-known configuration; named ones document other published or studied settings, as overrides.
NAMED_CONFIGS: Registry[Preset] = Registry(
    "named config",
    stage="ranker-configs",
    description="named ranker configs (--config NAME): overrides of a ranker's defaults",
)
NAMED_CONFIGS_DIR = PRESETS_DIR / "rankers"
load_presets(NAMED_CONFIGS, NAMED_CONFIGS_DIR, types=RANKERS)


def register_named_config(name: str, ranker: str, settings: dict[str, Any], description: str | None = None) -> None:
    """Add a named config at run time (genrec's own are the JSON files in ``genrec/presets/rankers/``)."""
    NAMED_CONFIGS.register(
        name, Preset(description=description or f"settings for {ranker}", type=ranker, config=settings)
    )


def list_named_configs(ranker: str | None = None) -> list[str]:
    return [name for name, preset in NAMED_CONFIGS.items() if ranker in (None, preset.type)]


def resolve_ranker_config(
    ranker: str, config: str | Path | dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> RankerConfig:
    """Build ``ranker``'s config from a named config, a JSON file or a dict; ``overrides`` win.

    Raises ConfigError naming the source and field for unknown keys or bad values.
    """
    config_class = RANKERS.get(ranker).config_class
    source = f"{ranker} config"
    if config is None:
        settings: dict[str, Any] = {}
    elif isinstance(config, dict):
        settings = dict(config)
    elif str(config) in NAMED_CONFIGS:
        preset = NAMED_CONFIGS.get(str(config))
        if preset.type != ranker:
            raise ConfigError(f"named config {config!r} is for ranker {preset.type!r}, not {ranker!r}")
        settings = preset.config
        source = f"named config {config!r}"
    elif Path(config).suffix == ".json" or Path(config).exists():
        settings, source = load_json_object(config), str(config)
    else:
        raise ConfigError(
            f"config {config!r} is neither a JSON file nor a named config; named configs for {ranker!r}: "
            f"{', '.join(list_named_configs(ranker)) or '(none)'}"
        )
    return config_class.from_dict({**settings, **(overrides or {})}, source=source)


__all__ = [
    "NAMED_CONFIGS",
    "RANKERS",
    "FitReport",
    "NotFittedError",
    "Ranker",
    "RankerConfig",
    "create_ranker",
    "list_named_configs",
    "list_rankers",
    "load_ranker",
    "register_named_config",
    "resolve_ranker_config",
]


def list_rankers() -> list[str]:
    return RANKERS.names()


def create_ranker(
    name: str, config: RankerConfig | str | Path | dict[str, Any] | None = None, item_features: np.ndarray | None = None
) -> Ranker:
    """Build an unfitted ranker by registry name; unknown names list the valid ones.

    Every stage's factory has this shape: ``create_<stage>(name, config=None, <stage input>)``.
    ``config`` may be a config object, a dict of fields, a named config or a JSON file path;
    ``item_features`` ([n_items, D]) is the input the feature-fusing rankers take.
    """
    if not isinstance(config, RankerConfig):
        config = resolve_ranker_config(name, config)
    return RANKERS.get(name)(config, item_features=item_features)


def load_ranker(name_or_path: str, device: str | None = None) -> Ranker:
    """Load any saved ranker; the directory's config.json says which class to rebuild."""
    return Ranker.from_pretrained(name_or_path, {"device": device} if device else None)
