"""Generative ranking models behind one registry.

>>> from genrec.rankers import create_ranker, list_rankers
>>> ranker = create_ranker("popular")
>>> ranker = create_ranker("popular", config={"eval_batch_size": 512})
"""

from __future__ import annotations

from genrec.rankers.base import RANKERS, FitReport, NotFittedError, Ranker, RankerConfig
from genrec.rankers.cfgan import CFGANRanker
from genrec.rankers.diffrec import DiffRecRanker
from genrec.rankers.factory import (
    NAMED_CONFIGS,
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

RANKERS.register(PopularityRanker.name)(PopularityRanker)
RANKERS.register(MultVAERanker.name)(MultVAERanker)
RANKERS.register(DiffRecRanker.name)(DiffRecRanker)
RANKERS.register(CFGANRanker.name)(CFGANRanker)
RANKERS.register(SASRecRanker.name)(SASRecRanker)
RANKERS.register(HSTURanker.name)(HSTURanker)
RANKERS.register(TigerRanker.name)(TigerRanker)
RANKERS.register(LLMRanker.name)(LLMRanker)

# The RecBole 1.2.1 SASRec hyper-parameters, trained all-position on each user's last 50 items: the baseline.
register_named_config(
    "sasrec-recbole-defaults",
    "sasrec",
    {
        "layers": 2,
        "hidden": 64,
        "inner": 256,
        "heads": 2,
        "dropout": 0.5,
        "max_len": 50,
        "lr": 1e-3,
        "batch_size": 128,
        "patience": 20,
        "train_windows": "last",
        "warmup_steps": 0,
    },
)
# genrec's best measured sasrec on movielens-latest-small (benchmarks/RESULTS.md, "sasrec and hstu"): every
# interaction a target once per epoch through windows over the whole history, longer windows, dropout 0.2.
register_named_config(
    "sasrec-full-history",
    "sasrec",
    {
        "layers": 2,
        "hidden": 64,
        "inner": 256,
        "heads": 2,
        "dropout": 0.2,
        "max_len": 200,
        "lr": 1e-3,
        "batch_size": 128,
        "patience": 20,
        "train_windows": "all",
        "warmup_steps": 50,
        "loss": "full",
    },
)
# The DiffRec authors' released ML-1M (clean) checkpoint settings; their dims [200, 600] are the layers 600-200-600.
register_named_config(
    "diffrec-paper-ml1m",
    "diffrec",
    {"hidden_dims": [600, 200, 600], "steps": 40, "noise_scale": 0.005, "noise_min": 0.005, "noise_max": 0.01},
)
# Mult-VAE for a few hundred users (movielens-latest-small): more updates per epoch and beta reaching its cap
# after 200 updates; measured in benchmarks/RESULTS.md ("Set-based rankers").
register_named_config("multvae-small-data", "multvae", {"batch_size": 100, "total_anneal_steps": 1000})
# CFGAN with both networks' Adam learning rate 1e-3 instead of the authors' 1e-4 (ML-100K code), for short
# budgets: measured with a 30-epoch cap in benchmarks/RESULTS.md ("CFGAN").
register_named_config("cfgan-lr1e-3", "cfgan", {"lr": 1e-3, "discriminator_lr": 1e-3})
# TIGER's quantiser (RQ-VAE, 3 x 256 codes, latent 32, MLP 512-256-128, beta 0.25) instead of residual k-means.
register_named_config("tiger-rqvae", "tiger", {"quantiser": "rqvae"})
# The main job's ranker (`genrec demo`): sasrec on windows over the whole history (max_len 50) with a sampled
# softmax over 1,024 popularity-drawn negatives (logQ-corrected), dropout 0.1, batch 32, lr 2e-3 on a 15-epoch
# cosine schedule. Chosen on mean validation NDCG@10 over seeds 0-2 among short-budget candidates: 0.0362, against
# 0.0322 for the same loss with batch 64, lr 3e-3, 20 epochs, and 0.0288 (seed 0) for the previous full-softmax
# demo config after 30 epochs (benchmarks/RESULTS.md, "Time to quality (issue 16)").
register_named_config(
    "sasrec-demo",
    "sasrec",
    {
        "max_len": 50,
        "train_windows": "all",
        "loss": "sampled",
        "sampler": "popularity",
        "negatives": 1024,
        "dropout": 0.1,
        "lr": 2e-3,
        "batch_size": 32,
        "warmup_steps": 20,
        "schedule": "cosine",
        "epochs": 15,
        "patience": 15,
    },
)

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
