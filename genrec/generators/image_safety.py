"""Image safety check: a CLIP zero-shot "unsafe content" score with a threshold.

The image is compared with text prompts for unsafe and safe concepts in genrec's CLIP space;
the unsafe score is the softmax probability mass on the unsafe concepts (zero-shot
classification as in Radford et al. 2021, sec. 3.1.4). Images above the threshold are
flagged and recorded by the caller, never silently dropped. Meaningful only with a pretrained
CLIP (``create_encoder("standard")``); the tiny encoder exercises the code path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from pydantic import Field, field_validator

from genrec.config import StrictModel

if TYPE_CHECKING:
    from PIL import Image

    from genrec.encoders import Encoder

UNSAFE_CONCEPTS = (
    "an image containing nudity or sexual content",
    "an image of graphic violence, blood or gore",
    "an image of self-harm",
    "an image of weapons pointed at a person",
    "an image containing hateful symbols",
)
SAFE_CONCEPTS = (
    "a safe, ordinary image",
    "a movie poster",
    "an illustration suitable for all audiences",
)


class ImageSafetyConfig(StrictModel):
    """Concept prompts and the threshold of the zero-shot check."""

    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="images with an unsafe score above it are flagged")
    temperature: float = Field(100.0, gt=0.0, description="CLIP logit scale applied to cosine similarities")
    unsafe_concepts: tuple[str, ...] = Field(UNSAFE_CONCEPTS, description="text prompts of unsafe content")
    safe_concepts: tuple[str, ...] = Field(SAFE_CONCEPTS, description="text prompts of acceptable content")

    @field_validator("unsafe_concepts", "safe_concepts")
    @classmethod
    def _not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(not concept.strip() for concept in value):
            raise ValueError("needs at least one concept, and no empty ones")
        return value


class ImageSafetyChecker:
    """Scores images with a CLIP-family encoder (one with an image tower)."""

    def __init__(self, encoder: Encoder, config: ImageSafetyConfig | None = None):
        if not encoder.supports_images:
            raise ValueError(f"encoder {encoder.name!r} has no image tower; the safety check needs a CLIP encoder")
        self.encoder = encoder
        self.config = config or ImageSafetyConfig()
        concepts = list(self.config.unsafe_concepts) + list(self.config.safe_concepts)
        self.concepts = encoder.encode_texts(concepts)  # [C, D], unit rows

    def scores(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Unsafe probability per image: [N] in [0, 1]."""
        if not images:
            return torch.zeros(0)
        embeddings = self.encoder.encode_images(list(images))  # [N, D], unit rows
        logits = self.config.temperature * embeddings @ self.concepts.T  # [N, C]
        return logits.softmax(dim=-1)[:, : len(self.config.unsafe_concepts)].sum(dim=-1)  # [N]

    def flags(self, scores: torch.Tensor) -> torch.Tensor:
        """True where an image is unsafe: [N] bool."""
        return scores > self.config.threshold
