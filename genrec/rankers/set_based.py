"""Shared machinery of set-based rankers (Mult-VAE, DiffRec, CFGAN): models of the user's item *set*.

A set-based ranker sees a user as a multi-hot vector over the catalogue and ignores the order
of the history. Training iterates over shuffled batches of users and builds each batch's
multi-hot matrix on the fly, so no dense users x items matrix larger than one batch ever exists.
At ranking time the history given to :meth:`score` (for the test phase: training items plus the
validation item) is the model input, exactly as the papers feed the fold-in interactions.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from itertools import pairwise

import numpy as np
import torch
from pydantic import Field, field_validator

from genrec.data.sequences import Sequences
from genrec.evaluation.splits import Split
from genrec.rankers.base import FitReport, Ranker
from genrec.rankers.training import TrainedRankerConfig, fit_with_early_stopping
from genrec.seeding import seed_everything


class SetRankerConfig(TrainedRankerConfig):
    """Optimisation settings of set-based rankers; one training example is one user."""

    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="dropout on the input multi-hot vector")
    hidden_dims: list[int] = Field([600], description="widths of the hidden layers")

    @field_validator("hidden_dims")
    @classmethod
    def _positive_widths(cls, dims: list[int]) -> list[int]:
        return check_widths("hidden_dims", dims)


def check_widths(field: str, dims: list[int]) -> list[int]:
    """Layer widths for a config validator: at least one, every one >= 1."""
    if not dims or min(dims) < 1:
        raise ValueError(f"{field} needs at least one layer, every width >= 1; got {dims}")
    return dims


def mlp(dims: list[int], activation: type[torch.nn.Module]) -> torch.nn.Sequential:
    """Linear layers through ``dims`` with ``activation`` between them (none after the last).

    Weights are initialised Xavier-normal, biases N(0, 0.001^2), as the Mult-VAE and DiffRec reference code do.
    """
    layers: list[torch.nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(pairwise(dims)):
        linear = torch.nn.Linear(fan_in, fan_out)
        torch.nn.init.xavier_normal_(linear.weight)
        torch.nn.init.normal_(linear.bias, std=0.001)
        layers.append(linear)
        if index < len(dims) - 2:
            layers.append(activation())
    return torch.nn.Sequential(*layers)


def tanh_mlp(dims: list[int]) -> torch.nn.Sequential:
    """:func:`mlp` with tanh, the activation of both the Mult-VAE and the DiffRec reference code."""
    return mlp(dims, torch.nn.Tanh)


def user_batches(train: Sequences, batch_size: int, generator: torch.Generator) -> Iterator[Sequences]:
    """Shuffled batches of the users with at least one training item, as ``Sequences`` rows."""
    users = np.flatnonzero(train.lengths > 0)
    order = users[torch.randperm(len(users), generator=generator).numpy()]
    for start in range(0, len(order), batch_size):
        yield train.rows(order[start : start + batch_size])


class MultiHotRanker(Ranker):
    """A ranker whose torch module scores every item from a multi-hot batch [B, N].

    Subclasses implement :meth:`make_module`, :meth:`predict` and ``fit``; this class owns
    seeded building, scoring and persistence (every tensor of ``self.module``).
    """

    module: torch.nn.Module

    @abstractmethod
    def make_module(self, n_items: int) -> torch.nn.Module:
        """The randomly initialised model for a catalogue of ``n_items``."""

    @abstractmethod
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Scores [B, N] of every item for the multi-hot histories ``x`` [B, N] (eval mode)."""

    def build(self, n_items: int) -> None:
        with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
            torch.manual_seed(self.config.seed)
            self.module = self.make_module(n_items).to(self.device)
        self.module.eval()

    @torch.inference_mode()
    def score(self, history: Sequences) -> torch.Tensor:
        n_items = self.require_fitted()
        self.module.eval()
        return self.predict(history.multi_hot(n_items).to(self.device)).float().cpu()  # [B, N]

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.module.state_dict())

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(tensors)


class SetRanker(MultiHotRanker):
    """A multi-hot ranker trained by one loss with Adam (Mult-VAE, DiffRec).

    Subclasses implement :meth:`make_module`, :meth:`training_loss` and :meth:`predict`; this
    class owns the epoch loop (via :func:`fit_with_early_stopping`).
    """

    config_class = SetRankerConfig
    config: SetRankerConfig

    @abstractmethod
    def training_loss(self, x: torch.Tensor, step: int, generator: torch.Generator) -> torch.Tensor:
        """Scalar loss of a multi-hot batch ``x`` [B, N] at optimizer update ``step`` (0-based)."""

    def fit(self, split: Split, progress: bool = True) -> FitReport:
        self.check_item_features(split.n_items)
        generator = seed_everything(self.config.seed)  # dropout draws from the global RNG
        self.build(split.n_items)
        self.n_items = split.n_items
        optimizer = torch.optim.Adam(self.module.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
        step = 0

        def run_epoch(epoch: int) -> float:
            nonlocal step
            total, users = 0.0, 0
            for batch in user_batches(split.train, self.config.batch_size, generator):
                x = batch.multi_hot(split.n_items).to(self.device)  # [B, N]
                loss = self.training_loss(x, step, generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                total, users = total + loss.item() * len(batch), users + len(batch)
            return total / max(users, 1)

        self.fit_report = fit_with_early_stopping(self, self.module, split, run_epoch, self.config, progress)
        return self.fit_report
