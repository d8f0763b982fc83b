"""The encoder interface: texts (and, for CLIP-family models, images) to unit vectors in one space.

An :class:`Encoder` holds weights; :func:`genrec.encoders.catalogue.encode_items` is the
stateless algorithm that turns a catalogue into item vectors with it (and the cache).
Encoders save and load through :class:`genrec.persistence.Pretrained`: the backend's weights
plus ``config.json`` (backend as ``type``, preset ``name``, resolved config with paths relative
to the directory), written last, so a directory holding it is complete; ``from_pretrained``
rebuilds the exact encoder from it. Backends register in :data:`ENCODER_BACKENDS`.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import numpy as np
import torch
from pydantic import Field

from genrec.config import ConfigError, Device, Seed, StrictModel
from genrec.encoders.items import NO_IMAGE
from genrec.persistence import Manifest, Pretrained
from genrec.registry import Registry

if TYPE_CHECKING:
    from PIL import Image

Precision = Literal["auto", "fp32", "fp16", "bf16"]


class EncoderConfig(StrictModel):
    """Settings every encoder has; backends add the model they load."""

    device: Device = Field("cpu", description="torch device, e.g. 'cpu', 'cuda', 'cuda:1'")
    precision: Precision = Field("auto", description="autocast dtype; 'auto' = bf16 (or fp16) on CUDA, fp32 on CPU")
    batch_size: int = Field(64, ge=1, description="texts or images per forward pass")
    random_weights: bool = Field(False, description="skip the download and initialise weights randomly (seeded)")
    seed: Seed = Field(0, description="seeds random weight initialisation")


@dataclass
class ItemParts:
    """Per-item text and image vectors before fusion; rows align with the items encoded."""

    text: np.ndarray  # [n, D] float32, unit rows (zeros where the item has no text)
    image: np.ndarray  # [n, D] float32, unit rows (zeros where status != IMAGE_OK)
    status: np.ndarray  # [n] uint8: NO_IMAGE, IMAGE_OK or IMAGE_FAILED
    problems: list[str] = field(default_factory=list)  # one line per failed image

    @classmethod
    def empty(cls, n: int, dim: int) -> ItemParts:
        zeros = np.zeros((n, dim), dtype=np.float32)
        return cls(zeros, zeros.copy(), np.full(n, NO_IMAGE, dtype=np.uint8))


class Encoder(Pretrained, ABC):
    """Base class. Subclasses set ``backend`` and ``config_class``, build their model in ``__init__``
    and implement :meth:`encode_texts` (and :meth:`encode_image_files` when ``supports_images``)."""

    kind = "encoder"
    backend: ClassVar[str]
    config_class: ClassVar[type[EncoderConfig]] = EncoderConfig
    supports_images: ClassVar[bool] = False

    def __init__(self, config: EncoderConfig, name: str):
        self.config = config
        self.name = name
        self._identity: str | None = None

    @property
    def device(self) -> torch.device:
        return torch.device(self.config.device)

    @property
    @abstractmethod
    def dim(self) -> int:
        """Embedding width D."""

    @property
    def image_weight(self) -> float:
        """Weight of the image vector in the fused item vector (0 for text-only encoders)."""
        return 0.0

    @abstractmethod
    def encode_texts(self, texts: Sequence[str], progress: bool = False) -> torch.Tensor:
        """Unit-length text embeddings [N, D] float32 on CPU, batched."""

    def encode_images(self, images: Sequence[Image.Image | str | Path], normalize: bool = True) -> torch.Tensor:
        """Image embeddings [N, D] float32 on CPU (unit length unless ``normalize=False``); CLIP-family only."""
        raise NotImplementedError(f"encoder {self.name!r} ({self.backend}) has no image tower")

    def encode_image_files(
        self, paths: Sequence[str], labels: Sequence[str], progress: bool = False, normalize: bool = True
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Embed image files, tolerating bad ones: (vectors [n, D], ok [n] bool, problem lines)."""
        raise NotImplementedError(f"encoder {self.name!r} ({self.backend}) has no image tower")

    @property
    def identity(self) -> str:
        """A stable string naming the exact computation (architecture, weights, preprocessing).

        Two encoders with equal identities produce equal vectors (up to the device's arithmetic);
        the cache is keyed by it. The autocast dtype is part of it: bf16 vectors are not fp32 ones.
        """
        if self._identity is None:
            dtype = str(resolve_precision(self.config.precision, self.device))
            self._identity = json.dumps(self.identity_fields() | {"dtype": dtype}, sort_keys=True, default=str)
        return self._identity

    @abstractmethod
    def identity_fields(self) -> dict:
        """What :attr:`identity` is made of; weights as a pretrained tag, a file hash or a seed."""

    @property
    def type_name(self) -> str:
        return self.backend

    @abstractmethod
    def save_weights(self, directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """Write the weights (and tokenizer) into ``directory``; returns the config fields that load them
        (with ``random_weights`` false: the saved weights are the model now) and no extra state."""

    @classmethod
    def implementation(cls, type_name: str, source: Path) -> type[Encoder]:
        if type_name not in ENCODER_BACKENDS:
            raise ConfigError(
                f"{source}: unknown encoder backend {type_name!r}; valid: {', '.join(ENCODER_BACKENDS.names())}"
            )
        return ENCODER_BACKENDS.get(type_name)

    @classmethod
    def from_saved(cls, config: EncoderConfig, manifest: Manifest, directory: Path, **context: Any) -> Self:
        return cls(config, manifest.name or str(directory))

    def autocast(self) -> AbstractContextManager:
        """Mixed precision on CUDA (bf16 if supported, else fp16); plain fp32 elsewhere unless asked."""
        dtype = resolve_precision(self.config.precision, self.device)
        if dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, device={self.config.device!r})"


ENCODER_BACKENDS: Registry[type[Encoder]] = Registry(
    "encoder backend", stage="encoder-backends", description="model families an encoder preset or config.json names"
)


def resolve_precision(precision: Precision, device: torch.device) -> torch.dtype:
    if precision == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def batches(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def weights_digest(module: torch.nn.Module) -> str:
    """blake2b of every parameter and buffer (names and bytes): the identity of a set of weights."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode("utf-8"))
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
