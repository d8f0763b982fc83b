"""Encoder presets (JSON files in ``genrec/presets/encoders/``) and :func:`create_encoder`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genrec.config import ConfigError, shown
from genrec.encoders.base import ENCODER_BACKENDS, Encoder, EncoderConfig
from genrec.encoders.clip import OpenCLIPEncoder
from genrec.encoders.text import HFTextEncoder
from genrec.persistence import read_manifest
from genrec.registry import PRESETS_DIR, Preset, Registry, UnknownNameError, load_presets

ENCODERS: Registry[Preset] = Registry(
    "encoder", stage="encoders", description="encoder presets (--encoder NAME; also hf:<id or dir>, a saved directory)"
)
load_presets(ENCODERS, PRESETS_DIR / "encoders", types=ENCODER_BACKENDS)
HF_PREFIX = "hf:"


def list_encoders() -> list[str]:
    """Names of the encoder presets; :func:`create_encoder` also takes ``"hf:<id or dir>"`` and pairs."""
    return ENCODERS.names()


def is_saved_encoder(spec: str) -> bool:
    """Whether ``spec`` names a genrec save directory (any format version; loading checks it holds an encoder)."""
    try:
        read_manifest(Path(spec).expanduser())
    except ConfigError:
        return False
    return True


def create_encoder(
    spec: str | tuple[str, str | None] | EncoderConfig = "tiny",
    config: EncoderConfig | dict[str, Any] | None = None,
    pretrained: bool = True,
) -> Encoder:
    """Build an encoder.

    Args:
        spec: a preset name (:func:`list_encoders`); a ``save_pretrained`` directory;
            ``"hf:<hub id or directory>"`` for any Hugging Face sentence-embedding model; an
            open_clip ``(architecture, pretrained tag)`` pair such as
            ``("ViT-B-32", "laion2b_s34b_b79k")``; or a config object.
        config: config fields over the spec's, e.g. ``{"device": "cuda", "batch_size": 256}``, or a
            whole config object.
        pretrained: ``False`` builds the same architecture with random (seeded) weights and
            downloads nothing: benchmarks of real-size compute offline.

    Raises:
        UnknownNameError: an unknown preset name; the message lists the valid ones.
        ConfigError: an invalid config field or an unknown architecture / tag.
    """
    random = {} if pretrained else {"random_weights": True}
    if isinstance(config, EncoderConfig):
        spec, config = config, None
    overrides = (config or {}) | random
    if isinstance(spec, EncoderConfig):
        backend, fields, name = _backend_of(type(spec)), spec.model_dump(), type(spec).__name__
    elif isinstance(spec, tuple):
        architecture, tag = spec
        backend, fields, name = (
            OpenCLIPEncoder,
            {"architecture": architecture, "pretrained": tag},
            f"{architecture}/{tag}",
        )
    elif is_saved_encoder(spec):
        return Encoder.from_pretrained(spec, overrides)
    elif spec.startswith(HF_PREFIX):
        backend, fields, name = HFTextEncoder, {"model": spec[len(HF_PREFIX) :]}, spec
    elif spec in ENCODERS:
        preset = ENCODERS.get(spec)
        backend, fields, name = ENCODER_BACKENDS.get(preset.type), preset.config, spec
    else:
        raise UnknownNameError(
            f"unknown encoder {spec!r}; valid names: {', '.join(list_encoders())}, "
            "or 'hf:<hub id or directory>', or an open_clip (architecture, pretrained tag) pair"
        )
    settings = backend.config_class.from_dict(fields | overrides, source=f"encoder {shown(name)}")
    return backend(settings, name)


def _backend_of(config_class: type[EncoderConfig]) -> type[Encoder]:
    for backend in ENCODER_BACKENDS.values():
        if backend.config_class is config_class:
            return backend
    raise TypeError(f"no encoder backend takes a {config_class.__name__}")
