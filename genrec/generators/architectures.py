"""Diffusion pipelines built from bundled architecture configs with random (seeded) weights.

``tiny`` (a 2-block UNet, a 2-block VAE and a 2-layer CLIP text model, 64x64 images) runs every
code path in tests with no download; ``sd-turbo`` and ``sd15`` are the real architectures, so
their compute can be measured offline. The tokenizer is CLIP's own BPE, which ships inside
open_clip, so prompts tokenize exactly as they would for a pretrained Stable Diffusion.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

import torch

from genrec.config import shown
from genrec.registry import UnknownNameError

MODEL_CONFIGS = Path(__file__).parent / "model_configs"
CLIP_CONTEXT = 77  # CLIP's text context length, which every SD text encoder shares
IP_ADAPTER_TOKENS = 4  # image tokens of a plain IP-Adapter (Ye et al. 2023, sec. 3.2)


def list_architectures() -> list[str]:
    """Names of the bundled architecture configs (``model_configs/*.json``)."""
    return sorted(path.stem for path in MODEL_CONFIGS.glob("*.json"))


def architecture_config(name: str) -> dict[str, Any]:
    """The bundled architecture ``name``: unet, vae, text_encoder and scheduler configs, default size."""
    path = MODEL_CONFIGS / f"{name}.json"
    if not path.is_file():
        raise UnknownNameError(
            f"unknown diffusion architecture {shown(name)}; valid names: {', '.join(list_architectures())}"
        )
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def _clip_bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's vocabulary and merges, rebuilt from open_clip's ``bpe_simple_vocab_16e6.txt.gz``.

    Same construction as open_clip's SimpleTokenizer: 256 byte symbols, the same with the
    end-of-word suffix, one token per merge, then the two special tokens (49408 in all).
    """
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe()) as file:
        lines = file.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [symbol + "</w>" for symbol in symbols] + ["".join(merge) for merge in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}, merges


def clip_tokenizer():
    """CLIP's BPE tokenizer (as ``transformers.CLIPTokenizer``), built offline."""
    from transformers import CLIPTokenizer

    vocab, merges = _clip_bpe()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=CLIP_CONTEXT)


def build_random_pipeline(name: str, seed: int = 0):
    """A diffusers text-to-image pipeline of architecture ``name`` with weights drawn from ``seed``."""
    import diffusers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    arch = architecture_config(name)
    scheduler_config = dict(arch["scheduler"])
    scheduler = getattr(diffusers, scheduler_config.pop("class")).from_config(scheduler_config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**arch["unet"])
        vae = AutoencoderKL(**arch["vae"])
        text_encoder = CLIPTextModel(CLIPTextConfig(**arch["text_encoder"]))
    pipeline_class = getattr(diffusers, arch["pipeline"])
    return pipeline_class(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=clip_tokenizer(),
        unet=unet.eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def random_ip_adapter_state_dict(unet, image_embed_dim: int, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """A plain IP-Adapter checkpoint for ``unet`` with random weights, in the layout diffusers loads.

    ``image_proj``: ``proj`` maps one image embedding [E] to ``IP_ADAPTER_TOKENS`` tokens of the
    UNet's cross-attention width C, then ``norm``. ``ip_adapter``: the decoupled cross-attention
    keys/values ``to_k_ip``/``to_v_ip`` [hidden, C] of every cross-attention layer, numbered as
    the original checkpoints are (processor index ``2 * i + 1``: each block's attn2).
    """
    cross = unet.config.cross_attention_dim
    generator = torch.Generator().manual_seed(seed)

    def weight(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) / shape[-1] ** 0.5

    image_proj = {
        "proj.weight": weight(cross * IP_ADAPTER_TOKENS, image_embed_dim),  # [T * C, E]
        "proj.bias": torch.zeros(cross * IP_ADAPTER_TOKENS),
        "norm.weight": torch.ones(cross),
        "norm.bias": torch.zeros(cross),
    }
    ip_adapter = {}
    for index, name in enumerate(unet.attn_processors):
        if name.endswith("attn2.processor"):
            hidden = _attention_width(unet, name)
            ip_adapter[f"{index}.to_k_ip.weight"] = weight(hidden, cross)  # [H, C]
            ip_adapter[f"{index}.to_v_ip.weight"] = weight(hidden, cross)
    return {"image_proj": image_proj, "ip_adapter": ip_adapter}


def _attention_width(unet, processor_name: str) -> int:
    """Hidden width of the attention layer a processor belongs to, as diffusers derives it."""
    channels = unet.config.block_out_channels
    if processor_name.startswith("mid_block"):
        return channels[-1]
    block = int(processor_name.split(".")[1])
    return list(reversed(channels))[block] if processor_name.startswith("up_blocks") else channels[block]
