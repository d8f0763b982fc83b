"""Text-to-image generation over diffusers pipelines, personalised by prompt or by IP-Adapter.

An :class:`ImageGenerator` holds a diffusers pipeline (loaded by hub id or directory with
``AutoPipelineForText2Image``, or built from a bundled architecture with random weights) and
turns batches of prompts into images, one ``torch.Generator`` per image so an image depends
only on its own seed, not on what else is in its batch. Personalisation:

- ``prompt``: the prompt carries the user's preference profile (:mod:`genrec.generators.prompts`);
- ``ip_adapter``: the user's history images, embedded by the adapter's own image encoder and
  mean-pooled, enter the UNet's decoupled cross-attention (IP-Adapter, Ye et al. 2023, eq. 5:
  ``Z = Attn(Q, K_text, V_text) + scale * Attn(Q, K_image, V_image)``);
- ``none``: the item prompt alone, the baseline the evaluation compares against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Self

import torch
from pydantic import Field, field_validator, model_validator

from genrec.config import ConfigError, Device, Seed, StrictModel, shown
from genrec.encoders.base import Precision, batches, resolve_precision
from genrec.generators.architectures import build_random_pipeline, random_ip_adapter_state_dict
from genrec.generators.prompts import DEFAULT_NEGATIVE_PROMPT
from genrec.persistence import LIBRARY_DIR, Manifest, Pretrained, library_dir
from genrec.progress import progress_bar
from genrec.registry import PRESETS_DIR, Preset, Registry, load_presets

Personalization = Literal["none", "prompt", "ip_adapter"]
RANDOM_ADAPTER = "random"


class ImageGeneratorConfig(StrictModel):
    """A diffusion model, how it samples, and how it personalises."""

    model: str | None = Field(None, description="diffusers hub id ('owner/name') or local pipeline directory")
    architecture: str | None = Field(
        None, description="bundled architecture (genrec/generators/model_configs) built when random_weights is set"
    )
    random_weights: bool = Field(False, description="build `architecture` with seeded random weights, no download")
    seed: Seed = Field(0, description="seeds random weights; image noise is seeded per (item, seed) at generation")
    steps: int = Field(1, ge=1, le=1000, description="denoising steps (1-4 for turbo models, 20-50 for SD-1.5)")
    guidance_scale: float = Field(0.0, ge=0.0, description="classifier-free guidance; <= 1 disables it (turbo: 0)")
    height: int | None = Field(None, description="image height in pixels (multiple of 8); None = the model's default")
    width: int | None = Field(None, description="image width in pixels (multiple of 8); None = the model's default")
    scheduler: str | None = Field(
        None, description="diffusers scheduler class, e.g. 'EulerDiscreteScheduler'; None = the model's own"
    )
    negative_prompt: str = Field(DEFAULT_NEGATIVE_PROMPT, description="used only under guidance (> 1)")
    personalization: Personalization = Field("prompt", description="'prompt', 'ip_adapter' or 'none'")
    ip_adapter: str | None = Field(
        None, description="IP-Adapter hub id or directory, or 'random' for random weights of the right shapes"
    )
    ip_adapter_subfolder: str = Field("models", description="subfolder of the IP-Adapter repository")
    ip_adapter_weight_name: str = Field("ip-adapter_sd15.safetensors", description="IP-Adapter weight file")
    ip_adapter_scale: float = Field(0.6, ge=0.0, le=2.0, description="weight of the image cross-attention (eq. 5)")
    ip_adapter_encoder: str = Field(
        "vit-h-14", description="genrec encoder preset producing the adapter's image embeddings (SD-1.5: ViT-H-14)"
    )
    batch_size: int = Field(4, ge=1, description="images per pipeline call")
    device: Device = Field("cpu", description="torch device, e.g. 'cpu', 'cuda'")
    precision: Precision = Field("auto", description="weights dtype; 'auto' = bf16/fp16 on CUDA, fp32 on CPU")
    attention_slicing: bool = Field(False, description="compute attention in slices: less memory, a little slower")
    vae_tiling: bool = Field(False, description="decode latents tile by tile: large images in little memory")

    @field_validator("height", "width")
    @classmethod
    def _multiple_of_8(cls, value: int | None) -> int | None:
        if value is not None and (value < 8 or value % 8):
            raise ValueError(f"must be a positive multiple of 8 (the VAE downsamples by 8), got {value}")
        return value

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, value: str | None) -> str | None:
        import diffusers

        if value is not None and not (value.endswith("Scheduler") and hasattr(diffusers, value)):
            raise ValueError(f"{shown(value)} is not a diffusers scheduler class (e.g. 'EulerDiscreteScheduler')")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.random_weights and self.architecture is None:
            raise ValueError("random_weights needs an architecture (a bundled config such as 'tiny' or 'sd-turbo')")
        if not self.random_weights and self.model is None:
            raise ValueError("give a model (hub id or directory), or an architecture with random_weights=True")
        if self.personalization == "ip_adapter" and self.ip_adapter is None:
            raise ValueError("personalization='ip_adapter' needs ip_adapter (hub id, directory or 'random')")
        return self


class ImageGenerator(Pretrained):
    """A diffusers text-to-image pipeline with genrec's batching, seeding and personalisation."""

    kind = "image_generator"
    type_name = "diffusers"
    config_class = ImageGeneratorConfig
    path_fields = ("model",)

    def __init__(self, config: ImageGeneratorConfig, name: str = "custom"):
        self.config = config
        self.name = name
        self.dtype = resolve_precision(config.precision, torch.device(config.device))
        self.pipeline = self._load_pipeline()
        self.adapter_encoder = None
        if config.ip_adapter is not None:
            self._load_ip_adapter()
        default = self.pipeline.unet.config.sample_size * self.pipeline.vae_scale_factor  # its training size
        self.height = config.height or default
        self.width = config.width or default

    @property
    def model_id(self) -> str:
        """What made the weights, as recorded in each PNG's metadata."""
        if self.config.random_weights:
            return f"genrec:{self.config.architecture}:random-seed-{self.config.seed}"
        return str(self.config.model)

    def _load_pipeline(self):
        config = self.config
        if config.random_weights:
            pipeline = build_random_pipeline(config.architecture, config.seed)
        else:
            from diffusers import AutoPipelineForText2Image

            source = library_dir(config.model)
            local = Path(source).expanduser().is_dir()
            pipeline = AutoPipelineForText2Image.from_pretrained(source, torch_dtype=self.dtype, local_files_only=local)
        if config.scheduler is not None:
            import diffusers

            pipeline.scheduler = getattr(diffusers, config.scheduler).from_config(pipeline.scheduler.config)
        pipeline = pipeline.to(config.device)
        if config.random_weights and self.dtype != torch.float32:
            pipeline = pipeline.to(dtype=self.dtype)
        if config.attention_slicing:
            pipeline.enable_attention_slicing()
        if config.vae_tiling:
            pipeline.vae.enable_tiling()
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    def _load_ip_adapter(self) -> None:
        from genrec.encoders import create_encoder

        config = self.config
        self.adapter_encoder = create_encoder(
            config.ip_adapter_encoder, {"device": config.device}, pretrained=not config.random_weights
        )
        if config.ip_adapter == RANDOM_ADAPTER:
            state = random_ip_adapter_state_dict(self.pipeline.unet, self.adapter_encoder.dim, config.seed)
            self.pipeline.unet._load_ip_adapter_weights([state])
        else:
            self.pipeline.load_ip_adapter(
                config.ip_adapter,
                subfolder=config.ip_adapter_subfolder,
                weight_name=config.ip_adapter_weight_name,
                image_encoder_folder=None,  # genrec's encoder embeds the images; diffusers' is not loaded
            )
        self.pipeline.set_ip_adapter_scale(config.ip_adapter_scale)

    @property
    def image_embed_dim(self) -> int | None:
        """Width E of the image embedding the IP-Adapter takes (None without an adapter)."""
        return None if self.adapter_encoder is None else self.adapter_encoder.dim

    @property
    def guided(self) -> bool:
        return self.config.guidance_scale > 1.0

    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        negative_prompts: Sequence[str] | None = None,
        image_embed: torch.Tensor | None = None,
        progress: bool = False,
        on_batch: Callable[[slice, list], None] | None = None,
    ) -> list:
        """One PIL image per prompt, in ``config.batch_size`` pipeline calls.

        Args:
            prompts: N prompts.
            seeds: N noise seeds; image ``i`` is drawn from ``torch.Generator().manual_seed(seeds[i])``.
            negative_prompts: N negative prompts (used under guidance); default ``config.negative_prompt``.
            image_embed: [E] one pooled IP-Adapter image embedding for all N images (diffusers'
                pipelines take one image prompt per call and repeat it over the batch, so callers
                group images by user); None = no image prompt (the adapter is switched off).
            on_batch: called with (slice, images) after each batch, e.g. to write files as they come.
        """
        if len(seeds) != len(prompts):
            raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds")
        negative_prompts = negative_prompts or [self.config.negative_prompt] * len(prompts)
        if self.adapter_encoder is not None:
            scale = self.config.ip_adapter_scale if image_embed is not None else 0.0
            if image_embed is None:
                # The UNet still expects image tokens: zeros at scale 0, which diffusers skips outright.
                image_embed = torch.zeros(self.adapter_encoder.dim)
            self.pipeline.set_ip_adapter_scale(scale)
        images: list = []
        with progress_bar(progress) as bar:
            task = bar.add_task(f"images ({self.name})", total=len(prompts), status="")
            for span in batches(len(prompts), self.config.batch_size):
                arguments = self.call_arguments(prompts[span], seeds[span], negative_prompts[span], image_embed)
                batch = self.pipeline(**arguments).images
                images.extend(batch)
                if on_batch is not None:
                    on_batch(span, batch)
                bar.advance(task, span.stop - span.start)
        return images

    def call_arguments(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        negative_prompts: Sequence[str],
        image_embed: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments of one diffusers pipeline call (a bare call with them is the benchmark baseline)."""
        device = self.config.device
        arguments = {
            "prompt": list(prompts),
            "negative_prompt": list(negative_prompts) if self.guided else None,
            "num_inference_steps": self.config.steps,
            "guidance_scale": self.config.guidance_scale,
            "height": self.height,
            "width": self.width,
            "generator": [torch.Generator(device).manual_seed(int(seed)) for seed in seeds],
            "output_type": "pil",
        }
        if image_embed is not None:
            embeds = image_embed.to(device=device, dtype=self.dtype).reshape(1, 1, -1)  # [1, 1, E]
            if self.guided:
                # Under guidance diffusers splits the tensor in two: the unconditional half first.
                embeds = torch.cat([torch.zeros_like(embeds), embeds])  # [2, 1, E]
            arguments["ip_adapter_image_embeds"] = [embeds]
        return arguments

    def save_weights(self, directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """The diffusers pipeline in ``model/``; :meth:`from_pretrained` rebuilds the generator (same weights,
        sampler and settings)."""
        if self.adapter_encoder is not None:
            raise ConfigError("saving a generator with an IP-Adapter is not supported; save the base model instead")
        self.pipeline.save_pretrained(directory / LIBRARY_DIR)
        return {"model": ".", "random_weights": False}, {"model_id": self.model_id}

    @classmethod
    def from_saved(cls, config: ImageGeneratorConfig, manifest: Manifest, directory: Path, **context: Any) -> Self:
        return cls(config, manifest.name or "custom")

    def __repr__(self) -> str:
        return (
            f"ImageGenerator(name={self.name!r}, model={self.model_id!r}, personalization="
            f"{self.config.personalization!r}, size={self.width}x{self.height}, steps={self.config.steps})"
        )


IMAGE_GENERATORS: Registry[Preset] = Registry(
    "image generator", stage="image-generators", description="image generator presets (--image-generator NAME)"
)
load_presets(IMAGE_GENERATORS, PRESETS_DIR / "image_generators", types={ImageGenerator.type_name: ImageGenerator})


def list_image_generators() -> list[str]:
    """Names of the image generator presets."""
    return IMAGE_GENERATORS.names()


def create_image_generator(
    spec: str | ImageGeneratorConfig = "tiny",
    config: ImageGeneratorConfig | dict[str, Any] | None = None,
    pretrained: bool = True,
) -> ImageGenerator:
    """Build an image generator from a preset name (:func:`list_image_generators`) or a config.

    Args:
        config: config fields over the preset's, e.g. ``{"steps": 4, "device": "cuda"}``, or a whole
            config object.
        pretrained: ``False`` builds the preset's architecture with random (seeded) weights,
            downloading nothing (real-size compute offline); the IP-Adapter, if any, becomes random too.

    Raises:
        UnknownNameError: an unknown preset; the message lists the valid ones.
        ConfigError: an invalid config field, or random weights for a preset with no bundled architecture.
    """
    if isinstance(config, ImageGeneratorConfig):
        spec, config = config, None
    if isinstance(spec, ImageGeneratorConfig):
        fields, name = spec.model_dump(), "custom"
    else:
        fields, name = dict(IMAGE_GENERATORS.get(spec).config), spec
    if not pretrained:
        fields |= {"random_weights": True} | ({"ip_adapter": RANDOM_ADAPTER} if fields.get("ip_adapter") else {})
    settings = ImageGeneratorConfig.from_dict(fields | (config or {}), source=f"image generator {shown(name)}")
    return ImageGenerator(settings, name)
