"""Data-parallel training of the sequential rankers (sasrec, hstu) across processes.

One process is the default and the reference: every function here is the identity (or a no-op)
unless a ``torch.distributed`` process group is initialised, e.g. by :func:`process_group` in a
process started by ``torchrun`` (``genrec.pipelines.distributed`` is that entry point). In a
group of W ranks:

- users are sharded across ranks (:func:`shard_users`: rank r takes users r, r + W, ...), and each
  rank's training windows are repeated cyclically up to the largest rank's count
  (:func:`equal_shares`), so every rank runs the same number of steps (a collective per step);
- each rank steps on ``ceil(batch_size / W)`` windows (:func:`local_batch_size`), so one step sees
  ``batch_size`` windows in all, as in one process; the gradients are averaged over the ranks
  before every optimizer step (:func:`average_gradients`: one all-reduce of the flattened
  gradients; parameters are broadcast from rank 0 first, so the ranks stay identical);
- validation NDCG@10 is computed on each rank's share of the validation users and combined into
  the mean over all users (:func:`mean_over_ranks`), which rank 0 broadcasts: early stopping
  decides once, on one figure, for every rank;
- only rank 0 writes a checkpoint (:func:`is_main_process`).

Backends: ``gloo`` on CPU, ``nccl`` on CUDA (:func:`backend_for`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from genrec.data.sequences import Sequences
from genrec.evaluation.splits import EvalSet


def active() -> bool:
    """Whether this process is one rank of an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) in one process."""
    return (dist.get_rank(), dist.get_world_size()) if active() else (0, 1)


def is_main_process() -> bool:
    """Rank 0 (or the only process): the one that writes checkpoints and reports."""
    return rank_and_world()[0] == 0


def _collective_device() -> torch.device:
    """Where small collective tensors live: the current GPU under nccl, else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def backend_for(device: str | torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


@contextmanager
def process_group(device: str = "cpu") -> Iterator[tuple[int, int]]:
    """Join the process group ``torchrun`` describes (RANK, WORLD_SIZE, MASTER_ADDR, ...); yield (rank, world).

    Without those variables (a plain ``python`` process) nothing is initialised and this is the
    one-process reference: yields (0, 1). On CUDA each rank uses the GPU ``LOCAL_RANK`` names.
    """
    if "WORLD_SIZE" not in os.environ or active():
        yield rank_and_world()
        return
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend_for(device))
    try:
        yield rank_and_world()
    finally:
        dist.destroy_process_group()


def shard_users(train: Sequences) -> Sequences:
    """This rank's users (rows r, r + W, ...) of the training sequences; all of them in one process."""
    rank, world = rank_and_world()
    return train if world == 1 else train.rows(np.arange(rank, len(train), world))


def shard_eval_set(eval_set: EvalSet) -> EvalSet:
    """This rank's users (rows r, r + W, ...) of a validation or test set; all of them in one process."""
    rank, world = rank_and_world()
    return eval_set if world == 1 else eval_set.subset(np.arange(rank, len(eval_set), world))


def equal_shares(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Rows [W_r, ...] repeated cyclically to the largest count over the ranks (every rank steps as often).

    Raises:
        ValueError: a rank has no row at all (more ranks than users with a training window).
    """
    if not active():
        return tensors
    count = torch.tensor([len(tensors[0])], dtype=torch.int64, device=_collective_device())
    largest = count.clone()
    dist.all_reduce(largest, op=dist.ReduceOp.MAX)
    smallest = count.clone()
    dist.all_reduce(smallest, op=dist.ReduceOp.MIN)
    if int(smallest) == 0:
        raise ValueError(
            f"a rank of {dist.get_world_size()} has no training window: use fewer processes than users with "
            "at least two training interactions"
        )
    rows = torch.arange(int(largest), device=tensors[0].device) % len(tensors[0])
    return tuple(tensor[rows] for tensor in tensors)


def local_batch_size(batch_size: int) -> int:
    """Windows per step on this rank: ``ceil(batch_size / W)``, so a step sees ``batch_size`` in all."""
    return math.ceil(batch_size / rank_and_world()[1])


def average_gradients(module: nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    """Keep the ranks' copies of ``module`` identical: broadcast rank 0's parameters now, and average
    the gradients over the ranks before every step of ``optimizer`` (one all-reduce of all of them).

    Each rank's dropout is reseeded with ``seed + rank`` so the ranks draw different masks. No-op
    in one process.
    """
    if not active():
        return
    rank, world = rank_and_world()
    parameters = [parameter for parameter in module.parameters() if parameter.requires_grad]
    with torch.no_grad():
        for parameter in parameters:
            dist.broadcast(parameter.data, src=0)
    torch.manual_seed(seed + rank)

    def all_reduce(_optimizer: torch.optim.Optimizer, _args: tuple, _kwargs: dict) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        flat = torch.cat([grad.reshape(-1) for grad in grads])  # [P] one message per step
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for parameter, grad in zip(parameters, grads, strict=True):
            size = grad.numel()
            parameter.grad = flat[offset : offset + size].view_as(grad)
            offset += size

    optimizer.register_step_pre_hook(all_reduce)


def mean_over_ranks(value: float, count: int) -> float:
    """The mean over all ranks' rows of a per-rank mean ``value`` over ``count`` rows, as rank 0 computes it.

    Every rank returns rank 0's figure (broadcast), so a decision made on it is one decision.
    """
    if not active():
        return value
    totals = torch.tensor([value * count if count else 0.0, float(count)], dtype=torch.float64)
    totals = totals.to(_collective_device())
    dist.all_reduce(totals)
    dist.broadcast(totals, src=0)
    return float(totals[0] / totals[1]) if float(totals[1]) else float("nan")
