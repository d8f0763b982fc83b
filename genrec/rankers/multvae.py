"""Mult-VAE: variational autoencoder with a multinomial likelihood over the user's item set.

Liang, Krishnan, Hoffman, Jebara. "Variational Autoencoders for Collaborative Filtering".
WWW 2018. https://arxiv.org/abs/1802.05814

Set-based: the history is a multi-hot vector, its order is ignored. The user vector x_u is
L2-normalised and dropped out, encoded to q(z_u | x_u) = N(mu, diag(sigma^2)), and decoded to
pi(z_u) = softmax(f(z_u)) over the catalogue. Training maximises the beta-weighted ELBO

    L_beta = E_q[log p(x_u | z_u)] - beta * KL(q(z_u | x_u) || N(0, I)),
    log p(x_u | z_u) = sum_i x_ui log pi_i(z_u)                         (multinomial likelihood)

with beta annealed linearly from 0 to ``anneal_cap`` over ``total_anneal_steps`` updates
(the paper's "partial regularisation"). Ranking uses the decoder logits f(mu(x_u)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from genrec.rankers.set_based import SetRanker, SetRankerConfig, tanh_mlp


class MultVAEConfig(SetRankerConfig):
    """Hyper-parameters; defaults are the paper's (ML-20M): [I -> 600 -> 200 -> 600 -> I], dropout 0.5,
    Adam lr 1e-3, batch 500, beta capped at 0.2 and annealed over 200k updates."""

    hidden_dims: list[int] = Field([600], description="encoder hidden widths; the decoder mirrors them")
    latent_dim: int = Field(200, ge=1, description="dimension of z")
    anneal_cap: float = Field(0.2, ge=0.0, le=1.0, description="largest KL weight beta")
    total_anneal_steps: int = Field(
        200_000, ge=0, description="updates over which beta grows linearly from 0 to 1 (then capped); 0 = cap at once"
    )
    batch_size: int = Field(500, ge=1, description="users per update")


def kl_beta(step: int, anneal_cap: float, total_anneal_steps: int) -> float:
    """KL weight at optimizer update ``step``: min(cap, step / total_anneal_steps)."""
    if total_anneal_steps == 0:
        return anneal_cap
    return min(anneal_cap, step / total_anneal_steps)


class MultVAE(torch.nn.Module):
    def __init__(self, n_items: int, hidden_dims: list[int], latent_dim: int, dropout: float):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = tanh_mlp([n_items, *hidden_dims, 2 * latent_dim])  # -> (mu, log sigma^2)
        self.decoder = tanh_mlp([latent_dim, *hidden_dims[::-1], n_items])
        self.dropout = torch.nn.Dropout(dropout)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(self.dropout(F.normalize(x, dim=1)))  # [B, 2 * D]
        return h[:, : self.latent_dim], h[:, self.latent_dim :]  # mu, logvar: [B, D] each

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None):
        """Decoder logits [B, N], mu and logvar; ``noise`` [B, D] reparameterises z (None: z = mu)."""
        mu, logvar = self.encode(x)
        z = mu if noise is None else mu + noise * torch.exp(0.5 * logvar)  # [B, D]
        return self.decoder(z), mu, logvar


class MultVAERanker(SetRanker):
    """Mult-VAE (Liang et al., WWW 2018), a set-based ranker: the order of the history is ignored."""

    name = "multvae"
    config_class = MultVAEConfig
    config: MultVAEConfig

    def make_module(self, n_items: int) -> MultVAE:
        return MultVAE(n_items, self.config.hidden_dims, self.config.latent_dim, self.config.dropout)

    def training_loss(self, x: torch.Tensor, step: int, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn((len(x), self.config.latent_dim), generator=generator).to(x.device)  # [B, D]
        logits, mu, logvar = self.module(x, noise)
        nll = -(F.log_softmax(logits, dim=1) * x).sum(dim=1).mean()
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()
        return nll + kl_beta(step, self.config.anneal_cap, self.config.total_anneal_steps) * kl

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)[0]
