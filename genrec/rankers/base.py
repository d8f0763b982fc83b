"""The ranker interface every registered ranker implements.

A ranker learns from a :class:`Split` (``fit``), scores the whole catalogue for a batch of
user histories (``score``), and ranks with seen items excluded (``rank``). Rankers save
and load through :class:`genrec.persistence.Pretrained`: ``config.json`` (the manifest: ranker
name, resolved config, catalogue size) plus ``model.safetensors``; ``from_pretrained`` rebuilds
the exact model. :data:`RANKERS` is the registry every ranker is listed in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from pydantic import Field
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from genrec.config import ConfigError, Device, Seed, StrictModel
from genrec.data.sequences import Sequences
from genrec.evaluation.splits import Split
from genrec.io import atomic_path
from genrec.persistence import MANIFEST_FILE, WEIGHTS_FILE, Manifest, Pretrained, corrupt_model
from genrec.progress import progress_bar
from genrec.ranking_ops import exclude_seen, top_k, top_k_with_new_items
from genrec.registry import Registry

CONFIG_FILE = MANIFEST_FILE


class RankerConfig(StrictModel):
    """Settings every ranker has; subclasses add their hyper-parameters."""

    seed: Seed = Field(0, description="seeds weight init, sampling and data order")
    device: Device = Field("cpu", description="torch device for training and ranking, e.g. 'cpu' or 'cuda'")
    eval_batch_size: int = Field(256, ge=1, description="users scored per batch when ranking")


@dataclass
class FitReport:
    """What training did: per-epoch history, the best validation score and timings."""

    epochs: int = 0
    best_epoch: int = 0
    best_valid_ndcg10: float | None = None
    fit_seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def seconds_per_epoch(self) -> float:
        return self.fit_seconds / self.epochs if self.epochs else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds_per_epoch": self.seconds_per_epoch}


class NotFittedError(RuntimeError):
    pass


class Ranker(Pretrained, ABC):
    """Base class: subclasses set ``name`` and ``config_class`` and implement the abstract methods."""

    kind = "ranker"
    required_files = (CONFIG_FILE, WEIGHTS_FILE)
    name: ClassVar[str]
    config_class: ClassVar[type[RankerConfig]] = RankerConfig
    uses_item_features: ClassVar[bool] = False  # True where item_features shape the model (fused, quantised)

    def __init__(self, config: RankerConfig | dict[str, Any] | None = None, item_features: np.ndarray | None = None):
        if item_features is not None:
            self.check_accepts_item_features()
        if isinstance(config, dict) or config is None:
            config = self.config_class.from_dict(config or {}, source=f"{self.name} config")
        if not isinstance(config, self.config_class):
            raise TypeError(f"{self.name} expects a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        self.item_features = None if item_features is None else np.asarray(item_features, dtype=np.float32)
        self.n_items: int | None = None
        self.fit_report: FitReport | None = None

    @property
    def device(self) -> torch.device:
        return torch.device(self.config.device)

    # -- to implement -------------------------------------------------------------------
    @abstractmethod
    def build(self, n_items: int) -> None:
        """Allocate (randomly initialised, seeded) weights for a catalogue of ``n_items``."""

    @abstractmethod
    def fit(self, split: Split, progress: bool = True) -> FitReport:
        """Train on ``split.train`` (early stopping on ``split.valid`` where it applies)."""

    @abstractmethod
    def score(self, history: Sequences) -> torch.Tensor:
        """Scores of every item for each history row: [B, n_items] float32 on CPU."""

    @abstractmethod
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor needed to rebuild the fitted model (saved as safetensors)."""

    @abstractmethod
    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None: ...

    # -- shared behaviour ------------------------------------------------------------------
    @classmethod
    def check_accepts_item_features(cls) -> None:
        """ConfigError unless this ranker uses item features: features it would ignore are refused, not stored."""
        if not cls.uses_item_features:
            users = [name for name in RANKERS.names() if RANKERS.get(name).uses_item_features]
            raise ConfigError(
                f"ranker {cls.name!r} does not use item features, so --item-features / item_features would be "
                f"ignored; rankers that use them: {', '.join(users)}"
            )

    def check_item_features(self, n_items: int) -> None:
        if self.item_features is not None and self.item_features.shape[0] != n_items:
            raise ValueError(
                f"{self.name}: item_features has {self.item_features.shape[0]} rows, expected one per item "
                f"({n_items}); build it with the same data set"
            )

    def require_fitted(self) -> int:
        if self.n_items is None:
            raise NotFittedError(f"{self.name}: call fit() or from_pretrained() before ranking")
        return self.n_items

    @torch.inference_mode()
    def rank(
        self,
        history: Sequences,
        k: int = 10,
        exclude: Sequences | None = None,
        progress: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for each history row, excluding ``exclude`` (default: the history).

        Returns item indices [B, k] (-1 where fewer than k items remain) and scores [B, k].
        Ties are broken by the lower item index. Rows go ``eval_batch_size`` at a time through
        :meth:`rank_batch`, the step a ranker with its own candidate search overrides.
        """
        self.require_fitted()
        exclude = history if exclude is None else exclude
        batch = self.config.eval_batch_size
        indices, scores = [], []
        with progress_bar(progress) as bar:
            task = bar.add_task(f"ranking ({self.name})", total=len(history), status="")
            for start in range(0, len(history), batch):
                rows = np.arange(start, min(start + batch, len(history)))
                top_index, top_scores = self.rank_batch(history.rows(rows), exclude.rows(rows), k)
                indices.append(top_index.numpy())
                scores.append(top_scores.numpy())
                bar.advance(task, len(rows))
        return np.concatenate(indices), np.concatenate(scores)

    def rank_batch(self, history: Sequences, exclude: Sequences, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` of one batch of rows: :meth:`score`, ``exclude`` set to -inf, deterministic top-k, with the
        :meth:`reserved_places` of untrained items.

        Returns (item indices [B, k], scores [B, k]) as CPU tensors.
        """
        scores = exclude_seen(self.score(history).float().cpu(), exclude)
        reserved = self.reserved_places()
        if reserved is None or not reserved[1].any():
            return top_k(scores, k)
        return top_k_with_new_items(scores, reserved[1], k, reserved[0])

    def reserved_places(self) -> tuple[int, torch.Tensor] | None:
        """(every, untrained [n_items] bool): places every, 2 x every, ... of a list go to the best untrained
        items (content-aware rankers with ``cold_start_every``); None: no places reserved."""
        return None

    def save_extra_files(self, directory: Path) -> None:
        """Files a ranker keeps beside its tensors (the llm ranker: its retriever and LoRA adapter); none here."""
        return None

    def load_extra_files(self, directory: Path) -> None:
        """Read what :meth:`save_extra_files` wrote; called by ``from_pretrained`` after the tensors."""
        return None

    def evaluation_extras(self) -> dict[str, float]:
        """Ranker-specific figures to report beside the metrics (e.g. invalid-id share)."""
        return {}

    @property
    def type_name(self) -> str:
        return self.name

    def save_weights(self, directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        """``model.safetensors`` (the state tensors, plus ``item_features`` when given), then any extra files."""
        n_items = self.require_fitted()
        tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in self.state_tensors().items()}
        if self.item_features is not None:
            tensors["item_features"] = torch.from_numpy(self.item_features)
        with atomic_path(directory / WEIGHTS_FILE) as temporary:
            save_file(tensors, str(temporary))
        self.save_extra_files(directory)
        return {}, {"n_items": n_items}

    @classmethod
    def implementation(cls, type_name: str, source: Path) -> type[Ranker]:
        return RANKERS.get(type_name)

    @classmethod
    def from_state(
        cls,
        config: RankerConfig,
        n_items: int,
        tensors: dict[str, torch.Tensor],
        item_features: np.ndarray | None = None,
    ) -> Self:
        """A fitted ranker rebuilt from its config and :meth:`state_tensors` (no extra files)."""
        ranker = cls(config, item_features=item_features)
        ranker.build(n_items)
        ranker.load_state_tensors(tensors)
        ranker.n_items = n_items
        return ranker

    @classmethod
    def from_saved(cls, config: RankerConfig, manifest: Manifest, directory: Path, **context: Any) -> Self:
        path = directory / WEIGHTS_FILE
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as err:  # a save without recorded hashes is checked only here
            raise corrupt_model(path, directory, f"unreadable: {err}") from None
        features = tensors.pop("item_features", None)
        n_items = int(manifest.state["n_items"])
        ranker = cls.from_state(config, n_items, tensors, None if features is None else features.numpy())
        ranker.load_extra_files(directory)
        return ranker


RANKERS: Registry[type[Ranker]] = Registry(
    "ranker", stage="rankers", description="generative ranking models (genrec benchmark ranking --ranker NAME)"
)
