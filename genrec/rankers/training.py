"""Early-stopping training loop shared by the trained rankers.

The loop owns what every trained ranker needs: epochs, validation NDCG@10 after each,
patience, restoring the best weights, a progress bar showing loss and the validation
metric, and the :class:`FitReport`. The ranker supplies one epoch of training.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Mapping

import numpy as np
import torch
from pydantic import Field

from genrec.data.sequences import Sequences
from genrec.evaluation.metrics import accuracy_metrics
from genrec.evaluation.splits import Split
from genrec.progress import progress_bar
from genrec.rankers.base import FitReport, Ranker, RankerConfig
from genrec.rankers.distributed import mean_over_ranks, shard_eval_set

# One INFO record per epoch (the Prefect flows forward the genrec loggers to the run logger).
logger = logging.getLogger(__name__)


class TrainedRankerConfig(RankerConfig):
    """Optimisation settings shared by rankers trained with early stopping."""

    epochs: int = Field(200, ge=1, description="maximum number of epochs")
    patience: int = Field(20, ge=1, description="epochs without validation NDCG@10 improvement before stopping")
    batch_size: int = Field(128, ge=1, description="training examples per step")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)


def validation_ndcg10(ranker: Ranker, split: Split) -> float:
    """Validation NDCG@10; across processes, over every rank's share of the users (one figure for all ranks)."""
    valid = shard_eval_set(split.valid)
    recommended, _ = ranker.rank(valid.history, k=10, exclude=valid.excluded)
    return mean_over_ranks(accuracy_metrics(recommended, valid.targets, ks=(10,))["NDCG@10"], len(valid))


def fit_with_early_stopping(
    ranker: Ranker,
    module: torch.nn.Module,
    split: Split,
    run_epoch: Callable[[int], float | Mapping[str, float]],
    config: TrainedRankerConfig,
    progress: bool = True,
    stop_when: Callable[[dict[str, float]], str | None] | None = None,
) -> FitReport:
    """Call ``run_epoch(epoch) -> mean loss`` until validation NDCG@10 stops improving.

    ``run_epoch`` may instead return a mapping with a ``"loss"`` key; its other entries
    (e.g. per-network losses) are added to that epoch's history row. ``stop_when(row)``,
    called with each finished row, ends training early with a warning when it returns a
    reason (e.g. a collapsed model). The weights of the best epoch are restored into
    ``module`` at the end.
    """
    report = FitReport()
    best_state = {name: value.detach().clone() for name, value in module.state_dict().items()}
    best, epochs_without_gain = float("-inf"), 0
    start = time.perf_counter()
    with progress_bar(progress) as bar:
        task = bar.add_task(f"training {ranker.name}", total=config.epochs, status="")
        for epoch in range(1, config.epochs + 1):
            epoch_start = time.perf_counter()
            module.train()
            figures = run_epoch(epoch)
            figures = dict(figures) if isinstance(figures, Mapping) else {"loss": figures}
            loss = figures["loss"]
            module.eval()
            ndcg = validation_ndcg10(ranker, split)
            seconds = time.perf_counter() - epoch_start
            row = {"epoch": epoch, **figures, "valid_NDCG@10": ndcg, "seconds": seconds}
            report.history.append(row)
            logger.info("%s epoch %d: loss %.4f, valid NDCG@10 %.4f, %.1f s", ranker.name, epoch, loss, ndcg, seconds)
            report.epochs = epoch
            if ndcg > best:
                best, epochs_without_gain, report.best_epoch = ndcg, 0, epoch
                best_state = {name: value.detach().clone() for name, value in module.state_dict().items()}
            else:
                epochs_without_gain += 1
            bar.update(
                task,
                advance=1,
                status=f"loss {loss:.4f}  valid NDCG@10 {ndcg:.4f} (best {best:.4f} @ {report.best_epoch})",
            )
            if stop_when is not None and (reason := stop_when(row)):
                warnings.warn(f"{ranker.name}: training stopped at epoch {epoch}: {reason}", stacklevel=2)
                break
            if epochs_without_gain >= config.patience:
                break
    module.load_state_dict(best_state)
    module.eval()
    report.best_valid_ndcg10 = best
    report.fit_seconds = time.perf_counter() - start
    return report


def training_windows(train: Sequences, max_len: int, all_windows: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows of max_len + 1 consecutive items, left-padded, ending at each user's last item.

    With ``all_windows`` a history is cut from its end into windows whose targets tile it, so
    every interaction but the first is predicted once; otherwise one window per user.
    Returns tokens (item + 1, 0 = padding) and timestamps, both [W, max_len + 1].
    """
    lengths = train.lengths
    usable = np.flatnonzero(lengths >= 2)
    per_user = (lengths[usable] - 2) // max_len + 1 if all_windows else np.ones(len(usable), dtype=np.int64)
    user = np.repeat(usable, per_user)  # [W]
    index = np.arange(per_user.sum()) - np.repeat(np.cumsum(per_user) - per_user, per_user)  # window k of its user
    end = train.offsets[1:][user] - index * max_len  # [W] exclusive end in the flat arrays
    position = end[:, None] - (max_len + 1) + np.arange(max_len + 1)  # [W, max_len + 1]
    real = position >= train.offsets[:-1][user][:, None]
    position = np.where(real, position, 0)
    tokens = np.where(real, train.items[position] + 1, 0)
    times = np.where(real, train.timestamps[position], 0)
    return torch.from_numpy(tokens), torch.from_numpy(times)
