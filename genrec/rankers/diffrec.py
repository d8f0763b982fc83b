"""DiffRec: a denoising diffusion model over the user's interaction vector.

Wang, Xu, Feng, Lin, He, Chua. "Diffusion Recommender Model". SIGIR 2023.
https://arxiv.org/abs/2304.04971

Set-based: the history is a multi-hot vector x_0, its order is ignored.

Forward process (paper Sec. 3, "forward process"): q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)
with the paper's noise schedule

    1 - abar_t = s * [a_min + (t - 1) / (T - 1) * (a_max - a_min)],   t = 1..T

kept small (``noise_scale`` s) so that personalisation survives the corruption.
Reverse process: an MLP conditioned on a step embedding predicts x_0; each reverse step's mean
is the posterior mean of q(x_{t-1} | x_t, x_0) with x_0 replaced by the prediction.
Training (paper Sec. 3, "DiffRec training", Algorithm 1): ||x_0_hat - x_0||^2 weighted by
SNR(t-1) - SNR(t) ("reweight"), t drawn by importance sampling with p_t ~ sqrt(E[L_t^2]).
Inference (Algorithm 2): start from the observed x_0, noised for T' steps (T' = 0: not at all;
here the noise-free mean, so rankings are reproducible), then apply the T posterior-mean steps
without sampling noise; the result scores the items.

Not implemented: the paper's latent (L-DiffRec) and temporal (T-DiffRec) variants; the
x_0-prediction ("mean_type=x0") is the only parameterisation, as in the paper's best runs.
Deviation from the authors' code: it overrides beta_1 with 1e-5 and recomputes abar as the
cumulative product; here abar follows the paper's schedule exactly.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import torch
from pydantic import Field, model_validator

from genrec.rankers.set_based import SetRanker, SetRankerConfig, tanh_mlp

LOSS_HISTORY = 10  # losses kept per step for importance sampling (the reference code's value)
UNIFORM_SHARE = 0.001  # probability mass spread uniformly so every step keeps being sampled


class DiffRecConfig(SetRankerConfig):
    """Hyper-parameters. Defaults: the diffusion settings of the authors' released Amazon-Book (clean)
    checkpoint (one hidden layer of 1000, step embedding 10, T = 5, s = 1e-4, a_min = 5e-4,
    a_max = 5e-3, T' = 0, batch 400, input dropout 0.5) with reweighting and importance sampling on
    and lr 1e-3 (theirs: 5e-5, far more epochs). Their ML-1M run is the named config
    ``diffrec-paper-ml1m`` (T = 40 makes inference 5x costlier)."""

    hidden_dims: list[int] = Field([1000], description="widths of the denoiser's hidden layers")
    step_embedding_dim: int = Field(10, ge=2, description="size of the sinusoidal diffusion-step embedding")
    steps: int = Field(5, ge=1, description="T, number of diffusion steps")
    noise_scale: float = Field(1e-4, gt=0.0, description="s, scales the whole noise schedule")
    noise_min: float = Field(5e-4, gt=0.0, description="a_min, noise level at t = 1 (before scaling)")
    noise_max: float = Field(5e-3, gt=0.0, description="a_max, noise level at t = T (before scaling)")
    inference_noise_steps: int = Field(0, ge=0, description="T', forward-noising steps applied to x_0 at inference")
    reweight: bool = Field(True, description="weight the x_0 loss by SNR(t-1) - SNR(t)")
    importance_sampling: bool = Field(True, description="draw steps with p_t ~ sqrt(E[L_t^2]) instead of uniformly")
    batch_size: int = Field(400, ge=1, description="users per update")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate (authors' runs: 1e-3 on ML-1M, 5e-5 on Amazon-Book)")

    @model_validator(mode="after")
    def _check_schedule(self) -> DiffRecConfig:
        if self.noise_min >= self.noise_max:
            raise ValueError(f"noise_min ({self.noise_min}) must be below noise_max ({self.noise_max})")
        if self.noise_scale * self.noise_max >= 1.0:
            raise ValueError(
                f"noise_scale * noise_max must be < 1 (it is 1 - abar_T), got {self.noise_scale * self.noise_max}"
            )
        if self.inference_noise_steps > self.steps:
            raise ValueError(f"inference_noise_steps ({self.inference_noise_steps}) must be <= steps ({self.steps})")
        return self


class GaussianDiffusion:
    """The fixed forward/reverse schedules (stateless). Index t = 0..T-1 is the paper's step t + 1."""

    def __init__(self, steps: int, noise_scale: float, noise_min: float, noise_max: float):
        one_minus_abar = noise_scale * np.linspace(noise_min, noise_max, steps, dtype=np.float64)  # noise schedule
        abar = 1.0 - one_minus_abar  # [T]
        abar_prev = np.concatenate([[1.0], abar[:-1]])  # [T], abar_0 = 1
        betas = np.minimum(1.0 - abar / abar_prev, 0.999)  # [T]
        self.steps = steps
        self.abar = abar
        self.betas = betas
        # Posterior q(x_{t-1} | x_t, x_0) mean = coef_x0 * x_0 + coef_xt * x_t .
        self.coef_x0 = betas * np.sqrt(abar_prev) / (1.0 - abar)
        self.coef_xt = (1.0 - abar_prev) * np.sqrt(1.0 - betas) / (1.0 - abar)

    @staticmethod
    def _at(values: np.ndarray, t: torch.Tensor) -> torch.Tensor:
        """values[t] as a column [B, 1] on t's device."""
        return torch.as_tensor(values, dtype=torch.float32, device=t.device)[t].unsqueeze(1)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps: x0, noise [B, N], t [B]."""
        return self._at(np.sqrt(self.abar), t) * x0 + self._at(np.sqrt(1.0 - self.abar), t) * noise

    def posterior_mean(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Mean of q(x_{t-1} | x_t, x_0): [B, N]."""
        return self._at(self.coef_x0, t) * x0 + self._at(self.coef_xt, t) * xt

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """SNR(t-1) - SNR(t) with SNR = abar / (1 - abar); 1 at the first step: [B]."""
        snr = self.abar / (1.0 - self.abar)
        weight = np.concatenate([[1.0], snr[:-1] - snr[1:]])
        return torch.as_tensor(weight, dtype=torch.float32, device=t.device)[t]


def step_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer steps t [B] -> [B, dim] (cos half, then sin half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)  # [dim/2]
    args = t.float().unsqueeze(1) * freqs  # [B, dim/2]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return torch.nn.functional.pad(embedding, (0, dim % 2))  # [B, dim]


class Denoiser(torch.nn.Module):
    """x_theta(x_t, t): predicts x_0 from the noised vector and the step embedding."""

    def __init__(self, n_items: int, hidden_dims: list[int], step_embedding_dim: int, dropout: float):
        super().__init__()
        self.step_embedding_dim = step_embedding_dim
        self.step_proj = torch.nn.Linear(step_embedding_dim, step_embedding_dim)
        self.mlp = tanh_mlp([n_items + step_embedding_dim, *hidden_dims, n_items])
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.step_proj(step_embedding(t, self.step_embedding_dim))  # [B, E]
        return self.mlp(torch.cat([self.dropout(xt), emb], dim=1))  # [B, N]


class DiffRecRanker(SetRanker):
    """DiffRec (Wang et al., SIGIR 2023), a set-based ranker: the order of the history is ignored."""

    name = "diffrec"
    config_class = DiffRecConfig
    config: DiffRecConfig

    def make_module(self, n_items: int) -> Denoiser:
        c = self.config
        self.diffusion = GaussianDiffusion(c.steps, c.noise_scale, c.noise_min, c.noise_max)
        self.step_losses = [deque(maxlen=LOSS_HISTORY) for _ in range(c.steps)]
        return Denoiser(n_items, c.hidden_dims, c.step_embedding_dim, c.dropout)

    def sample_steps(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps t [B] and their probability times T [B] (1 when uniform), for importance-weighting the loss.

        Uniform until every step has ``LOSS_HISTORY`` recorded losses, as the reference code does.
        """
        steps = self.config.steps
        if not self.config.importance_sampling or min(len(losses) for losses in self.step_losses) < LOSS_HISTORY:
            return torch.randint(steps, (batch,), generator=generator), torch.ones(batch)
        rms = torch.tensor([math.sqrt(np.mean(np.square(losses))) for losses in self.step_losses])  # [T]
        p = rms / rms.sum() * (1.0 - UNIFORM_SHARE) + UNIFORM_SHARE / steps  # [T]
        t = torch.multinomial(p, batch, replacement=True, generator=generator)  # [B]
        return t, p[t] * steps

    def training_loss(self, x: torch.Tensor, step: int, generator: torch.Generator) -> torch.Tensor:
        t_cpu, pt = self.sample_steps(len(x), generator)
        t = t_cpu.to(x.device)
        noise = torch.randn(x.shape, generator=generator).to(x.device)  # [B, N]
        x0_hat = self.module(self.diffusion.q_sample(x, t, noise), t)  # [B, N]
        loss = (x0_hat - x).pow(2).mean(dim=1)  # [B]
        if self.config.reweight:
            loss = self.diffusion.loss_weight(t) * loss
        for index, value in zip(t_cpu.tolist(), loss.detach().cpu().tolist(), strict=True):
            self.step_losses[index].append(value)
        return (loss / pt.to(x.device)).mean()

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Algorithm 2: noise x_0 for T' steps (deterministically: the mean), then T denoising steps."""
        c = self.config
        if c.inference_noise_steps > 0:
            t = torch.full((len(x),), c.inference_noise_steps - 1, device=x.device)
            x = self.diffusion.q_sample(x, t, torch.zeros_like(x))
        for index in reversed(range(c.steps)):
            t = torch.full((len(x),), index, device=x.device)
            x = self.diffusion.posterior_mean(self.module(x, t), x, t)  # [B, N]
        return x
