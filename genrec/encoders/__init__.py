"""Items (image + text) and user histories as vectors in one CLIP space, cached.

>>> from genrec.encoders import create_encoder, item_text
>>> encoder = create_encoder("tiny")                   # random 64-d CLIP, no download
>>> encoder = create_encoder("minilm")                 # offline all-MiniLM-L6-v2 (text only)
>>> encoder = create_encoder(("ViT-B-32", "laion2b_s34b_b79k"), device="cuda")
>>> encoder = create_encoder("standard", pretrained=False)   # real size, random weights
>>> vectors = encoder.encode_texts(["a heist movie"])  # [1, D], unit rows
>>> items = encoder.encode_items(dataset)              # [n_items, D] float32, fused
"""

from genrec.encoders.base import Encoder, EncoderConfig
from genrec.encoders.cache import CACHE_ENV, EmbeddingCache, default_cache_dir
from genrec.encoders.catalogue import EncodeReport, ItemContentError, encode_catalogue
from genrec.encoders.clip import OpenCLIPConfig, OpenCLIPEncoder
from genrec.encoders.items import item_text, item_texts
from genrec.encoders.presets import ENCODERS, create_encoder, list_encoders
from genrec.encoders.text import HFTextConfig, HFTextEncoder

__all__ = [
    "CACHE_ENV",
    "ENCODERS",
    "EmbeddingCache",
    "EncodeReport",
    "Encoder",
    "EncoderConfig",
    "HFTextConfig",
    "HFTextEncoder",
    "ItemContentError",
    "OpenCLIPConfig",
    "OpenCLIPEncoder",
    "create_encoder",
    "default_cache_dir",
    "encode_catalogue",
    "item_text",
    "item_texts",
    "list_encoders",
]
