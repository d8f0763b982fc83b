"""Generative ranking models behind one registry.

>>> from genrec.rankers import create_ranker, list_rankers
>>> ranker = create_ranker("popular")
>>> ranker = create_ranker("popular", config={"eval_batch_size": 512})
"""

from __future__ import annotations

from genrec.rankers.base import RANKERS, FitReport, NotFittedError, Ranker, RankerConfig
from genrec.rankers.cfgan import CFGANRanker
from genrec.rankers.diffrec import DiffRecRanker
from genrec.rankers.ensemble import EnsembleRanker
from genrec.rankers.factory import (
    NAMED_CONFIGS,
    NAMED_CONFIGS_DIR,
    create_ranker,
    list_named_configs,
    list_rankers,
    load_ranker,
    register_named_config,
    resolve_ranker_config,
)
from genrec.rankers.llm import LLMRanker
from genrec.rankers.multvae import MultVAERanker
from genrec.rankers.popularity import PopularityRanker
from genrec.rankers.sasrec import HSTURanker, SASRecRanker
from genrec.rankers.tiger import TigerRanker
from genrec.registry import load_presets

for _ranker, _description in (
    (PopularityRanker, None),  # None: the first line of the class docstring
    (MultVAERanker, None),
    (DiffRecRanker, None),
    (CFGANRanker, None),
    (SASRecRanker, None),
    (HSTURanker, None),
    (TigerRanker, "TIGER (Rajput et al., NeurIPS 2023): generative retrieval, decoding an item's semantic id"),
    (LLMRanker, "LlamaRec-style: a causal LM (SmolLM2 by default, LoRA fine-tuned) reranks a retriever's top N"),
    (EnsembleRanker, "a seed ensemble: several seeds of one ranker (hstu by default), fitted in parallel, averaged"),
):
    RANKERS.register(_ranker.name, _ranker, description=_description)

load_presets(NAMED_CONFIGS, NAMED_CONFIGS_DIR, types=RANKERS)

__all__ = [
    "NAMED_CONFIGS",
    "RANKERS",
    "FitReport",
    "NotFittedError",
    "Ranker",
    "RankerConfig",
    "create_ranker",
    "list_named_configs",
    "list_rankers",
    "load_ranker",
    "register_named_config",
    "resolve_ranker_config",
]
