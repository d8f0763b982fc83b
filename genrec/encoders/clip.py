"""open_clip backend: image and text towers of one CLIP model, so items and users share a space.

Architectures are open_clip names (``open_clip.list_models()``) plus genrec's own configs in
``model_configs/`` (``genrec-tiny``). Weights come from an open_clip pretrained tag or a
checkpoint file (``save_pretrained``), or are random (seeded) for offline benchmarks of
real-size compute.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Self

import numpy as np
import torch
from PIL import Image
from pydantic import Field, model_validator
from safetensors.torch import save_file

from genrec.config import ConfigError
from genrec.encoders.base import ENCODER_BACKENDS, Encoder, EncoderConfig, batches
from genrec.encoders.image_decoding import ImageFiles, image_loader, load_rgb
from genrec.io import atomic_path
from genrec.persistence import WEIGHTS_FILE
from genrec.progress import progress_bar

MODEL_CONFIGS = Path(__file__).parent / "model_configs"


class OpenCLIPConfig(EncoderConfig):
    """An open_clip architecture and its weights, plus how items are fused and images loaded."""

    architecture: str = Field("ViT-B-32", description="open_clip architecture, e.g. 'ViT-B-32', 'genrec-tiny'")
    pretrained: str | None = Field(
        "laion2b_s34b_b79k", description="open_clip pretrained tag: the weights to download and their preprocessing"
    )
    checkpoint: str | None = Field(
        None, description="weights file (open_clip state dict, e.g. from save_pretrained); used instead of the tag's"
    )
    image_weight: float = Field(0.5, ge=0.0, le=1.0, description="fused = normalise(w * image + (1 - w) * text)")
    num_workers: int = Field(2, ge=0, description="DataLoader worker processes decoding and preprocessing images")
    channels_last: bool | None = Field(
        None, description="NHWC input and weights; None = on CUDA for convolutional image towers, where it helps"
    )

    @model_validator(mode="after")
    def _has_weights(self) -> Self:
        if self.pretrained is None and self.checkpoint is None and not self.random_weights:
            raise ValueError(f"{self.architecture}: give a pretrained tag or checkpoint, or set random_weights=True")
        return self


@cache
def register_model_configs() -> None:
    """Make genrec's architecture configs (``genrec-tiny``) known to open_clip, once per process."""
    import open_clip

    open_clip.add_model_config(MODEL_CONFIGS)


class OpenCLIPEncoder(Encoder):
    """CLIP image + text towers from open_clip; outputs are unit vectors in the joint space."""

    backend = "open_clip"
    config_class = OpenCLIPConfig
    supports_images = True
    path_fields = ("checkpoint",)

    def __init__(self, config: OpenCLIPConfig, name: str):
        import open_clip

        super().__init__(config, name)
        register_model_configs()
        self.config: OpenCLIPConfig = config
        architecture, tag = config.architecture, config.pretrained
        if architecture not in open_clip.list_models():
            close = difflib.get_close_matches(architecture, open_clip.list_models(), n=5)
            raise ConfigError(f"unknown open_clip architecture {architecture!r}; close matches: {close}")
        tag_config = open_clip.get_pretrained_cfg(architecture, tag) if tag else {}
        if tag and not tag_config:
            known = open_clip.list_pretrained_tags_by_model(architecture)
            raise ConfigError(f"{architecture}: unknown pretrained tag {tag!r}; known tags: {known}")
        if config.checkpoint is not None and not Path(config.checkpoint).is_file():
            raise ConfigError(f"{config.checkpoint}: checkpoint file not found")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            # A tag's preprocessing (mean, std, resize) is applied even with random weights, so a
            # random-weight benchmark runs exactly the pipeline of the real model.
            self.model, _, self.preprocess = open_clip.create_model_and_transforms(
                architecture,
                pretrained=None if config.random_weights else config.checkpoint or tag,
                device=self.device,
                image_mean=tag_config.get("mean"),
                image_std=tag_config.get("std"),
                image_interpolation=tag_config.get("interpolation"),
                image_resize_mode=tag_config.get("resize_mode"),
            )
        self.model.eval()
        self.embed_dim = int(open_clip.get_model_config(architecture)["embed_dim"])  # the joint space's width
        self.tokenizer = open_clip.get_tokenizer(architecture)
        size = self.model.visual.preprocess_cfg["size"]
        self.image_size = (size, size) if isinstance(size, int) else tuple(size)  # (H, W)
        self.channels_last = config.channels_last
        if self.channels_last is None:
            self.channels_last = self.device.type == "cuda" and not isinstance(
                self.model.visual, open_clip.transformer.VisionTransformer
            )
        if self.channels_last:
            self.model.visual.to(memory_format=torch.channels_last)

    @property
    def dim(self) -> int:
        return self.embed_dim

    @property
    def image_weight(self) -> float:
        return self.config.image_weight

    def identity_fields(self) -> dict:
        import open_clip

        config = self.config
        if config.random_weights:
            weights = f"random(seed={config.seed}, torch={torch.__version__})"
        elif config.checkpoint is not None:
            weights = "file:" + hashlib.blake2b(Path(config.checkpoint).read_bytes(), digest_size=16).hexdigest()
        else:
            weights = config.pretrained
        return {
            "backend": self.backend,
            "architecture": config.architecture,
            "model_config": open_clip.get_model_config(config.architecture),
            "weights": weights,
            "preprocess": self.model.visual.preprocess_cfg,
            "context_length": self.tokenizer.context_length,
        }

    def save_weights(self, directory: Path) -> tuple[dict, dict]:
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in self.model.state_dict().items()}
        with atomic_path(directory / WEIGHTS_FILE) as temporary:
            save_file(state, str(temporary))
        return {"checkpoint": WEIGHTS_FILE, "random_weights": False}, {}

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], progress: bool = False) -> torch.Tensor:
        out = torch.empty(len(texts), self.dim)  # [N, D]
        with progress_bar(progress) as bar:
            task = bar.add_task(f"texts ({self.name})", total=len(texts), status="")
            for span in batches(len(texts), self.config.batch_size):
                tokens = self.tokenizer(list(texts[span])).to(self.device)  # [B, context_length]
                with self.autocast():
                    out[span] = self.model.encode_text(tokens, normalize=True).float().cpu()
                bar.advance(task, span.stop - span.start)
        return out

    @torch.inference_mode()
    def encode_images(self, images: Sequence[Image.Image | str | Path], normalize: bool = True) -> torch.Tensor:
        """Image embeddings [N, D]; a path that cannot be decoded raises, naming the file.

        ``normalize=False`` gives the raw projected embeddings, the scale IP-Adapters were trained on.
        """
        pixels = []
        for image in images:
            if not isinstance(image, Image.Image):
                try:
                    image = load_rgb(image, min(self.image_size))
                except Exception as err:
                    raise ValueError(f"{image}: not a readable image ({type(err).__name__}: {err})") from err
            pixels.append(self.preprocess(image))  # [3, H, W]
        out = torch.empty(len(pixels), self.dim)
        for span in batches(len(pixels), self.config.batch_size):
            out[span] = self.forward_images(torch.stack(pixels[span]), normalize)
        return out

    @torch.inference_mode()
    def encode_image_files(
        self, paths: Sequence[str], labels: Sequence[str], progress: bool = False, normalize: bool = True
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        files = ImageFiles(paths, self.preprocess, self.image_size)
        loader = image_loader(files, self.config.batch_size, self.config.num_workers, self.device.type == "cuda")
        vectors = np.zeros((len(paths), self.dim), dtype=np.float32)  # [n, D]
        ok = np.zeros(len(paths), dtype=bool)
        problems = []
        start = 0
        with progress_bar(progress) as bar:
            task = bar.add_task(f"images ({self.name})", total=len(paths), status="")
            for pixels, errors in loader:  # [B, 3, H, W], B strings
                good = np.array([not error for error in errors])
                rows = np.arange(start, start + len(errors))
                if good.any():
                    vectors[rows[good]] = self.forward_images(pixels[torch.from_numpy(good)], normalize).numpy()
                ok[rows] = good
                problems += [
                    f"{labels[row]}: {paths[row]}: {error}; encoded from text only"
                    for row, error in zip(rows, errors, strict=True)
                    if error
                ]
                start += len(errors)
                bar.advance(task, len(errors))
        return vectors, ok, problems

    def forward_images(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Preprocessed pixels [B, 3, H, W] -> embeddings [B, D] float32 on CPU (unit rows if ``normalize``)."""
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        pixels = pixels.to(self.device, non_blocking=True, memory_format=memory_format)
        with self.autocast():
            return self.model.encode_image(pixels, normalize=normalize).float().cpu()


ENCODER_BACKENDS.register(OpenCLIPEncoder.backend, OpenCLIPEncoder)
