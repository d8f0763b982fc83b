"""Generative ranking models behind one registry.

>>> from genrec.rankers import create_ranker, list_rankers
>>> ranker = create_ranker("popular")
>>> ranker = create_ranker("popular", config={"eval_batch_size": 512})
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genrec.config import ConfigError, load_json_object
from genrec.rankers.base import FitReport, NotFittedError, Ranker, RankerConfig
from genrec.rankers.cfgan import CFGANRanker
from genrec.rankers.diffrec import DiffRecRanker
from genrec.rankers.llm import LLMRanker
from genrec.rankers.multvae import MultVAERanker
from genrec.rankers.popularity import PopularityRanker
from genrec.rankers.sasrec import HSTURanker, SASRecRanker
from genrec.rankers.tiger import TigerRanker
from genrec.registry import Registry

RANKERS: Registry[type[Ranker]] = Registry("ranker")
RANKERS.register(PopularityRanker.name)(PopularityRanker)
RANKERS.register(MultVAERanker.name)(MultVAERanker)
RANKERS.register(DiffRecRanker.name)(DiffRecRanker)
RANKERS.register(CFGANRanker.name)(CFGANRanker)
RANKERS.register(SASRecRanker.name)(SASRecRanker)
RANKERS.register(HSTURanker.name)(HSTURanker)
RANKERS.register(TigerRanker.name)(TigerRanker)
RANKERS.register(LLMRanker.name)(LLMRanker)

# Named configurations: name -> (ranker name, settings). A ranker's default config is its
# best-known configuration; named ones document other published or studied settings.
NAMED_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {}


def register_named_config(name: str, ranker: str, settings: dict[str, Any]) -> None:
    if name in NAMED_CONFIGS:
        raise ValueError(f"named config {name!r} is already registered")
    NAMED_CONFIGS[name] = (ranker, dict(settings))


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
# hstu's default before issue 16 (benchmarks/RESULTS.md, "sasrec and hstu", seeds 0-1: test NDCG@10 0.0534 after
# ~120 epochs, 4,140 s on one core): sasrec-full-history's training with HSTU blocks.
register_named_config(
    "hstu-full-history",
    "hstu",
    {
        "max_len": 200,
        "dropout": 0.2,
        "loss": "full",
        "negatives": 256,
        "sampler": "uniform",
        "lr": 1e-3,
        "batch_size": 128,
        "warmup_steps": 50,
        "schedule": "constant",
        "epochs": 200,
        "patience": 20,
        "train_windows": "all",
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


def list_named_configs(ranker: str | None = None) -> list[str]:
    return sorted(name for name, (owner, _) in NAMED_CONFIGS.items() if ranker in (None, owner))


def resolve_ranker_config(
    ranker: str, config: str | Path | dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> RankerConfig:
    """Build ``ranker``'s config from a named config, a JSON file or a dict; ``overrides`` win.

    Raises ConfigError naming the source and field for unknown keys or bad values.
    """
    config_class = RANKERS.get(ranker).config_class
    source = f"{ranker} config"
    if config is None:
        settings: dict[str, Any] = {}
    elif isinstance(config, dict):
        settings = dict(config)
    elif str(config) in NAMED_CONFIGS:
        owner, settings = NAMED_CONFIGS[str(config)]
        if owner != ranker:
            raise ConfigError(f"named config {config!r} is for ranker {owner!r}, not {ranker!r}")
        source = f"named config {config!r}"
    elif Path(config).suffix == ".json" or Path(config).exists():
        settings, source = load_json_object(config), str(config)
    else:
        raise ConfigError(
            f"config {config!r} is neither a JSON file nor a named config; named configs for {ranker!r}: "
            f"{', '.join(list_named_configs(ranker)) or '(none)'}"
        )
    return config_class.from_dict({**settings, **(overrides or {})}, source=source)


__all__ = [
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


def list_rankers() -> list[str]:
    return RANKERS.names()


def create_ranker(
    name: str, config: RankerConfig | str | Path | dict[str, Any] | None = None, item_features: np.ndarray | None = None
) -> Ranker:
    """Build an unfitted ranker by registry name; unknown names list the valid ones.

    ``config`` may be a config object, a dict, a named config or a JSON file path.
    """
    if not isinstance(config, RankerConfig):
        config = resolve_ranker_config(name, config)
    return RANKERS.get(name)(config, item_features=item_features)


def load_ranker(name_or_path: str, device: str | None = None) -> Ranker:
    """Load any saved ranker; the directory's config.json says which class to rebuild."""
    return Ranker.from_pretrained(name_or_path, device=device)
