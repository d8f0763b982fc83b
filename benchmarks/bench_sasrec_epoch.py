"""Seconds per epoch: all-position training vs one sample per prefix, same model, same targets.

All-position (what ``sasrec`` does): each training window of max_len + 1 items is one sample
and the loss is taken at every position in one pass. One sample per prefix (RecBole's
SASRec): every (prefix, next item) pair of the same windows is its own left-padded sample
and only its last position is scored. Both see exactly the same targets per epoch; the
prefix variant exists only here, to measure the ratio.

    python benchmarks/bench_sasrec_epoch.py --config sasrec-recbole-defaults
"""

from __future__ import annotations

import argparse
import time

import torch

from genrec.data import load_dataset
from genrec.evaluation import split
from genrec.rankers import create_ranker
from genrec.rankers.sasrec import SASRecRanker
from genrec.rankers.training import training_windows


def prefix_samples(tokens: torch.Tensor, times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (prefix, next item) of windows [W, L + 1] as its own left-padded window [P, L + 1]."""
    L1 = tokens.shape[1]
    window, end = torch.nonzero((tokens[:, 1:] > 0) & (tokens[:, :-1] > 0), as_tuple=True)  # target at end + 1
    shift = (L1 - 2) - end  # [P] how far each prefix moves right
    source = torch.arange(L1)[None, :] - shift[:, None]  # [P, L + 1]
    real = source >= 0
    source = source.clamp(min=0)
    return (
        torch.where(real, tokens[window[:, None], source], 0),
        torch.where(real, times[window[:, None], source], 0),
    )


def prefix_epoch(ranker: SASRecRanker, tokens: torch.Tensor, times: torch.Tensor, optimizer, generator) -> float:
    """One shuffled pass over prefix samples, the loss at the last position only; returns seconds."""
    start = time.perf_counter()
    order = torch.randperm(len(tokens), generator=generator)
    for begin in range(0, len(order), ranker.config.batch_size):
        rows = order[begin : begin + ranker.config.batch_size]
        batch, batch_times = tokens[rows], times[rows]  # [B, L + 1]
        table = ranker.module.item_table()
        last = ranker.module(batch[:, :-1], batch_times[:, :-1], table)[:, -1]  # [B, D]
        loss = ranker.loss(last, batch[:, -1], table, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="movielens-latest-small")
    parser.add_argument("--ranker", default="sasrec")
    parser.add_argument("--config", default="sasrec-recbole-defaults", help="named config or JSON file")
    parser.add_argument("--epochs", type=int, default=3, help="all-position epochs timed (the mean is reported)")
    args = parser.parse_args()

    the_split = split(load_dataset(args.dataset))
    ranker = create_ranker(args.ranker, args.config)
    config = ranker.config
    ranker.build(the_split.n_items)
    ranker.module.train()
    tokens, times = training_windows(the_split.train, config.max_len, config.train_windows == "all")
    prefix_tokens, prefix_times = prefix_samples(tokens, times)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer, schedule = ranker.optimizer()

    all_position = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        ranker.train_epoch(tokens, times, optimizer, schedule, generator)
        all_position.append(time.perf_counter() - start)
    prefix = prefix_epoch(ranker, prefix_tokens, prefix_times, optimizer, generator)

    mean = sum(all_position) / len(all_position)
    print(f"{args.ranker} {args.config} on {args.dataset}: {len(prefix_tokens)} training targets per epoch")
    print(f"all-position : {len(tokens)} windows of {config.max_len}, {mean:.2f} s/epoch (mean of {args.epochs})")
    print(f"prefix       : {len(prefix_tokens)} samples of {config.max_len}, {prefix:.2f} s/epoch (one epoch)")
    print(f"speed-up     : {prefix / mean:.1f}x per epoch (same targets)")
    # RecBole's epoch presents every prefix of the whole training history (cut to max_len), not only the
    # windows above; a prefix sample costs the same wherever it comes from, so its time scales with the count.
    every_prefix = int((the_split.train.lengths - 1).clip(min=0).sum())
    recbole_epoch = prefix / len(prefix_tokens) * every_prefix
    print(f"RecBole-style: {every_prefix} prefixes of the whole histories, {recbole_epoch:.1f} s/epoch (extrapolated)")
    print(f"speed-up     : {recbole_epoch / mean:.1f}x per epoch vs RecBole-style prefix training")


if __name__ == "__main__":
    main()
