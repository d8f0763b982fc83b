"""CFGAN: vector-wise adversarial training of a generator of purchase vectors.

Chae, Kang, Kim, Lee. "CFGAN: A Generic Collaborative Filtering Framework based on Generative
Adversarial Networks". CIKM 2018. https://doi.org/10.1145/3269206.3271743

Set-based: the history is a multi-hot vector, its order is ignored. The generator G maps the
user's condition vector c_u (here the multi-hot training history, which is also the real
purchase vector r_u of implicit feedback) to a purchase vector r_hat_u = G(c_u) [N]; as in
the paper no random noise z is fed, since one most plausible vector per user is wanted. The
discriminator D(r | c_u) sees a vector beside the condition and tells real from generated.
D only sees the generated values of the items the user purchased, e_u * r_hat_u (e_u = the
0/1 indicator of the purchases), so that G is not asked to reproduce the zeros of r_u
(paper Sec. 3):

    J_D = - sum_u [ log D(r_u | c_u) + log(1 - D(r_hat_u * (e_u + k_u) | c_u)) ]
    J_G =   sum_u [ -log D(r_hat_u * (e_u + k_u) | c_u) ]  +  alpha * sum_u sum_{j in N_u^ZR} r_hat_uj^2

Masking on purchases alone has the trivial optimum r_hat_u = 1 everywhere; the paper's three
remedies (Sec. 3) draw negative items among the user's non-purchased ones, anew at every
iteration:

- ZR, zero-reconstruction: N_u^ZR holds a share ``s_zr`` (the paper's S_ZR) of the user's
  non-purchased items; G pays alpha times the squared output on them (k_u = 0).
- PM, partial masking: N_u^PM holds a share ``s_pm`` (S_PM); k_u is its indicator, so D also
  sees G's values there (real vectors hold 0 there) and both networks train on e_u + k_u.
- ZP: both, with two independently drawn sets.

Both networks are MLPs with sigmoid hidden units and a linear output layer, as in the authors'
code (G's output r_hat is not squashed; D's output is a logit). The G term is that code's
non-saturating -log D(fake) (sigmoid cross-entropy against label 1) rather than
log(1 - D(fake)), whose gradient vanishes while D wins. Ranking scores every item by
r_hat_u = G(c_u), with the seen items excluded.

Stability: each epoch's history row holds G's and D's losses, D's mean output on real and on
generated vectors, and the spread of G's output across users on a fixed probe of users. A
generator whose output no longer depends on the user (every user gets the same vector, or the
trivial all-ones vector) has ``generator_user_share`` = 0; training stops with a warning after
``collapse_patience`` epochs below ``collapse_threshold``, and the best weights are restored.

Deviations from the authors' released code (github.com/Bigdasgit/CFGAN): it trains the
item-based variant (one vector per item over users) by default; here G is user-based as the
paper describes it, because a ranker must score users it folds in from their history. It draws
the negative sets once per epoch for every user and reuses them for all D and G passes;
here they are drawn per mini-batch (holding them would need a users x items mask). Weights are
initialised Xavier-normal with N(0, 0.001^2) biases (theirs: Glorot-uniform, U(-0.01, 0.01)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from genrec.evaluation.splits import Split
from genrec.rankers.base import FitReport
from genrec.rankers.set_based import MultiHotRanker, SetRankerConfig, check_widths, mlp, user_batches
from genrec.rankers.training import fit_with_early_stopping
from genrec.seeding import seed_everything

Scheme = Literal["ZR", "PM", "ZP"]
Step = Callable[[torch.Tensor, torch.optim.Optimizer, torch.Generator], dict[str, float]]


class CFGANConfig(SetRankerConfig):
    """Hyper-parameters. Defaults: the paper's reported scheme ZP with S_ZR = S_PM = 70 % of the non-purchased
    items and alpha = 0.1 (Sec. 4, as Perez Maurera et al., "An Evaluation Study of Generative Adversarial
    Networks for Collaborative Filtering", ECIR 2022, collect them); the paper leaves the networks to its code,
    so widths, rates, batch sizes and steps are the authors' released ML-100K settings (G: one sigmoid hidden
    layer of 400, Adam lr 1e-4, L2 1e-3, batch 32, 4 passes per epoch; D: one sigmoid hidden layer of 125, Adam
    lr 1e-4, no L2, batch 64, 2 passes per epoch; 1000 G passes = 250 epochs)."""

    hidden_dims: list[int] = Field([400], description="widths of G's hidden layers (sigmoid)")
    discriminator_dims: list[int] = Field([125], description="widths of D's hidden layers (sigmoid)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on G's input c_u (not in the paper: 0)")
    scheme: Scheme = Field("ZP", description="ZR (zero-reconstruction), PM (partial masking) or ZP (both)")
    s_zr: float = Field(0.7, ge=0.0, le=1.0, description="S_ZR: share of non-purchased items in N_u^ZR")
    s_pm: float = Field(0.7, ge=0.0, le=1.0, description="S_PM: share of non-purchased items in N_u^PM")
    alpha: float = Field(0.1, ge=0.0, description="weight of the zero-reconstruction term in J_G")
    epochs: int = Field(250, ge=1, description="maximum number of epochs (each: D passes, then G passes)")
    batch_size: int = Field(32, ge=1, description="users per G update")
    lr: float = Field(1e-4, gt=0, description="G's Adam learning rate")
    weight_decay: float = Field(1e-3, ge=0, description="G's L2 coefficient (Adam weight decay = the code's L2 loss)")
    generator_steps: int = Field(4, ge=1, description="passes of G over the users per epoch")
    discriminator_steps: int = Field(2, ge=1, description="passes of D over the users per epoch")
    discriminator_batch_size: int = Field(64, ge=1, description="users per D update")
    discriminator_lr: float = Field(1e-4, gt=0, description="D's Adam learning rate")
    discriminator_weight_decay: float = Field(0.0, ge=0, description="D's L2 coefficient")
    collapse_threshold: float = Field(
        1e-3, ge=0.0, le=1.0, description="generator_user_share below this counts as a collapsed generator"
    )
    collapse_patience: int = Field(3, ge=1, description="consecutive collapsed epochs before training stops")
    probe_users: int = Field(256, ge=2, description="users (with training items) whose G outputs measure collapse")

    @field_validator("discriminator_dims")
    @classmethod
    def _positive_widths_d(cls, dims: list[int]) -> list[int]:
        return check_widths("discriminator_dims", dims)


def sample_negatives(x: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """Indicator [B, N] of floor(share * |non-purchased|) items drawn uniformly, without replacement,
    among each row's zeros of the multi-hot batch ``x`` [B, N] (the paper's N_u^ZR / N_u^PM)."""
    mask = torch.zeros(x.shape)
    for row, values in enumerate(x.cpu()):
        free = torch.nonzero(values == 0).squeeze(1)  # [F] the user's non-purchased items
        mask[row, free[torch.randperm(len(free), generator=generator)[: int(len(free) * share)]]] = 1.0
    return mask.to(x.device)  # [B, N]


def generated_input(r_hat: torch.Tensor, x: torch.Tensor, k: torch.Tensor | None) -> torch.Tensor:
    """What D sees of a generated vector: r_hat * e_u, or r_hat * (e_u + k_u) with partial masking."""
    return r_hat * (x if k is None else x + k)  # [B, N]


def zero_reconstruction(r_hat: torch.Tensor, zr: torch.Tensor) -> torch.Tensor:
    """sum_{j in N_u^ZR} r_hat_uj^2, averaged over the users of the batch (the ZR term before alpha)."""
    return (r_hat.pow(2) * zr).sum(dim=1).mean()


def user_spread(r_hat: torch.Tensor) -> tuple[float, float]:
    """Variance of G's output across users (mean over items) and its share of the total variance.

    r_hat [U, N]. The share is 0 when every user gets the same vector, including a constant one
    (nothing varies at all), and near 1 when the output varies mostly between users.
    """
    between = r_hat.var(dim=0, unbiased=False).mean().item()
    total = r_hat.var(unbiased=False).item()
    return between, (between / total if total > 1e-12 else 0.0)


class CFGAN(torch.nn.Module):
    def __init__(self, n_items: int, hidden_dims: list[int], discriminator_dims: list[int], dropout: float):
        super().__init__()
        self.generator = mlp([n_items, *hidden_dims, n_items], torch.nn.Sigmoid)  # c_u -> r_hat_u
        self.discriminator = mlp([2 * n_items, *discriminator_dims, 1], torch.nn.Sigmoid)  # [c_u, r] -> logit
        self.dropout = torch.nn.Dropout(dropout)

    def generate(self, c: torch.Tensor) -> torch.Tensor:
        """r_hat = G(c): [B, N] -> [B, N]."""
        return self.generator(self.dropout(c))

    def discriminate(self, c: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Logit of D(r | c): [B, N], [B, N] -> [B]."""
        return self.discriminator(torch.cat([c, r], dim=1)).squeeze(1)


class CFGANRanker(MultiHotRanker):
    """CFGAN (Chae et al., CIKM 2018), a set-based ranker: the order of the history is ignored."""

    name = "cfgan"
    config_class = CFGANConfig
    config: CFGANConfig
    module: CFGAN

    def make_module(self, n_items: int) -> CFGAN:
        c = self.config
        return CFGAN(n_items, c.hidden_dims, c.discriminator_dims, c.dropout)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.module.generate(x)

    def negative_masks(
        self, x: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(k_u for partial masking, N_u^ZR indicator) of a batch [B, N]; None where the scheme has none."""
        scheme = self.config.scheme
        pm = sample_negatives(x, self.config.s_pm, generator) if scheme in ("PM", "ZP") else None
        zr = sample_negatives(x, self.config.s_zr, generator) if scheme in ("ZR", "ZP") else None
        return pm, zr

    def discriminator_step(
        self, x: torch.Tensor, optimizer: torch.optim.Optimizer, generator: torch.Generator
    ) -> dict[str, float]:
        """One update of D on the multi-hot batch ``x`` [B, N] (real r_u = c_u = x); returns its figures."""
        pm, _ = self.negative_masks(x, generator)
        with torch.no_grad():
            fake = generated_input(self.module.generate(x), x, pm)
        real_logit, fake_logit = self.module.discriminate(x, x), self.module.discriminate(x, fake)  # [B], [B]
        real_loss = F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
        fake_loss = F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))
        loss = real_loss + fake_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {
            "discriminator_loss": loss.item(),
            "D_real": torch.sigmoid(real_logit).mean().item(),
            "D_fake": torch.sigmoid(fake_logit).mean().item(),
        }

    def generator_step(
        self, x: torch.Tensor, optimizer: torch.optim.Optimizer, generator: torch.Generator
    ) -> dict[str, float]:
        """One update of G on the multi-hot batch ``x`` [B, N] with D fixed; returns its figures."""
        pm, zr = self.negative_masks(x, generator)
        self.module.discriminator.requires_grad_(False)
        r_hat = self.module.generate(x)  # [B, N]
        fake_logit = self.module.discriminate(x, generated_input(r_hat, x, pm))
        adversarial = F.binary_cross_entropy_with_logits(fake_logit, torch.ones_like(fake_logit))
        zr_loss = zero_reconstruction(r_hat, zr) if zr is not None else torch.zeros(())
        loss = adversarial + self.config.alpha * zr_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        self.module.discriminator.requires_grad_(True)
        return {"loss": loss.item(), "generator_loss": adversarial.item(), "zr_loss": zr_loss.item()}

    def fit(self, split: Split, progress: bool = True) -> FitReport:
        self.check_item_features(split.n_items)
        c = self.config
        generator = seed_everything(c.seed)  # dropout draws from the global RNG
        self.build(split.n_items)
        self.n_items = split.n_items
        g_optimizer = torch.optim.Adam(self.module.generator.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        d_optimizer = torch.optim.Adam(
            self.module.discriminator.parameters(), lr=c.discriminator_lr, weight_decay=c.discriminator_weight_decay
        )
        probe = split.train.rows(np.flatnonzero(split.train.lengths > 0)[: c.probe_users])

        def passes(steps: int, batch_size: int, step: Step, optimizer: torch.optim.Optimizer) -> dict[str, float]:
            sums: dict[str, float] = {}
            users = 0
            for _ in range(steps):
                for batch in user_batches(split.train, batch_size, generator):
                    figures = step(batch.multi_hot(split.n_items).to(self.device), optimizer, generator)  # [B, N]
                    sums = {name: sums.get(name, 0.0) + value * len(batch) for name, value in figures.items()}
                    users += len(batch)
            return {name: value / max(users, 1) for name, value in sums.items()}

        collapsed_epochs = 0

        def run_epoch(epoch: int) -> dict[str, float]:
            nonlocal collapsed_epochs
            figures = passes(c.discriminator_steps, c.discriminator_batch_size, self.discriminator_step, d_optimizer)
            figures |= passes(c.generator_steps, c.batch_size, self.generator_step, g_optimizer)
            self.module.eval()
            with torch.inference_mode():
                variance, share = user_spread(self.predict(probe.multi_hot(split.n_items).to(self.device)))
            collapsed_epochs = collapsed_epochs + 1 if share < c.collapse_threshold else 0
            return {
                **figures,
                "generator_user_variance": variance,
                "generator_user_share": share,
                "collapsed_epochs": float(collapsed_epochs),
            }

        def stop_when(row: dict[str, float]) -> str | None:
            if row["collapsed_epochs"] < c.collapse_patience:
                return None
            return (
                f"generator collapsed: the share of its output's variance across users stayed below "
                f"{c.collapse_threshold} for {row['collapsed_epochs']:.0f} epochs "
                f"(last {row['generator_user_share']:.2e})"
            )

        self.fit_report = fit_with_early_stopping(self, self.module, split, run_epoch, c, progress, stop_when)
        return self.fit_report
