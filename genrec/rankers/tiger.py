"""TIGER: generative retrieval with semantic ids (Rajput et al., NeurIPS 2023).

Items are named by semantic ids (:mod:`genrec.rankers.semantic_ids`): ``depth = levels + 1``
codes from residual quantisation of their content embeddings plus a de-duplication code.
A transformer reads the history's ids and generates the next item's id code by code; beam
search constrained by a prefix trie of the catalogue's ids returns real items only, ranked
by their sequence log-probability ``sum_j log p(c_j | c_<j, history)``.

Architecture (encoder-decoder, as in the paper, sized for CPU):

- encoder: a causal transformer over item positions; an item's input embedding is the sum of
  its code-token embeddings, so items never seen in training still get meaningful inputs;
- decoder: a transformer over the target id's tokens ``[BOS, c_1, ..., c_{depth-1}]`` with
  causal self-attention and cross-attention to the encoder states.

The encoder is causal (the paper's is bidirectional over one window per target) so that one
pass trains every position of a sequence: the decoder for target ``t + 1`` cross-attends to
encoder states ``<= t`` only, the same all-position trick as SASRec.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from genrec.data.sequences import Sequences
from genrec.encoders import create_encoder, encode_items
from genrec.evaluation.splits import Split
from genrec.rankers.base import FitReport, Ranker
from genrec.rankers.semantic_ids import (
    RQVAE,
    PrefixTrie,
    append_dedup_code,
    code_usage,
    residual_kmeans,
    train_rqvae,
)
from genrec.rankers.training import TrainedRankerConfig, fit_with_early_stopping, training_windows
from genrec.rankers.weight_init import normal_init
from genrec.ranking_ops import exclude_seen, top_k
from genrec.seeding import seed_everything


class TigerConfig(TrainedRankerConfig):
    """TIGER hyper-parameters: semantic-id quantiser, seq2seq transformer, beam search."""

    epochs: int = Field(100, ge=1, description="maximum number of epochs")
    patience: int = Field(5, ge=1, description="epochs without validation NDCG@10 improvement before stopping")
    batch_size: int = Field(64, ge=1, description="training windows (max_len + 1 items) per step")
    lr: float = Field(2e-3, gt=0)
    encoder: str = Field("minilm", description="genrec.encoders preset embedding item text when no item_features")
    embedding_cache_dir: str | None = Field(None, description="encode_items cache (None: genrec's default cache)")
    quantiser: Literal["rqvae", "kmeans"] = Field("kmeans", description="RQ-VAE or (cheaper) residual k-means")
    levels: int = Field(3, ge=1, description="residual-quantisation levels (the id has one more, de-dup, code)")
    codebook_size: int = Field(256, ge=2, description="codes per level (also bounds the de-duplication code)")
    kmeans_iters: int = Field(20, ge=1, description="Lloyd iterations per level (residual k-means, RQ-VAE init)")
    rqvae_hidden: list[int] = Field([512, 256, 128], description="RQ-VAE encoder MLP widths (decoder mirrors)")
    rqvae_latent: int = Field(32, ge=1, description="RQ-VAE latent (codebook vector) size")
    rqvae_steps: int = Field(300, ge=1, description="RQ-VAE optimisation steps")
    rqvae_batch_size: int = Field(1024, ge=1, description="items per RQ-VAE step")
    rqvae_lr: float = Field(1e-3, gt=0, description="RQ-VAE Adam learning rate")
    commitment_beta: float = Field(0.25, ge=0, description="RQ-VAE commitment-loss weight (TIGER eq. 1)")
    max_len: int = Field(20, ge=1, description="history items the encoder reads (most recent; the paper uses 20)")
    d_model: int = Field(64, ge=1, description="transformer width")
    n_heads: int = Field(2, ge=1, description="attention heads (must divide d_model)")
    encoder_layers: int = Field(2, ge=1)
    decoder_layers: int = Field(2, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1)
    beam_size: int = Field(20, ge=1, description="beams kept per step; rank(k) uses max(beam_size, k)")
    cold_start_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of each top-k list reserved for items with no training interaction (TIGER's "
        "cold-start epsilon), matched to the generated ids by their first cold_start_prefix codes",
    )
    cold_start_prefix: int = Field(
        1,
        ge=1,
        description="leading codes a cold item must share with a generated id to be recommended; TIGER's rule is "
        "levels (all but the de-dup code), which reached no cold item on movielens-latest-small",
    )
    measure_invalid: bool = Field(
        True, description="after fit, also run unconstrained beam search to report the invalid-id share"
    )
    compile: bool = Field(False, description="torch.compile the training loss (helps on CUDA)")

    @model_validator(mode="after")
    def check_shapes(self) -> TigerConfig:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.cold_start_prefix > self.levels:
            raise ValueError(f"cold_start_prefix ({self.cold_start_prefix}) must be at most levels ({self.levels})")
        if not self.rqvae_hidden or min(self.rqvae_hidden) < 1:
            raise ValueError(f"rqvae_hidden must be a non-empty list of positive widths, got {self.rqvae_hidden}")
        return self


class Attention(nn.Module):
    """Multi-head attention of queries ``x`` over ``memory`` (itself for self-attention)."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_model, 2 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        n, length, d = x.shape
        return x.view(n, length, self.n_heads, d // self.n_heads).transpose(1, 2)  # [N, H, length, d/H]

    def forward(self, x: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [N, S, D], memory [N, T, D], mask [N, S, T] (True = may attend) -> [N, S, D]."""
        n, s, d = x.shape
        q = self.split_heads(self.query(x))  # [N, H, S, d/H]
        k, v = (self.split_heads(t) for t in self.key_value(memory).chunk(2, dim=-1))  # [N, H, T, d/H]
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None], dropout_p=dropout)
        return self.proj(y.transpose(1, 2).reshape(n, s, d))


class Block(nn.Module):
    """Pre-norm transformer block; with ``cross`` it also attends to encoder states (T5 decoder)."""

    def __init__(self, d_model: int, n_heads: int, dropout: float, cross: bool):
        super().__init__()
        self.norm_self = nn.LayerNorm(d_model)
        self.self_attention = Attention(d_model, n_heads, dropout)
        self.norm_cross = nn.LayerNorm(d_model) if cross else None
        self.cross_attention = Attention(d_model, n_heads, dropout) if cross else None
        self.norm_mlp = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        self_mask: torch.Tensor,
        memory: torch.Tensor | None = None,
        cross_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x [B, Q, S, D]: Q sequences of S tokens per row; self-attention within each sequence,
        cross-attention of all Q*S tokens of a row to that row's memory [B, T, D]."""
        b, q, s, d = x.shape
        h = self.norm_self(x).view(b * q, s, d)
        x = x + self.dropout(self.self_attention(h, h, self_mask.expand(b * q, s, s))).view(b, q, s, d)
        if self.cross_attention is not None:
            h = self.norm_cross(x).view(b, q * s, d)
            # every token of query sequence j sees the memory positions sequence j may see
            mask = cross_mask.repeat_interleave(s, dim=1)  # [B, Q*S, T]
            x = x + self.dropout(self.cross_attention(h, memory, mask)).view(b, q, s, d)
        return x + self.dropout(self.mlp(self.norm_mlp(x)))


class TigerModel(nn.Module):
    """Seq2seq transformer over semantic-id tokens; token ``level * vocab + code`` is code at a level."""

    def __init__(self, codes: torch.Tensor, config: TigerConfig):
        super().__init__()
        self.depth, self.vocab = codes.shape[1], config.codebook_size
        d = config.d_model
        # row 0 is padding (Sequences.padded shifts items by one); its codes are never embedded
        self.register_buffer("codes", torch.cat([codes.new_zeros(1, self.depth), codes]), persistent=False)
        self.register_buffer("level_offset", torch.arange(self.depth) * self.vocab, persistent=False)
        self.token = nn.Embedding(self.depth * self.vocab, d)
        self.position = nn.Embedding(config.max_len, d)
        self.bos = nn.Parameter(torch.zeros(d))
        self.decoder_position = nn.Embedding(self.depth, d)
        self.encoder = nn.ModuleList(
            Block(d, config.n_heads, config.dropout, cross=False) for _ in range(config.encoder_layers)
        )
        self.decoder = nn.ModuleList(
            Block(d, config.n_heads, config.dropout, cross=True) for _ in range(config.decoder_layers)
        )
        self.norm_encoder, self.norm_decoder = nn.LayerNorm(d), nn.LayerNorm(d)
        self.head = nn.Parameter(torch.empty(self.depth, self.vocab, d))  # one output layer per level
        self.dropout = nn.Dropout(config.dropout)
        self.apply(normal_init)
        nn.init.normal_(self.head, std=0.02)
        nn.init.normal_(self.bos, std=0.02)

    def encode(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """items [B, T] (left-padded, shifted by one, 0 = pad) -> states [B, T, D], attention mask [B, T, T].

        Position t sees valid positions <= t, and always itself, so padded rows never attend to nothing.
        """
        t = items.shape[1]
        valid = items > 0  # [B, T]
        tokens = self.codes[items] + self.level_offset  # [B, T, depth]
        x = self.token(tokens).sum(dim=2) * valid[..., None] + self.position.weight[-t:]  # [B, T, D]
        causal = torch.ones(t, t, dtype=torch.bool, device=items.device).tril()
        mask = (causal & valid[:, None, :]) | torch.eye(t, dtype=torch.bool, device=items.device)  # [B, T, T]
        x = self.dropout(x)[:, None]  # [B, 1, T, D]: the encoder is one sequence per row
        for block in self.encoder:
            x = block(x, mask)
        return self.norm_encoder(x[:, 0]), mask

    def decode(self, prefix: torch.Tensor, memory: torch.Tensor, cross_mask: torch.Tensor) -> torch.Tensor:
        """Next-code logits: prefix [B, Q, S] (the first S codes of Q candidate ids per row),
        memory [B, T, D], cross_mask [B, Q, T] -> logits [B, Q, S + 1, vocab] for codes 1..S+1."""
        b, q, s = prefix.shape
        x = torch.cat([self.bos.expand(b, q, 1, -1), self.token(prefix + self.level_offset[:s])], dim=2)
        x = self.dropout(x + self.decoder_position.weight[: s + 1])  # [B, Q, S+1, D]
        causal = torch.ones(s + 1, s + 1, dtype=torch.bool, device=prefix.device).tril()[None]
        for block in self.decoder:
            x = block(x, causal, memory, cross_mask)
        return torch.einsum("bqsd,svd->bqsv", self.norm_decoder(x), self.head[: s + 1])

    def loss(self, sequences: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of every next item's id given the items before it: sequences [B, T+1] (0 = pad)."""
        inputs, targets = sequences[:, :-1], sequences[:, 1:]  # [B, T]
        memory, mask = self.encode(inputs)
        target_codes = self.codes[targets]  # [B, T, depth]
        logits = self.decode(target_codes[..., :-1], memory, mask)  # [B, T, depth, vocab]
        scored = inputs > 0  # left padding: a real input implies a real target
        return F.cross_entropy(logits[scored].flatten(0, 1), target_codes[scored].flatten())


def top_k_with_reserved(
    scores: torch.Tensor, reserved: torch.Tensor, k: int, slots: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` per row whose last places, up to ``slots`` of them, go to the best ``reserved`` items
    [N] (bool) with a finite score; the places before them to the best others. Each part is ordered
    and tie-broken like ``top_k``; the two parts' scores need not be comparable."""
    k = min(k, scores.shape[1])
    reserved_index, reserved_scores = top_k(scores.masked_fill(~reserved, float("-inf")), min(slots, k))
    other_index, other_scores = top_k(scores.masked_fill(reserved, float("-inf")), k)
    # per row: the others' first (k - taken) places, then the taken reserved items; empty slots last
    taken = (reserved_index >= 0).sum(dim=1, keepdim=True)  # [B, 1]
    position = torch.arange(k)
    slot = torch.cat([position.expand_as(other_index), k - taken + position[: reserved_index.shape[1]]], dim=1)
    keep = torch.cat([position < k - taken, reserved_index >= 0], dim=1)  # [B, k + slots]
    slot = slot.where(keep, k)  # dropped entries go to a spare column
    index = torch.full((len(scores), k + 1), -1).scatter_(1, slot, torch.cat([other_index, reserved_index], 1))
    values = torch.full((len(scores), k + 1), float("-inf")).scatter_(
        1, slot, torch.cat([other_scores, reserved_scores], 1)
    )
    return index[:, :k], values[:, :k]


class TigerRanker(Ranker):
    """TIGER generative retrieval; see the module docstring.

    Seen items are excluded after decoding: the final beam step's candidates (every child of the
    surviving beams, ``max(beam_size, k)`` beams) are scattered into a catalogue-wide score row,
    seen items set to -inf, and the top ``k`` taken with the shared deterministic tie-break. A
    user whose beams hold fewer than ``k`` unseen items gets -1 padding. ``score()`` returns the
    same beam scores for ``beam_size`` beams, -inf for items the beams did not reach.

    Cold start (TIGER section 4.2): items without a training interaction keep their content-derived
    semantic ids in the trie, but their codes were never a target, so the decoder rarely generates
    them whole. With ``cold_start_share`` > 0 a cold item is a candidate when its first
    ``cold_start_prefix`` codes equal a beam's prefix, scored by that prefix's log-probability, and
    up to ``floor(cold_start_share * k)`` places at the end of each list go to the best such items.
    """

    name = "tiger"
    config_class = TigerConfig
    uses_item_features = True
    config: TigerConfig

    def __init__(self, config: TigerConfig | dict | None = None, item_features: np.ndarray | None = None):
        super().__init__(config, item_features)
        self.model: TigerModel | None = None
        self.trie: PrefixTrie | None = None
        self.quantiser_report: dict[str, float] = {}
        self.invalid_counts = [0, 0]  # [invalid, generated] ids of the latest rank() call
        self.cold_counts = [0, 0]  # [cold, all] recommended slots of the latest rank() call
        self.trained_items: torch.Tensor | None = None  # [n_items] bool: item has a training interaction
        self.measuring_invalid = self.config.measure_invalid

    # -- semantic ids --------------------------------------------------------------------
    def content_embeddings(self, split: Split, progress: bool) -> np.ndarray:
        if self.item_features is not None:
            return self.item_features
        encoder = create_encoder(self.config.encoder)
        return encode_items(split.dataset, encoder, cache_dir=self.config.embedding_cache_dir, progress=progress)

    def semantic_ids(self, embeddings: np.ndarray) -> torch.Tensor:
        """Content embeddings [N, D] -> unique semantic ids [N, levels + 1] (int64, CPU)."""
        config = self.config
        generator = torch.Generator().manual_seed(config.seed)
        x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        if config.quantiser == "kmeans":
            codes, _ = residual_kmeans(x, config.levels, config.codebook_size, config.kmeans_iters, generator)
            self.quantiser_report = {}
        else:
            torch.manual_seed(config.seed)
            rqvae = RQVAE(
                x.shape[1], config.rqvae_hidden, config.rqvae_latent, config.levels, config.codebook_size,
                config.commitment_beta,
            )  # fmt: skip
            self.quantiser_report = train_rqvae(
                x, rqvae, config.rqvae_steps, config.rqvae_batch_size, config.rqvae_lr, config.kmeans_iters, generator
            )
            with torch.no_grad():
                codes, _, _ = rqvae(x)
        codes = append_dedup_code(codes)
        if int(codes[:, -1].max()) >= config.codebook_size:
            raise ValueError(
                f"tiger: {int(codes[:, -1].max()) + 1} items share one semantic id prefix, more than "
                f"codebook_size ({config.codebook_size}) de-duplication codes; raise codebook_size or levels"
            )
        return codes

    # -- Ranker interface ------------------------------------------------------------------
    def build(self, n_items: int, codes: torch.Tensor | None = None, trained_items: torch.Tensor | None = None) -> None:
        """Allocate the transformer for ``codes`` [n_items, levels + 1] (zeros until loaded)."""
        codes = torch.zeros(n_items, self.config.levels + 1, dtype=torch.int64) if codes is None else codes
        self.trained_items = torch.ones(n_items, dtype=torch.bool) if trained_items is None else trained_items
        torch.manual_seed(self.config.seed)
        self.model = TigerModel(codes, self.config).to(self.device)
        self.trie = PrefixTrie.build(codes, self.config.codebook_size)

    def fit(self, split: Split, progress: bool = True) -> FitReport:
        self.check_item_features(split.n_items)
        config = self.config
        codes = self.semantic_ids(self.content_embeddings(split, progress))
        trained_items = torch.from_numpy(np.bincount(split.train.items, minlength=split.n_items) > 0)
        self.build(split.n_items, codes, trained_items)
        model = self.model
        self.n_items = split.n_items
        generator = seed_everything(config.seed)
        # every training interaction is a target once per epoch (the paper slides windows over histories too)
        windows, _ = training_windows(split.train, config.max_len, all_windows=True)  # [W, max_len + 1]
        optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        loss_fn = torch.compile(model.loss) if config.compile else model.loss
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else contextlib.nullcontext()
        )

        def run_epoch(epoch: int) -> float:
            total = 0.0
            order = torch.randperm(len(windows), generator=generator)
            for start in range(0, len(windows), config.batch_size):
                batch = windows[order[start : start + config.batch_size]]
                with autocast:
                    loss = loss_fn(batch.to(self.device))
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimiser.step()
                total += loss.item() * len(batch)
            return total / len(windows)

        # validation during training ranks with the constraint only; the invalid-id share is a test figure
        self.measuring_invalid = False
        self.fit_report = fit_with_early_stopping(self, model, split, run_epoch, config, progress)
        self.measuring_invalid = config.measure_invalid
        return self.fit_report

    @torch.inference_mode()
    def beam_search(
        self, history: Sequences, width: int, constrained: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Generate ids for each history row; returns the last step's candidates as
        (items [B, W, vocab] with -1 for ids that are no catalogue item, log-probabilities [B, W, vocab])
        and the beams kept at each shorter prefix length: [(trie nodes [B, W], log-probabilities [B, W])].

        Constrained: at every step codes without a child in the prefix trie get -inf, so only real
        items survive. Unconstrained: plain beam search, used to measure the invalid-id share.
        """
        model, trie = self.model, self.trie
        items = history.padded(self.config.max_len).to(self.device)
        memory, _ = model.encode(items)  # [B, T, D]
        b, t = items.shape
        # the newest position is always visible so that an empty history still has a memory
        visible = (items > 0) | (torch.arange(t, device=self.device) == t - 1)  # [B, T]
        prefix = torch.zeros(b, 1, 0, dtype=torch.int64, device=self.device)  # [B, W, s]
        node = torch.zeros(b, 1, dtype=torch.int64)  # trie node of each beam (CPU), -1 = off the trie
        score = torch.zeros(b, 1, device=self.device)  # [B, W] sequence log-probability
        beams = []  # (trie node, log-probability) [B, W] each of the beams kept at prefix lengths 1..depth-1
        for level in range(model.depth):
            logits = model.decode(prefix, memory, visible[:, None].expand(-1, prefix.shape[1], -1))[:, :, -1]
            children = trie.step(node)  # [B, W, vocab]
            total = score[..., None] + F.log_softmax(logits.float(), dim=-1)  # [B, W, vocab]
            if constrained:
                total = total.masked_fill(children.to(self.device) < 0, float("-inf"))
            if level == model.depth - 1:
                return trie.item(children), total.cpu(), beams
            score, flat = total.flatten(1).topk(min(width, total[0].numel()), dim=1)  # [B, W']
            beam, code = flat // model.vocab, flat % model.vocab
            prefix = torch.cat([prefix.gather(1, beam[..., None].expand(-1, -1, level)), code[..., None]], dim=2)
            node = children.flatten(1).gather(1, flat.cpu())
            beams.append((node, score.cpu()))
        raise AssertionError("unreachable: depth >= 1")

    def candidate_scores(self, history: Sequences, width: int) -> torch.Tensor:
        """Constrained-beam log-probabilities scattered over the catalogue: [B, n_items], -inf elsewhere."""
        n_items = self.require_fitted()
        items, logp, beams = self.beam_search(history, width)
        scores = torch.full((len(history), n_items + 1), float("-inf"))  # last column collects non-items
        scores = scores.scatter_(1, items.flatten(1).where(items.flatten(1) >= 0, n_items), logp.flatten(1))[:, :-1]
        if self.config.cold_start_share > 0:
            cold = torch.nonzero(~self.trained_items).squeeze(1)  # [C]
            length = self.config.cold_start_prefix
            node, prefix_logp = beams[length - 1]  # [B, W]
            best = torch.full((len(history), self.trie.n_internal), float("-inf"))  # best beam per trie node
            best.scatter_reduce_(1, node.clamp(min=0), prefix_logp, reduce="amax")  # -1: a -inf beam
            scores[:, cold] = best[:, self.trie.prefix_nodes(self.model.codes[1:][cold].cpu(), length)]
        return scores

    def score(self, history: Sequences) -> torch.Tensor:
        return self.candidate_scores(history, self.config.beam_size)

    def rank(
        self, history: Sequences, k: int = 10, exclude: Sequences | None = None, progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items by constrained beam search (see the class docstring), seen items excluded.

        Outside training, with ``measure_invalid``, an unconstrained beam search on the same rows
        counts how many of its top-``k`` ids are no catalogue item (``evaluation_extras``).
        """
        self.require_fitted()
        self.model.eval()
        self.invalid_counts, self.cold_counts = [0, 0], [0, 0]  # figures of this call only
        return super().rank(history, k, exclude, progress)

    def rank_batch(self, history: Sequences, exclude: Sequences, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch: beams of width ``max(beam_size, k)``, seen items excluded, cold-start places reserved."""
        width = max(self.config.beam_size, k)
        cold_slots = int(self.config.cold_start_share * k)
        batch_scores = exclude_seen(self.candidate_scores(history, width), exclude)
        if cold_slots:
            top_index, top_scores = top_k_with_reserved(batch_scores, ~self.trained_items, k, cold_slots)
        else:
            top_index, top_scores = top_k(batch_scores, k)
        real = top_index[top_index >= 0]
        self.cold_counts[0] += int((~self.trained_items[real]).sum())
        self.cold_counts[1] += real.numel()
        if self.measuring_invalid:
            self.count_invalid(history, width, k)
        return top_index, top_scores

    def count_invalid(self, history: Sequences, width: int, k: int) -> None:
        items, logp, _ = self.beam_search(history, width, constrained=False)
        best = logp.flatten(1).topk(min(k, logp[0].numel()), dim=1).indices  # [B, k]
        self.invalid_counts[0] += int((items.flatten(1).gather(1, best) < 0).sum())
        self.invalid_counts[1] += best.numel()

    def evaluation_extras(self) -> dict[str, float]:
        """Invalid-id share of unconstrained decoding (latest rank() call), semantic-id statistics."""
        self.require_fitted()
        codes = self.model.codes[1:].cpu()
        extras = {
            "semantic_id_collision_share": float((codes[:, -1] > 0).float().mean()),
            **code_usage(codes[:, :-1], self.config.codebook_size),
            **self.quantiser_report,
        }
        if self.invalid_counts[1]:
            extras["invalid_id_share"] = self.invalid_counts[0] / self.invalid_counts[1]
        if self.cold_counts[1]:
            extras["cold_item_share_of_recommendations"] = self.cold_counts[0] / self.cold_counts[1]
        extras["untrained_items"] = float((~self.trained_items).sum())
        return extras

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"semantic_ids": self.model.codes[1:], "trained_items": self.trained_items, **self.model.state_dict()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        tensors = dict(tensors)
        self.build(len(tensors["semantic_ids"]), tensors.pop("semantic_ids"), tensors.pop("trained_items"))
        self.model.load_state_dict(tensors)
        self.model.eval()
