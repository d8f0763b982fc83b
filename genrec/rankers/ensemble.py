"""Seed ensembles: several copies of one ranker, fitted with different seeds, their scores averaged.

A deep ensemble (Lakshminarayanan et al., NeurIPS 2017): members share the architecture and the
data and differ only in their seed (initial weights, data order, sampled negatives), so their
errors are partly independent and averaging cancels some. Each member's scores are standardised
per user over the catalogue (zero mean, unit variance) before averaging: a sampled-softmax
model's logits have no fixed scale, and one member must not outvote the others by scale alone.
With item features, every member whose ranker takes them gets them (content-aware hstu/sasrec),
except that ``content_members`` can keep the rest id-only: a mixed ensemble.

Members fit ``workers`` at a time, each in its own process with an equal share of this process's
torch threads. Small sequence models use a second core poorly as a second intra-op thread and
well as a second process: on two cores, two members take about the time of one
(benchmarks/RESULTS.md, "Seed ensembles").
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, model_validator

from genrec.data.sequences import Sequences
from genrec.evaluation.splits import Split
from genrec.progress import progress_bar
from genrec.rankers.base import FitReport, Ranker, RankerConfig
from genrec.rankers.distributed import active
from genrec.rankers.factory import RANKERS, create_ranker, load_ranker, resolve_ranker_config
from genrec.rankers.training import validation_ndcg10
from genrec.seeding import seed_everything

MEMBERS_DIR = "members"


class EnsembleConfig(RankerConfig):
    """Which ranker the members are, how many, and how many fit at once.

    Four hstu-default members, two at a time: chosen on validation NDCG@10 under the LlamaRec
    protocol among ensembles that fit in 270 s on two cores (0.0923 for 4 x hstu against 0.0895 for
    2 x hstu and 0.0897 for 2 x ``hstu-llamarec``; 4 x ``hstu-llamarec``, 0.0963, takes about 580 s).
    Over seeds 0-2: validation 0.0979, test NDCG@10 0.0718, 213-216 s (benchmarks/RESULTS.md,
    "Seed ensembles").
    """

    member: str = Field("hstu", description="the registered ranker every member is")
    member_config: str | dict[str, Any] = Field(
        default_factory=dict, description="the members' config: a named config or a dict of settings"
    )
    members: int = Field(4, ge=2, description="members; member i is seeded seed * members + i")
    content_members: int | None = Field(
        None,
        ge=0,
        description="with item features: how many members take them (the first ones); the rest are id-only. "
        "None: every member",
    )
    workers: int = Field(
        2,
        ge=1,
        description="members fitted at once, each in its own process with an equal share of the torch threads "
        "(1: one after another in this process)",
    )

    @model_validator(mode="after")
    def _check(self) -> EnsembleConfig:
        if self.member not in RANKERS:
            options = ", ".join(RANKERS.names())
            raise ValueError(f"member {self.member!r} is not a registered ranker; options: {options}")
        if self.content_members is not None and self.content_members > self.members:
            raise ValueError(f"content_members ({self.content_members}) exceeds members ({self.members})")
        if self.member in ("ensemble", "llm"):
            raise ValueError(
                f"member {self.member!r} cannot be an ensemble member (members fit in worker processes on their own)"
            )
        return self

    def member_seeds(self) -> list[int]:
        """Disjoint across ensemble seeds: seed 0 with 4 members uses 0-3, seed 1 uses 4-7."""
        return [self.seed * self.members + i for i in range(self.members)]

    def member_settings(self) -> list[RankerConfig]:
        return [
            resolve_ranker_config(self.member, self.member_config, {"seed": seed, "device": self.device})
            for seed in self.member_seeds()
        ]


def fit_member(
    name: str,
    config: RankerConfig,
    split: Split,
    threads: int | None,
    progress: bool = False,
    item_features: np.ndarray | None = None,
) -> tuple[dict, dict]:
    """Fit one member (in a worker process when ``threads`` is given); returns its tensors and fit report."""
    if threads is not None:
        torch.set_num_threads(threads)
    seed_everything(config.seed)
    ranker = create_ranker(name, config, item_features=item_features)
    report = ranker.fit(split, progress=progress)
    return {key: value.detach().cpu() for key, value in ranker.state_tensors().items()}, asdict(report)


def standardised(scores: torch.Tensor) -> torch.Tensor:
    """Per-row zero mean, unit variance over the catalogue: [B, n_items] -> [B, n_items]."""
    if not torch.isfinite(scores).all():
        raise ValueError("ensemble members must give a finite score to every item")
    return (scores - scores.mean(dim=1, keepdim=True)) / scores.std(dim=1, keepdim=True).clamp_min(1e-12)


class EnsembleRanker(Ranker):
    """A seed ensemble of one ranker: standardised scores of several seeds averaged (see the module docstring)."""

    name = "ensemble"
    config_class = EnsembleConfig
    uses_item_features = True  # passed on to the members (a member ranker that takes none refuses them)
    config: EnsembleConfig

    def __init__(self, config=None, item_features: np.ndarray | None = None):
        super().__init__(config, item_features)
        self.members: list[Ranker] = []

    def build(self, n_items: int) -> None:
        """The members are built by fit or loaded from ``members/``: nothing of the ensemble's own to allocate."""
        self.check_item_features(n_items)
        if self.item_features is not None:
            RANKERS.get(self.config.member).check_accepts_item_features()

    def member_features(self) -> list[np.ndarray | None]:
        """The item features each member takes: the first ``content_members`` (default all) get them."""
        content = self.config.members if self.config.content_members is None else self.config.content_members
        return [self.item_features if i < content else None for i in range(self.config.members)]

    def fit(self, split: Split, progress: bool = True) -> FitReport:
        config = self.config
        start = time.perf_counter()
        self.build(split.n_items)
        settings, features = config.member_settings(), self.member_features()
        workers = min(config.workers, config.members)
        if workers > 1 and active():
            raise ValueError("ensemble: workers > 1 cannot run inside a torchrun process group; set workers=1")
        if workers == 1:
            fitted = [
                fit_member(config.member, member, split, None, progress, item_features)
                for member, item_features in zip(settings, features, strict=True)
            ]
        else:
            fitted = self.fit_in_workers(settings, features, split, workers, progress)
        member_class = RANKERS.get(config.member)
        self.members = [
            member_class.from_state(member, split.n_items, tensors, item_features)
            for member, item_features, (tensors, _) in zip(settings, features, fitted, strict=True)
        ]
        self.n_items = split.n_items
        reports = [FitReport(**report) for _, report in fitted]
        # The ensemble's epoch is one epoch of every member (so seconds per epoch is wall time per member epoch),
        # its best epoch the latest best epoch of any member; per-member figures are in the history.
        self.fit_report = FitReport(
            epochs=max(report.epochs for report in reports),
            best_epoch=max(report.best_epoch for report in reports),
            history=[
                {
                    "member": i,
                    "seed": member.seed,
                    "epochs": report.epochs,
                    "best_epoch": report.best_epoch,
                    "member_valid_NDCG@10": report.best_valid_ndcg10,
                    "seconds": report.fit_seconds,
                }
                for i, (member, report) in enumerate(zip(settings, reports, strict=True))
            ],
        )
        self.fit_report.best_valid_ndcg10 = validation_ndcg10(self, split)
        self.fit_report.fit_seconds = time.perf_counter() - start
        return self.fit_report

    def fit_in_workers(
        self,
        settings: list[RankerConfig],
        features: list[np.ndarray | None],
        split: Split,
        workers: int,
        progress: bool,
    ) -> list[tuple[dict, dict]]:
        """Fit the members ``workers`` at a time in spawned processes (fork would copy torch's thread pools
        in whatever state they are in), each with an equal share of this process's torch threads."""
        threads = max(1, torch.get_num_threads() // workers)
        with (
            ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool,
            progress_bar(progress) as bar,
        ):
            description = f"training {len(settings)} {self.config.member} members"
            task = bar.add_task(description, total=len(settings), status="")
            jobs = [
                pool.submit(fit_member, self.config.member, member, split, threads, False, item_features)
                for member, item_features in zip(settings, features, strict=True)
            ]
            for done in as_completed(jobs):
                best = done.result()[1]["best_valid_ndcg10"]
                bar.update(task, advance=1, status="" if best is None else f"last member's valid NDCG@10 {best:.4f}")
            return [job.result() for job in jobs]

    @torch.inference_mode()
    def score(self, history: Sequences) -> torch.Tensor:
        self.require_fitted()
        return torch.stack([standardised(member.score(history).float()) for member in self.members]).mean(dim=0)

    def reserved_places(self) -> tuple[int, torch.Tensor] | None:
        """The first member's: members share the config, and the first takes the item features if any does."""
        return self.members[0].reserved_places()

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"member_seeds": torch.tensor(self.config.member_seeds(), dtype=torch.int64)}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if tensors["member_seeds"].tolist() != self.config.member_seeds():
            raise ValueError(
                f"ensemble: saved member seeds {tensors['member_seeds'].tolist()} do not match the config's "
                f"{self.config.member_seeds()}"
            )

    def save_extra_files(self, directory: Path) -> None:
        """Each member as a saved ranker of its own: ``members/0/``, ``members/1/``, ..."""
        for i, member in enumerate(self.members):
            member.save_pretrained(directory / MEMBERS_DIR / str(i))

    def load_extra_files(self, directory: Path) -> None:
        self.members = [
            load_ranker(str(directory / MEMBERS_DIR / str(i)), device=self.config.device)
            for i in range(self.config.members)
        ]
