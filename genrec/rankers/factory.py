"""Build and load rankers by name: :func:`create_ranker`, :func:`load_ranker` and the named configs.

Below every ranker implementation (it needs only the registry, :data:`RANKERS`), so that a ranker
that builds another one (the llm ranker's retriever) imports this module, not the package.
The rankers and genrec's own named configs are registered in ``genrec/rankers/__init__.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genrec.config import ConfigError, load_json_object, shown
from genrec.rankers.base import RANKERS, Ranker, RankerConfig
from genrec.registry import PRESETS_DIR, Preset, Registry

# Named configurations, one JSON file each in genrec/presets/rankers/ (loaded by genrec/rankers/__init__.py
# once every ranker is registered): a ranker's default config is its best-known configuration; named ones
# document other published or studied settings, as overrides.
NAMED_CONFIGS: Registry[Preset] = Registry(
    "named config",
    stage="ranker-configs",
    description="named ranker configs (--config NAME): overrides of a ranker's defaults",
)
NAMED_CONFIGS_DIR = PRESETS_DIR / "rankers"


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
            raise ConfigError(f"named config {shown(config)} is for ranker {preset.type!r}, not {ranker!r}")
        settings = preset.config
        source = f"named config {shown(config)}"
    elif Path(config).suffix == ".json" or Path(config).exists():
        settings, source = load_json_object(config), str(config)
    else:
        raise ConfigError(
            f"config {shown(config)} is neither a JSON file nor a named config; named configs for {ranker!r}: "
            f"{', '.join(list_named_configs(ranker)) or '(none)'}"
        )
    return config_class.from_dict({**settings, **(overrides or {})}, source=source)


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
