"""SASRec and HSTU: causal transformers that generate the next item id.

SASRec (Kang & McAuley, 2018, "Self-Attentive Sequential Recommendation"): item + position
embeddings, pre-LN blocks of causal multi-head self-attention and a point-wise feed-forward
network; the hidden state at position t scores every item as the item at t + 1 by a dot
product with the (shared) item embedding table (eq. 6). As in the official code (and the PyTorch
port pmixer/SASRec.pytorch), the item embedding enters the first block multiplied by sqrt(d)
(``scale_embeddings``): with genrec's N(0, 0.02) initialisation the unscaled ids are ~8x smaller
than the blocks' first outputs, the pre-LN residual stream loses them, and sasrec blocks fitted
about half as well as hstu blocks under the same short sampled-softmax recipe (benchmarks/RESULTS.md,
"Time to quality": seed-0 validation NDCG@10 0.0354 unscaled, 0.0664 scaled).

HSTU (Zhai et al., 2024, "Actions Speak Louder than Words", eq. 1-3): each block computes
U, V, Q, K = Split(SiLU(f1(X))), A = SiLU(QK^T + rab^{p,t}) / n (pointwise, not softmax,
attention with a relative position and time bias), Y = f2(Norm(A V) * U), with a residual.

HSTU time bias: rab^t[i, j] is a learned scalar per bucket floor(log(max(|dt|, 1)) / 0.301) of a
time gap dt, as in the reference (Meta generative-recommenders, research/modeling/sequential/hstu.py,
RelativeBucketedTimeAndPositionBasedBias). ``time_bias`` chooses the gap:

- ``"query"`` (the default, genrec's original choice): dt = t_i - t_j, the query's own timestamp
  minus the key's, in training and scoring alike.
- ``"next"`` (the reference): dt = t_{i+1} - t_j, the timestamp of the item position i predicts
  minus the key's. In training t_{i+1} is the target's timestamp. At scoring genrec knows no request
  time (``Ranker.score`` takes the history only), so the last position uses its own timestamp, which
  is what the reference's bias module does when no next timestamp is appended; the reference's
  MovieLens evaluation instead appends the test target's timestamp, which genrec does not.

Two smaller differences from the reference, in both modes: gaps above the last bucket share it
(the reference has ``num_buckets + 1`` weights with the top one for the overflow), and the
relative position bias is learned for the causal offsets 0..max_len-1 only (the reference also
allocates the never-used future offsets).

Training (both): the loss at every position of a sequence in one pass, full-softmax
cross-entropy over the catalogue by default (Klenitskiy & Vasilev, 2023; Petrov & Macdonald,
2023, gSASRec), or a sampled softmax over K negatives shared by a batch, drawn uniformly or by
training popularity, with the logQ correction s_j - log q_j on the target and every negative
(Bengio & Senecal, 2008; Yi et al., 2019, eq. 3) and accidental hits (a negative equal to the
target) removed. Uniform draws make the correction a constant, so it changes nothing there; with
popularity draws it keeps the sampled softmax an estimate of the full one while the negatives are
the popular items the top of a ranking competes with.

Content-aware items (item features [n_items, D_f], e.g. MiniLM text of title, year, genres and
tags): each item's representation is its id embedding plus a learned linear projection of its
centred content vector, in the input and in the output table (the "ID + modality" fusion of Yuan
et al., 2023, "Where to Go Next for Recommender Systems? ID- vs. Modality-based Recommender
Models"; UniSRec, Hou et al., 2022, also centres/whitens the text vectors before its adaptor). Two
choices make content carry an item that was never trained (a cold-start item):

- an item with no training interaction has no id part at all (its row is zero): otherwise its
  id embedding, only ever a negative in the softmax, is pushed down and buries the item;
- ``id_dropout``: at each training step a random share of the items lose their id part (the
  "modality dropout" of multimodal models), so the content projection learns to score an item on
  its own instead of leaving the work to the ids.

Content alone still scores an untrained item far below the trained ones (it lacks the id part that
carries popularity), so ``cold_start_every`` reserves places of each list for them, as TIGER's
cold-start share does (ranked among themselves by their content scores).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from genrec.data.sequences import Sequences
from genrec.evaluation.splits import Split
from genrec.persistence import Manifest
from genrec.rankers.base import FitReport, Ranker
from genrec.rankers.distributed import average_gradients, equal_shares, local_batch_size, shard_users
from genrec.rankers.training import TrainedRankerConfig, fit_with_early_stopping, training_windows
from genrec.rankers.weight_init import normal_init


class SASRecConfig(TrainedRankerConfig):
    """Architecture and training of the causal item-id transformer (benchmarks/RESULTS.md, "Time to quality").

    Windows of 50 over the whole history, a sampled softmax over 1,024 popularity-drawn negatives,
    batch 32, lr 2e-3 on a 15-epoch cosine schedule after 20 warm-up steps, dropout 0.1, item
    embeddings scaled by sqrt(hidden) (Kang & McAuley 2018, with the scaling of Vaswani et al. 2017);
    chosen on mean validation NDCG@10 over seeds (the figures are in RESULTS.md). The full-history
    recipe (max_len 200, full softmax) is the named config ``sasrec-full-history``.
    """

    block: Literal["sasrec", "hstu"] = Field("sasrec", description="transformer block type")
    max_len: int = Field(50, ge=2, description="most recent items fed to the model")
    hidden: int = Field(64, ge=1, description="embedding and hidden size")
    inner: int = Field(256, ge=1, description="feed-forward width of sasrec blocks")
    layers: int = Field(2, ge=1, description="number of blocks")
    heads: int = Field(2, ge=1, description="attention heads; must divide hidden")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout on embeddings, attention and block outputs")
    train_windows: Literal["last", "all"] = Field(
        "all",
        description="'last': train on each user's last max_len+1 items; 'all': cut the whole training "
        "history into windows of max_len+1 so every interaction is a target once per epoch",
    )
    loss: Literal["full", "sampled"] = Field("sampled", description="full-softmax CE or sampled-softmax CE")
    negatives: int = Field(1024, ge=1, description="negatives shared by a batch (loss='sampled')")
    sampler: Literal["uniform", "popularity"] = Field(
        "popularity",
        description="loss='sampled': negatives drawn uniformly from the catalogue, or in proportion to each item's "
        "training frequency (+1); logits are corrected by -log q either way (logQ, Yi et al. 2019)",
    )
    warmup_steps: int = Field(20, ge=0, description="linear learning-rate warm-up steps")
    schedule: Literal["constant", "cosine"] = Field(
        "cosine",
        description="learning rate after the warm-up: constant, or cosine decay to 0 at the last step of `epochs`",
    )
    time_buckets: int = Field(64, ge=1, description="log-spaced time-difference buckets of the HSTU bias")
    time_bias: Literal["query", "next"] = Field(
        "query",
        description="HSTU time-bias gap: 'query' = query's own time minus the key's; 'next' = the next item's "
        "time minus the key's (Meta's reference; the last scored position falls back to its own time)",
    )
    scale_embeddings: bool = Field(
        True,
        description="multiply item embeddings by sqrt(hidden) before adding positions (SASRec's official code, "
        "its PyTorch port, Meta's HSTU input preprocessor); False: unscaled N(0, 0.02) ids (*-full-history)",
    )
    id_dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="with item features (else no effect): share of items whose id embedding is dropped at each "
        "training step, so the content path learns to rank alone (cold-start items have content only)",
    )
    cold_start_every: int | None = Field(
        None,
        ge=1,
        description="with item features (else no effect): places every, 2 x every, ... of a ranked list go to the "
        "best items never seen in training (ranked by their content); None: no places reserved",
    )
    amp: bool = Field(True, description="bf16 autocast on CUDA (CPU always runs fp32)")
    compile: bool = Field(False, description="torch.compile the model for training")
    epochs: int = Field(15, ge=1, description="maximum number of epochs")
    patience: int = Field(15, ge=1, description="epochs without validation NDCG@10 improvement before stopping")
    batch_size: int = Field(32, ge=1, description="training examples per step")
    lr: float = Field(2e-3, gt=0)

    @model_validator(mode="after")
    def _check(self) -> SASRecConfig:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        return self


class HSTUConfig(SASRecConfig):
    """SASRecConfig with HSTU blocks: hstu's defaults (benchmarks/RESULTS.md, "Time to quality").

    sasrec's training recipe (windows of 50, 1,024 popularity-drawn logQ-corrected negatives, batch
    32, lr 2e-3, 15-epoch cosine, dropout 0.1, item embeddings scaled by sqrt(hidden)) with the
    blocks of Zhai et al. 2024; chosen on mean validation NDCG@10 over seeds (the figures, the
    scaled-id and time-bias comparisons are in RESULTS.md). The full-history recipe (max_len 200,
    full softmax, unscaled ids) is the named config ``hstu-full-history``.
    """

    block: Literal["sasrec", "hstu"] = Field("hstu", description="transformer block type")


class SASRecBlock(nn.Module):
    """Pre-LN transformer block: causal multi-head self-attention, then a point-wise FFN."""

    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.heads, self.dropout = config.heads, config.dropout
        self.ln1 = nn.LayerNorm(config.hidden)
        self.qkv = nn.Linear(config.hidden, 3 * config.hidden)
        self.proj = nn.Linear(config.hidden, config.hidden)
        self.ln2 = nn.LayerNorm(config.hidden)
        self.ffn = nn.Sequential(
            nn.Linear(config.hidden, config.inner),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.inner, config.hidden),
        )
        self.drop = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, allowed: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor
    ) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, L, 3, self.heads, D // self.heads).unbind(2)  # [B, L, H, Dh] each
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=allowed[:, None],  # [B, 1, L, L]
            dropout_p=self.dropout if self.training else 0.0,
        )  # [B, H, L, Dh]
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(B, L, D)))
        return x + self.drop(self.ffn(self.ln2(x)))


class HSTUBlock(nn.Module):
    """Hierarchical Sequential Transduction Unit (Zhai et al., 2024, eq. 1-3)."""

    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.heads, self.max_len = config.heads, config.max_len
        self.ln_in = nn.LayerNorm(config.hidden)
        self.f1 = nn.Linear(config.hidden, 4 * config.hidden)  # eq. 1: U, V, Q, K
        self.ln_attn = nn.LayerNorm(config.hidden)
        self.f2 = nn.Linear(config.hidden, config.hidden)  # eq. 3
        # rab^{p,t}: one learned scalar per relative position and per log-time bucket, shared by heads.
        self.position_bias = nn.Embedding(config.max_len, 1)
        self.time_bias = nn.Embedding(config.time_buckets, 1)
        self.time_buckets = config.time_buckets
        self.drop = nn.Dropout(config.dropout)

    def relative_bias(self, times: torch.Tensor, query_times: torch.Tensor) -> torch.Tensor:
        """rab^{p,t} [B, L, L] for key timestamps [B, L] and the query timestamps [B, L] they are measured from."""
        L = times.shape[1]
        index = torch.arange(L, device=times.device)
        distance = (index[:, None] - index[None, :]).clamp(0, self.max_len - 1)  # [L, L], 0 on and above the diagonal
        elapsed = (query_times[:, :, None] - times[:, None, :]).abs().clamp(min=1).float()  # [B, L, L] seconds
        # Buckets log(dt) / 0.301 as in the reference implementation (roughly log2 spacing of dt).
        bucket = (elapsed.log() / 0.301).long().clamp(0, self.time_buckets - 1)
        return self.position_bias(distance)[..., 0] + self.time_bias(bucket)[..., 0]  # [B, L, L]

    def forward(
        self, x: torch.Tensor, allowed: torch.Tensor, times: torch.Tensor, query_times: torch.Tensor
    ) -> torch.Tensor:
        B, L, D = x.shape
        u, v, q, k = F.silu(self.f1(self.ln_in(x))).chunk(4, dim=-1)  # [B, L, D] each
        q, k, v = (t.view(B, L, self.heads, D // self.heads).transpose(1, 2) for t in (q, k, v))  # [B, H, L, Dh]
        scores = q @ k.transpose(-1, -2) + self.relative_bias(times, query_times)[:, None]  # [B, H, L, L]
        # Pointwise SiLU attention normalised by the sequence length n (eq. 2), masked to the causal past.
        weights = F.silu(scores) * allowed[:, None] / self.max_len
        y = (self.drop(weights) @ v).transpose(1, 2).reshape(B, L, D)  # [B, L, D]
        return x + self.f2(self.drop(self.ln_attn(y) * u))


class ItemSequenceTransformer(nn.Module):
    """Embeds a left-padded item sequence (0 = padding, item i is token i + 1) and runs causal blocks."""

    def __init__(self, config: SASRecConfig, n_items: int, item_features: torch.Tensor | None):
        super().__init__()
        self.item_embedding = nn.Embedding(n_items + 1, config.hidden, padding_idx=0)
        # Absolute positions (counted from the most recent item) for both block types, as HSTU's reference input
        # preprocessor also adds them under its relative bias.
        self.position_embedding = nn.Embedding(config.max_len, config.hidden)
        # Content vectors centred over the catalogue (their shared direction says nothing about an item); the raw
        # features are saved by Ranker.save_pretrained, so the buffers are not.
        centred = None if item_features is None else item_features - item_features.mean(dim=0)
        self.register_buffer("item_features", centred, persistent=False)
        self.feature_projection = None if item_features is None else nn.Linear(item_features.shape[1], config.hidden)
        # 1 for items whose id part is used, 0 for items never seen in training (set by the fit); padding first.
        self.register_buffer("id_mask", torch.ones(n_items + 1, 1), persistent=False)
        self.id_dropout = config.id_dropout
        self.drop = nn.Dropout(config.dropout)
        # Item ids enter at sqrt(D) times their (N(0, 0.02)-initialised, output-tied) embedding, as in SASRec's code:
        # unscaled, they are ~8x smaller than the blocks' first outputs and the residual stream loses the ids.
        self.embedding_scale = math.sqrt(config.hidden) if config.scale_embeddings else 1.0
        self.time_bias = config.time_bias
        block = SASRecBlock if config.block == "sasrec" else HSTUBlock
        self.blocks = nn.ModuleList(block(config) for _ in range(config.layers))
        self.ln_out = nn.LayerNorm(config.hidden)
        self.apply(normal_init)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def item_table(self) -> torch.Tensor:
        """Input/output representation of every token, padding first: [n_items + 1, D]."""
        table = self.item_embedding.weight
        if self.feature_projection is None:
            return table
        content = F.pad(self.feature_projection(self.item_features), (0, 0, 1, 0))  # [n_items + 1, D]
        keep = self.id_mask  # [n_items + 1, 1]
        if self.training and self.id_dropout > 0:
            keep = keep * (torch.rand_like(keep) >= self.id_dropout)
        return table * keep + content

    def drop_untrained_ids(self, trained: torch.Tensor) -> None:
        """Content only for the items with no training interaction: ``trained`` [n_items] bool.

        While fitting, the mask keeps their id rows out of every table; :meth:`bake_id_mask` then
        zeroes those rows, so the saved weights need no mask.
        """
        self.id_mask.copy_(F.pad(trained.float(), (1, 0), value=1.0)[:, None])

    @torch.no_grad()
    def bake_id_mask(self) -> None:
        self.item_embedding.weight.mul_(self.id_mask)
        self.id_mask.fill_(1.0)

    def query_times(self, times: torch.Tensor, next_times: torch.Tensor | None) -> torch.Tensor:
        """The timestamp each query position's time gaps are measured from: [B, L] (see ``time_bias``)."""
        if self.time_bias == "query":
            return times
        if next_times is not None:
            return next_times
        return torch.cat([times[:, 1:], times[:, -1:]], dim=1)  # the last position has no next time: its own

    def forward(
        self,
        tokens: torch.Tensor,
        times: torch.Tensor,
        table: torch.Tensor | None = None,
        next_times: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden state per position [B, L, D] for tokens [B, L] and timestamps [B, L] (seconds).

        ``next_times`` [B, L]: the timestamp of the item each position predicts (training targets),
        used by ``time_bias="next"``; without it the sequence's own next timestamps are used.
        """
        L = tokens.shape[1]
        table = self.item_table() if table is None else table
        x = F.embedding(tokens, table) * self.embedding_scale  # [B, L, D]
        x = x + self.position_embedding.weight[-L:]
        real = tokens > 0  # [B, L]
        query_times = self.query_times(times, next_times)  # [B, L]
        x = self.drop(x) * real[..., None]
        causal = torch.ones(L, L, dtype=torch.bool, device=tokens.device).tril()
        # Real keys in the causal past; every position also sees itself so padded rows never go empty.
        allowed = (causal & real[:, None, :]) | torch.eye(L, dtype=torch.bool, device=tokens.device)  # [B, L, L]
        for block in self.blocks:
            x = block(x, allowed, times, query_times) * real[..., None]
        return self.ln_out(x)


def padded_times(sequences: Sequences, max_len: int) -> torch.Tensor:
    """Timestamps aligned with ``sequences.padded(max_len)``: [R, max_len] int64 (0 where padded)."""
    return Sequences(sequences.offsets, sequences.timestamps, sequences.timestamps).padded(max_len, shift=0)


class SASRecRanker(Ranker):
    """Causal transformer over item ids (SASRec blocks by default, HSTU blocks via ``block``)."""

    name = "sasrec"
    config_class = SASRecConfig
    uses_item_features = True
    config: SASRecConfig

    def build(self, n_items: int) -> None:
        self.check_item_features(n_items)
        torch.manual_seed(self.config.seed)
        features = None if self.item_features is None else torch.from_numpy(self.item_features)
        self.module = ItemSequenceTransformer(self.config, n_items, features).to(self.device)
        self.module.eval()
        self.compiled: nn.Module | None = None

    def autocast(self) -> torch.autocast:
        enabled = self.config.amp and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def loss(self, hidden: torch.Tensor, targets: torch.Tensor, table: torch.Tensor, generator: torch.Generator):
        """Cross-entropy of the next item at every real position: hidden [N, D], targets [N] tokens."""
        if self.config.loss == "full":
            return F.cross_entropy(hidden @ table[1:].T, targets - 1)  # [N, n_items] logits
        log_q = self.sampling_log_q  # [n_items + 1] log-probability of drawing each token, -inf for padding
        negatives = torch.multinomial(log_q.exp(), self.config.negatives, replacement=True, generator=generator)
        negatives = negatives.to(hidden.device)  # [K] tokens shared by the batch
        log_q = log_q.to(hidden.device)
        positive = (hidden * table[targets]).sum(-1, keepdim=True) - log_q[targets, None]  # [N, 1]
        negative = hidden @ table[negatives].T - log_q[negatives]  # [N, K]
        negative = negative.masked_fill(negatives[None] == targets[:, None], float("-inf"))  # accidental hits
        logits = torch.cat([positive, negative], dim=1)  # [N, 1 + K]
        return F.cross_entropy(logits, torch.zeros_like(targets))

    def set_sampling_distribution(self, train: Sequences) -> None:
        """log q over tokens for loss='sampled': uniform over items, or training frequency + 1 (padding never drawn)."""
        counts = np.ones(self.n_items)
        if self.config.sampler == "popularity":
            counts += np.bincount(train.items, minlength=self.n_items)
        log_q = torch.from_numpy(np.log(counts / counts.sum())).float()  # [n_items]
        self.sampling_log_q = torch.cat([torch.tensor([float("-inf")]), log_q])  # [n_items + 1]

    def optimizer(self, total_steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """AdamW, a linear warm-up over ``warmup_steps``, then a constant rate or a cosine to 0 at ``total_steps``."""
        config = self.config
        optimizer = torch.optim.AdamW(self.module.parameters(), lr=config.lr, weight_decay=config.weight_decay)

        def factor(step: int) -> float:
            if step < config.warmup_steps or config.schedule == "constant":
                return min(1.0, (step + 1) / (config.warmup_steps + 1))
            progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def train_epoch(
        self,
        tokens: torch.Tensor,
        times: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LRScheduler,
        generator: torch.Generator,
    ) -> float:
        """One shuffled pass over training windows [W, L + 1] with the loss at every real position; mean loss."""
        forward = self.compiled if self.compiled is not None else self.module
        order = torch.randperm(len(tokens), generator=generator)
        total, count = 0.0, 0
        batch_size = local_batch_size(self.config.batch_size)  # across processes: this rank's share of a step
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch, batch_times = tokens[rows].to(self.device), times[rows].to(self.device)  # [B, L + 1]
            with self.autocast():
                table = self.module.item_table()
                hidden = forward(batch[:, :-1], batch_times[:, :-1], table, batch_times[:, 1:])  # [B, L, D]
                targets = batch[:, 1:]
                real = (targets > 0) & (batch[:, :-1] > 0)  # [B, L]
                loss = self.loss(hidden[real], targets[real], table, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            n = int(real.sum())
            total, count = total + loss.item() * n, count + n
        return total / max(count, 1)

    def fit(self, split: Split, progress: bool = True) -> FitReport:
        config = self.config
        self.build(split.n_items)
        self.n_items = split.n_items
        self.compiled = torch.compile(self.module) if config.compile else None
        # Across processes (genrec.rankers.distributed): this rank's users, as many windows as every rank.
        windows = training_windows(shard_users(split.train), config.max_len, config.train_windows == "all")
        tokens, times = equal_shares(*windows)
        self.set_sampling_distribution(split.train)
        if self.item_features is not None:
            trained = torch.from_numpy(np.bincount(split.train.items, minlength=split.n_items) > 0)
            self.module.drop_untrained_ids(trained.to(self.device))
        generator = torch.Generator().manual_seed(config.seed)
        optimizer, schedule = self.optimizer(config.epochs * math.ceil(len(tokens) / config.batch_size))
        average_gradients(self.module, optimizer, config.seed)  # no-op in one process

        def run_epoch(epoch: int) -> float:
            return self.train_epoch(tokens, times, optimizer, schedule, generator)

        self.fit_report = fit_with_early_stopping(self, self.module, split, run_epoch, config, progress)
        self.module.bake_id_mask()
        return self.fit_report

    @torch.inference_mode()
    def score(self, history: Sequences) -> torch.Tensor:
        self.require_fitted()
        tokens = history.padded(self.config.max_len).to(self.device)  # [B, L]
        times = padded_times(history, self.config.max_len).to(self.device)
        with self.autocast():
            table = self.module.item_table()
            last = self.module(tokens, times, table)[:, -1]  # [B, D]
            return (last @ table[1:].T).float().cpu()  # [B, n_items]

    def untrained_items(self) -> torch.Tensor | None:
        """[n_items] bool: the items without an id part (never seen in training), when the model has content."""
        if self.module.feature_projection is None:
            return None
        return (self.module.item_embedding.weight[1:] == 0).all(dim=1).cpu()

    def reserved_places(self) -> tuple[int, torch.Tensor] | None:
        untrained = None if self.config.cold_start_every is None else self.untrained_items()
        return None if untrained is None else (self.config.cold_start_every, untrained)

    @classmethod
    def from_saved(cls, config: SASRecConfig, manifest: Manifest, directory: Path, **context: Any) -> SASRecRanker:
        # Saved before ``scale_embeddings`` existed: those models were trained on unscaled embeddings.
        if "scale_embeddings" not in manifest.config:
            config = config.model_copy(update={"scale_embeddings": False})
        return super().from_saved(config, manifest, directory, **context)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.module.state_dict())

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(tensors)
        self.module.eval()


class HSTURanker(SASRecRanker):
    """The same generative ranker with HSTU blocks (pointwise SiLU attention, relative position/time bias)."""

    name = "hstu"
    config_class = HSTUConfig
