"""The encoder interface: texts (and, for CLIP-family models, images) to unit vectors in one space.

An :class:`Encoder` holds weights; :func:`genrec.encoders.catalogue.encode_items` is the
stateless algorithm that turns a catalogue into item vectors with it (and the cache).
``save_pretrained`` writes the backend's weights plus ``genrec_encoder.json`` (backend, name,
resolved config with paths relative to the directory), last, so a directory holding that
file is complete; ``from_pretrained`` rebuilds the exact encoder from it.
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

from genrec.config import Device, Seed, StrictModel
from genrec.encoders.items import NO_IMAGE
from genrec.io import read_json, write_json

if TYPE_CHECKING:
    from PIL import Image

Precision = Literal["auto", "fp32", "fp16", "bf16"]
ENCODER_FILE = "genrec_encoder.json"  # not config.json: Hugging Face models write their own


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


class Encoder(ABC):
    """Base class. Subclasses set ``backend``, build their model in ``__init__`` and implement
    :meth:`encode_texts` (and :meth:`encode_image_files` when ``supports_images``)."""

    backend: ClassVar[str]
    supports_images: ClassVar[bool] = False
    path_fields: ClassVar[tuple[str, ...]] = ()  # config fields saved relative to the save directory

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

    @abstractmethod
    def save_weights(self, directory: Path) -> dict[str, Any]:
        """Write the weights (and tokenizer) into ``directory``; returns the config fields to load them."""

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write weights + ``genrec_encoder.json``; ``from_pretrained`` rebuilds this exact encoder."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        fields = self.config.model_dump(mode="json") | self.save_weights(directory) | {"random_weights": False}
        write_json(directory / ENCODER_FILE, {"backend": self.backend, "name": self.name, "config": fields})
        return directory

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **overrides: Any) -> Self:
        """Rebuild a saved encoder from a directory (or a Hugging Face hub repo id); ``overrides``
        are config fields such as ``device``."""
        from genrec.hub import resolve_pretrained_dir

        directory = resolve_pretrained_dir(name_or_path, required=(ENCODER_FILE,))
        saved = read_json(directory / ENCODER_FILE)
        backends = {backend.backend: (config_class, backend) for config_class, backend in BACKENDS.items()}
        if saved.get("backend") not in backends:
            raise ValueError(f"{directory / ENCODER_FILE}: unknown encoder backend {saved.get('backend')!r}")
        config_class, backend = backends[saved["backend"]]
        fields = saved["config"] | {name: str(directory / saved["config"][name]) for name in backend.path_fields}
        config = config_class.from_dict(fields | overrides, source=str(directory / ENCODER_FILE))
        return backend(config, saved["name"])

    def autocast(self) -> AbstractContextManager:
        """Mixed precision on CUDA (bf16 if supported, else fp16); plain fp32 elsewhere unless asked."""
        dtype = resolve_precision(self.config.precision, self.device)
        if dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, device={self.config.device!r})"


# config class -> encoder class of every backend; genrec.encoders.presets lists them (it imports the backends)
BACKENDS: dict[type[EncoderConfig], type[Encoder]] = {}


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
