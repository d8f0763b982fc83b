"""Items (image + text) and user histories as vectors in one CLIP space, cached.

>>> from genrec.encoders import create_encoder, item_text
>>> encoder = create_encoder("tiny")                   # random 64-d CLIP, no download
>>> encoder = create_encoder("minilm")                 # offline all-MiniLM-L6-v2 (text only)
>>> encoder = create_encoder(("ViT-B-32", "laion2b_s34b_b79k"), {"device": "cuda"})
>>> encoder = create_encoder("standard", pretrained=False)   # real size, random weights
>>> vectors = encoder.encode_texts(["a heist movie"])  # [1, D], unit rows
>>> items = encode_items(dataset, encoder)             # [n_items, D] float32, fused, cached
>>> users = encode_histories(dataset, items, users=[1, 2], method="recency")
>>> profiles = preference_profile(dataset, users, items, encoder)   # top genres, tags, visuals
"""

from genrec.encoders.base import Encoder, EncoderConfig
from genrec.encoders.cache import CACHE_ENV, EmbeddingCache, default_cache_dir
from genrec.encoders.catalogue import EncodeReport, ItemContentError, encode_items
from genrec.encoders.clip import OpenCLIPConfig, OpenCLIPEncoder
from genrec.encoders.items import item_text, item_texts
from genrec.encoders.presets import ENCODERS, create_encoder, list_encoders
from genrec.encoders.text import HFTextConfig, HFTextEncoder
from genrec.encoders.users import (
    VISUAL_ATTRIBUTES,
    HistoryConfig,
    PreferenceProfile,
    UserEmbeddings,
    encode_histories,
    preference_profile,
)

__all__ = [
    "CACHE_ENV",
    "ENCODERS",
    "VISUAL_ATTRIBUTES",
    "EmbeddingCache",
    "EncodeReport",
    "Encoder",
    "EncoderConfig",
    "HFTextConfig",
    "HFTextEncoder",
    "HistoryConfig",
    "ItemContentError",
    "OpenCLIPConfig",
    "OpenCLIPEncoder",
    "PreferenceProfile",
    "UserEmbeddings",
    "create_encoder",
    "default_cache_dir",
    "encode_histories",
    "encode_items",
    "item_text",
    "item_texts",
    "list_encoders",
    "preference_profile",
]
