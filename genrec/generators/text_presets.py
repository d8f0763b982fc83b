"""Description generator presets (JSON files in ``genrec/presets/text_generators/``) and
:func:`create_text_generator`."""

from __future__ import annotations

from typing import Any

from genrec.config import shown
from genrec.data import Dataset
from genrec.generators.template import TemplateGenerator  # noqa: F401  # importing registers the implementations
from genrec.generators.text import LLMGenerator  # noqa: F401
from genrec.generators.text_base import TEXT_GENERATOR_TYPES, TextGenerator, TextGeneratorConfig
from genrec.generators.text_facts import FactGenerator  # noqa: F401
from genrec.registry import PRESETS_DIR, Preset, Registry, load_presets

TEXT_GENERATORS: Registry[Preset] = Registry(
    "text generator", stage="text-generators", description="description generator presets (--text-generator NAME)"
)
load_presets(TEXT_GENERATORS, PRESETS_DIR / "text_generators", types=TEXT_GENERATOR_TYPES)


def create_text_generator(
    name: str, config: TextGeneratorConfig | dict[str, Any] | None = None, dataset: Dataset | None = None
) -> TextGenerator:
    """A description generator by preset name (:func:`list_text_generators`).

    ``config`` (a config object, or a dict of fields over the preset's) is validated; the LLM
    presets need ``dataset``, the catalogue whose metadata the grounding guard checks claims
    against. Unknown names raise an error listing the valid ones.
    """
    preset = TEXT_GENERATORS.get(name)
    implementation = TEXT_GENERATOR_TYPES.get(preset.type)
    if not isinstance(config, implementation.config_class):
        config = implementation.config_class.from_dict(
            {**preset.config, **(config or {})}, source=f"text generator {shown(name)}"
        )
    return implementation.create(config, dataset)


def list_text_generators() -> list[str]:
    return TEXT_GENERATORS.names()
