"""Semantic ids: item content embeddings quantised into short code tuples (TIGER, Rajput et al. 2023).

An item's semantic id is ``(c_1, ..., c_L, c_dedup)``: ``L`` residual-quantisation codes of its
content embedding, coarse to fine, plus a final code that tells apart items whose ``L`` codes
collide (TIGER §3.1). Two quantisers:

- :class:`RQVAE`: an MLP auto-encoder whose latent is residually quantised with ``L``
  codebooks (Zeghidour et al. 2021; TIGER eq. 1), trained with reconstruction + commitment loss.
- :func:`residual_kmeans`: k-means on the embeddings, then on the residuals, ``L`` times; no
  training, a cheaper option with the same coarse-to-fine structure.

:class:`PrefixTrie` holds every valid id so that decoding can only emit real catalogue items.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def kmeans(x: torch.Tensor, k: int, iters: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on ``x`` [N, D]: returns centroids [k, D] and assignments [N].

    Centroids start at ``k`` distinct random points; a cluster that empties is re-seeded
    with the point farthest from its centroid, so all ``k`` codes stay in use when N >= k.
    """
    n = x.shape[0]
    centroids = x[torch.randperm(n, generator=generator)[: min(k, n)]].clone()  # [k, D]
    if n < k:  # fewer points than codes: the spare codes copy random points
        centroids = torch.cat([centroids, x[torch.randint(n, (k - n,), generator=generator)]])
    for _ in range(iters):
        distance = torch.cdist(x, centroids)  # [N, k]
        assign = distance.argmin(dim=1)  # [N]
        counts = torch.bincount(assign, minlength=k)  # [k]
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        empty = counts == 0
        centroids = torch.where(empty[:, None], centroids, sums / counts.clamp(min=1)[:, None])
        if empty.any() and n >= k:
            farthest = distance.gather(1, assign[:, None]).squeeze(1).topk(int(empty.sum())).indices
            centroids[empty] = x[farthest]
    return centroids, torch.cdist(x, centroids).argmin(dim=1)


def residual_kmeans(
    x: torch.Tensor, levels: int, codebook_size: int, iters: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual k-means: level ``l`` clusters what levels ``< l`` left unexplained.

    Returns codes [N, levels] int64 and codebooks [levels, codebook_size, D].
    """
    residual, codes, codebooks = x.clone(), [], []
    for _ in range(levels):
        centroids, assign = kmeans(residual, codebook_size, iters, generator)
        residual = residual - centroids[assign]
        codes.append(assign)
        codebooks.append(centroids)
    return torch.stack(codes, dim=1), torch.stack(codebooks)


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class RQVAE(nn.Module):
    """Residual-quantised VAE over item content embeddings (TIGER §3.1, Fig. 3).

    ``z = E(x)``; at level ``d`` the residual ``r_d`` (``r_0 = z``) picks its nearest code
    ``e_{c_d}`` and ``r_{d+1} = r_d - e_{c_d}``; the decoder reconstructs ``x`` from
    ``z_hat = sum_d e_{c_d}`` with a straight-through gradient. Loss (TIGER eq. 1):
    ``||x - D(z_hat)||^2 + sum_d ||sg[r_d] - e_{c_d}||^2 + beta ||r_d - sg[e_{c_d}]||^2``.
    """

    def __init__(self, in_dim: int, hidden: list[int], latent: int, levels: int, codebook_size: int, beta: float):
        super().__init__()
        self.beta = beta
        self.encoder = mlp([in_dim, *hidden, latent])
        self.decoder = mlp([latent, *reversed(hidden), in_dim])
        self.codebooks = nn.Parameter(torch.zeros(levels, codebook_size, latent))  # [L, K, d]

    def quantise(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z [N, d] -> codes [N, L], z_hat [N, d], summed codebook + commitment loss (scalar)."""
        residual, z_hat, codes, loss = z, torch.zeros_like(z), [], z.new_zeros(())
        for codebook in self.codebooks:  # [K, d]
            code = torch.cdist(residual.detach(), codebook.detach()).argmin(dim=1)  # [N]
            e = codebook[code]  # [N, d]
            loss = loss + F.mse_loss(e, residual.detach()) + self.beta * F.mse_loss(residual, e.detach())
            z_hat = z_hat + e
            residual = residual - e
            codes.append(code)
        return torch.stack(codes, dim=1), z_hat, loss

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [N, in_dim] -> codes [N, L], reconstruction loss, quantisation loss."""
        z = self.encoder(x)  # [N, d]
        codes, z_hat, quantisation_loss = self.quantise(z)
        z_hat = z + (z_hat - z).detach()  # straight-through estimator
        return codes, F.mse_loss(self.decoder(z_hat), x), quantisation_loss


def train_rqvae(
    x: torch.Tensor,
    model: RQVAE,
    steps: int,
    batch_size: int,
    lr: float,
    kmeans_iters: int,
    generator: torch.Generator,
) -> dict[str, float]:
    """Train ``model`` on embeddings ``x`` [N, D]; returns final losses and code usage per level.

    Codebooks start from residual k-means of the initial latents (as in TIGER's RQ-VAE), and
    codes left unused by a whole pass over the data are re-seeded with random residuals of
    that level: the guard against codebook collapse, monitored as the share of codes in use.
    """
    levels, codebook_size, _ = model.codebooks.shape
    with torch.no_grad():
        _, codebooks = residual_kmeans(model.encoder(x), levels, codebook_size, kmeans_iters, generator)
        model.codebooks.copy_(codebooks)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    used = torch.zeros(levels, codebook_size, dtype=torch.bool)
    seen = 0
    for _ in range(steps):
        batch = x[torch.randint(x.shape[0], (min(batch_size, x.shape[0]),), generator=generator)]
        codes, reconstruction, quantisation = model(batch)
        optimiser.zero_grad(set_to_none=True)
        (reconstruction + quantisation).backward()
        optimiser.step()
        used.scatter_(1, codes.T, True)
        seen += batch.shape[0]
        if seen >= x.shape[0]:
            reseed_dead_codes(model, batch, used, generator)
            used.zero_()
            seen = 0
    with torch.no_grad():
        codes, reconstruction, quantisation = model(x)
    return {
        "rqvae_reconstruction_loss": float(reconstruction),
        "rqvae_quantisation_loss": float(quantisation),
        **code_usage(codes, codebook_size),
    }


@torch.no_grad()
def reseed_dead_codes(model: RQVAE, x: torch.Tensor, used: torch.Tensor, generator: torch.Generator) -> None:
    """Move every unused code ``used[l] == False`` onto a random level-``l`` residual of ``x``."""
    residual = model.encoder(x)  # [N, d]
    for level, codebook in enumerate(model.codebooks):
        dead = (~used[level]).nonzero().squeeze(1)
        if len(dead):
            codebook[dead] = residual[torch.randint(x.shape[0], (len(dead),), generator=generator)]
        residual = residual - codebook[torch.cdist(residual, codebook).argmin(dim=1)]


def code_usage(codes: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Share of each level's codebook that some item uses (1.0 = no collapse)."""
    return {
        f"code_usage_level{level}": torch.unique(codes[:, level]).numel() / codebook_size
        for level in range(codes.shape[1])
    }


def append_dedup_code(codes: torch.Tensor) -> torch.Tensor:
    """codes [N, L] -> [N, L + 1]: the last code numbers the items sharing the same ``L`` codes
    (0, 1, 2, ... in item order), so every semantic id is unique (TIGER §3.1)."""
    _, group, counts = torch.unique(codes, dim=0, return_inverse=True, return_counts=True)
    order = torch.sort(group, stable=True).indices  # items grouped, item order kept within a group
    starts = torch.cumsum(counts, 0) - counts  # [G] first slot of each group in ``order``
    rank = torch.empty_like(group)
    rank[order] = torch.arange(len(group)) - starts[group[order]]
    return torch.cat([codes, rank[:, None]], dim=1)


@dataclass(frozen=True)
class PrefixTrie:
    """Every valid semantic id as a trie, stored as dense tables for batched decoding.

    Nodes are numbered by depth (root 0); ``children[node, code]`` is the child node or -1
    for the ``n_internal`` nodes above the leaves; leaf ``n_internal + j`` is item ``items[j]``.
    """

    children: torch.Tensor  # [n_internal, vocab] int64
    items: torch.Tensor  # [n_leaves] int64
    depth: int

    @classmethod
    def build(cls, codes: torch.Tensor, vocab: int) -> PrefixTrie:
        """codes [N, depth] (unique rows, values < vocab) -> the trie of those ids."""
        codes_np = codes.numpy()
        node = np.zeros(len(codes_np), dtype=np.int64)  # current node of every item's path
        parents, tokens, child_ids, next_id = [], [], [], 1
        for level in range(codes_np.shape[1]):
            key = node * vocab + codes_np[:, level]
            unique, inverse = np.unique(key, return_inverse=True)
            ids = next_id + np.arange(len(unique))
            parents.append(unique // vocab)
            tokens.append(unique % vocab)
            child_ids.append(ids)
            node, next_id = ids[inverse], next_id + len(unique)
        n_internal = next_id - len(child_ids[-1])
        children = np.full((n_internal, vocab), -1, dtype=np.int64)
        children[np.concatenate(parents), np.concatenate(tokens)] = np.concatenate(child_ids)
        items = np.empty(len(codes_np), dtype=np.int64)
        items[node - n_internal] = np.arange(len(codes_np))
        return cls(torch.from_numpy(children), torch.from_numpy(items), codes_np.shape[1])

    @property
    def n_internal(self) -> int:
        return self.children.shape[0]

    def step(self, node: torch.Tensor) -> torch.Tensor:
        """Children of ``node`` [...] (-1 = an invalid path): [..., vocab], -1 where no child."""
        children = self.children[node.clamp(min=0)]
        return children.masked_fill((node < 0)[..., None], -1)

    def prefix_nodes(self, codes: torch.Tensor, length: int) -> torch.Tensor:
        """Node of each id's first ``length`` codes: codes [N, depth] of catalogue ids -> [N]."""
        node = torch.zeros(len(codes), dtype=torch.int64)
        for level in range(length):
            node = self.children[node, codes[:, level]]
        return node

    def item(self, leaf: torch.Tensor) -> torch.Tensor:
        """Item index of leaf nodes [...] (-1 stays -1)."""
        return torch.where(leaf >= 0, self.items[(leaf - self.n_internal).clamp(min=0)], -1)
