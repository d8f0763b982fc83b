"""Training sasrec or hstu across processes: the entry point ``torchrun`` starts once per rank.

::

    torchrun --standalone --nproc-per-node 2 -m genrec.pipelines.distributed \\
        --dataset movielens-latest-small --ranker sasrec --config sasrec-demo --out runs/ddp

Every rank loads the data and the leave-one-out split, builds the ranker from the same config
and seed, and fits it data-parallel (:mod:`genrec.rankers.distributed`: users sharded over the
ranks, gradients averaged, early stopping on one validation figure). Rank 0 alone writes the
checkpoint, ``<out>/model`` (config.json + model.safetensors, loadable by
:func:`genrec.rankers.load_ranker` and by ``genrec recommend --model OUT``), and
``<out>/model/train.json`` (the fit report, the world size and the backend). Without
``torchrun`` the same command trains in one process: the reference.

Multi-node: ``torchrun --nnodes N --node-rank R --rdzv-backend c10d --rdzv-endpoint HEAD:29500``
on every node, with ``--out`` on storage rank 0's node can write and the others can read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import torch.distributed as dist
import typer

from genrec.config import ConfigError
from genrec.pipelines.settings import RunSettings, ranker_config_values
from genrec.run_directory import RunDirectory

DISTRIBUTED_RANKERS = ("sasrec", "hstu")  # the rankers whose training loop runs data-parallel


def train_distributed(settings: RunSettings, out: str | Path, progress: bool = False) -> Path:
    """Fit the run's ranker on the leave-one-out split in this process's rank of the ``torchrun`` group;
    return ``out/model``.

    Rank 0 writes the checkpoint and train.json; the other ranks write nothing and wait for it.
    In a plain process (no ``torchrun``) this is one-process training.
    """
    from genrec.pipelines.ranking import fit_ranker, split
    from genrec.rankers import create_ranker
    from genrec.rankers.distributed import backend_for, process_group

    ranker = str(settings.ranker)
    if ranker not in DISTRIBUTED_RANKERS:
        raise ConfigError(f"ranker {ranker!r} does not train across processes; use one of {DISTRIBUTED_RANKERS}")
    resolved = settings.resolved_ranker_config()
    run = RunDirectory(out)
    with process_group(resolved.device) as (rank, world):
        loaded = settings.load_dataset()
        model = create_ranker(ranker, resolved)
        report = fit_ranker(model, split(loaded), progress=progress and rank == 0)
        if rank == 0:
            model.save_pretrained(run.model_dir)
            record = {
                "ranker": ranker,
                "config": resolved.model_dump(mode="json"),
                "dataset": loaded.name,
                "world_size": world,
                "backend": backend_for(resolved.device) if world > 1 else None,
                "fit": report.to_dict(),
            }
            run.write_json(f"{RunDirectory.MODEL}/{RunDirectory.TRAIN_RECORD}", record)
        if world > 1:
            dist.barrier()  # the checkpoint exists before any rank returns
    return run.model_dir


def main(
    dataset: Annotated[str, typer.Option(help="a bundled name, a path, or FORMAT:PATH")] = "movielens-latest-small",
    ranker: Annotated[str, typer.Option(help="sasrec or hstu")] = "sasrec",
    config: Annotated[str | None, typer.Option(help="a named ranker config or a JSON config file")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a config field: key=value")] = None,
    seed: Annotated[int, typer.Option(help="seeds the ranker")] = 0,
    out: Annotated[Path, typer.Option(help="run directory; the checkpoint goes to OUT/model")] = Path("runs/ddp"),
    progress: Annotated[bool, typer.Option(help="rank 0's progress bar")] = False,
) -> None:
    """Train sasrec/hstu data-parallel over the ranks ``torchrun`` started (one process without it)."""
    from genrec.cli_console import fail
    from genrec.config import parse_overrides

    try:
        from_file = ranker_config_values(config) if config else {}
        overrides = {**from_file.pop("ranker_overrides", {}), **parse_overrides(set_ or [])}
        values = {"dataset": dataset, "ranker": ranker, "ranker_overrides": overrides, "seed": seed, **from_file}
        settings = RunSettings.from_dict(values, source="options")
        model_dir = train_distributed(settings, out, progress)
    except ConfigError as err:
        raise fail(str(err)) from None
    if os.environ.get("RANK", "0") == "0":  # torchrun's rank of this process (the group is closed by now)
        print(model_dir)


if __name__ == "__main__":
    typer.run(main)
