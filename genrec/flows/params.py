"""Typed flow parameters: registry names as enums (dropdowns in the Prefect UI form), bounded numbers.

The enums are built at import from the registries, so every registered ranker, encoder and
generator (including ones other modules register, such as an LLM ranker) is a choice. They are
``StrEnum``s: a member is the registry name itself and passes to the pipeline functions as is.
Prefect validates the flow parameters against these types when a run is created, so a bad value
fails at once instead of an hour into a run.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from genrec.config import ConfigError
from genrec.encoders import list_encoders
from genrec.generators import list_image_generators, list_text_generators
from genrec.pipelines.run import check_names
from genrec.rankers import list_rankers
from genrec.registry import UnknownNameError


def clip_encoders() -> list[str]:
    """Encoder presets with an image tower: the pipeline embeds images (profiles, safety, metrics)."""
    usable = []
    for name in list_encoders():
        try:
            check_names(encoder=name)
        except (ConfigError, UnknownNameError):
            continue
        usable.append(name)
    return usable


RankerName = StrEnum("RankerName", {name: name for name in list_rankers()})
EncoderName = StrEnum("EncoderName", {name: name for name in clip_encoders()})
ImageGeneratorName = StrEnum("ImageGeneratorName", {name: name for name in list_image_generators()})
TextGeneratorName = StrEnum("TextGeneratorName", {name: name for name in list_text_generators()})
DEFAULT_RANKER = RankerName("popular")
DEFAULT_ENCODER = EncoderName("tiny")
DEFAULT_IMAGE_GENERATOR = ImageGeneratorName("tiny")
DEFAULT_TEXT_GENERATOR = TextGeneratorName("template")


class UserMode(StrEnum):
    """How a run chooses its users (each mode reads only its own field, so partial forms stay valid)."""

    ids = "ids"  # the `users` field
    sample = "sample"  # a seeded random sample of `sample` users
    active = "active"  # users with an interaction in the last `active_within_days` days of the log
    all = "all"  # every user of the data set


UserId = int | str
DatasetSource = Annotated[str, Field(min_length=1)]  # a bundled name, a path or FORMAT:PATH
TopK = Annotated[int, Field(ge=1, le=1000)]
SampleSize = Annotated[int, Field(ge=1, le=1_000_000)]
Days = Annotated[float, Field(gt=0, le=36_500)]
Batches = Annotated[int, Field(ge=1, le=10_000)]  # encode/generate batches mapped as tasks
