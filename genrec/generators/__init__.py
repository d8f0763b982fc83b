"""Personalised content for recommended items: images (diffusers) and descriptions (transformers).

>>> from genrec.generators import create_image_generator
>>> generator = create_image_generator("tiny")                 # random 64x64 SD + IP-Adapter, no download
>>> generator = create_image_generator("standard")             # sd-turbo, 1 step, 512x512
>>> generator = create_image_generator("standard", pretrained=False)  # same architecture, random weights
>>> describer = create_text_generator("template")              # grounded, deterministic, no model
>>> describer = create_text_generator("smollm2-facts", dataset=ds)  # SmolLM2 picks phrases in a frame of facts
>>> describer = create_text_generator("smollm2", dataset=ds)    # SmolLM2 writing freely, behind the guard
>>> describer = create_text_generator("tiny", dataset=ds)       # random tiny Llama: noise, for tests only
"""

from genrec.generators.diffusion import (
    IMAGE_GENERATORS,
    ImageGenerator,
    ImageGeneratorConfig,
    create_image_generator,
    list_image_generators,
)
from genrec.generators.image_safety import ImageSafetyChecker, ImageSafetyConfig
from genrec.generators.prompts import ImagePrompt, build_image_prompt
from genrec.generators.template import TemplateConfig, TemplateGenerator
from genrec.generators.text import LLMConfig, LLMGenerator
from genrec.generators.text_base import TEXT_GENERATOR_TYPES, TextGenerator
from genrec.generators.text_facts import FactConfig, FactGenerator
from genrec.generators.text_presets import TEXT_GENERATORS, create_text_generator, list_text_generators
from genrec.grounding.facts import ItemFacts, UserProfile
from genrec.grounding.guard import DescriptionCheck, GroundingChecker, GroundingConfig, GroundingReport
from genrec.grounding.text_safety import OutputFilter, SafetyConfig

__all__ = [
    "IMAGE_GENERATORS",
    "TEXT_GENERATORS",
    "TEXT_GENERATOR_TYPES",
    "DescriptionCheck",
    "FactConfig",
    "FactGenerator",
    "GroundingChecker",
    "GroundingConfig",
    "GroundingReport",
    "ImageGenerator",
    "ImageGeneratorConfig",
    "ImagePrompt",
    "ImageSafetyChecker",
    "ImageSafetyConfig",
    "ItemFacts",
    "LLMConfig",
    "LLMGenerator",
    "OutputFilter",
    "SafetyConfig",
    "TemplateConfig",
    "TemplateGenerator",
    "TextGenerator",
    "UserProfile",
    "build_image_prompt",
    "create_image_generator",
    "create_text_generator",
    "list_image_generators",
    "list_text_generators",
]
