"""The ``evaluate-ranker`` flow: load -> split -> fit -> evaluate, each a Prefect task.

The flow only wires the plain functions of :mod:`genrec.pipelines`; its parameter model
renders as a form in the Prefect UI.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NONE
from pydantic import Field

from genrec import pipelines as gp
from genrec.config import Seed, StrictModel
from genrec.data import Dataset
from genrec.evaluation import RankingEvaluation, Split, SplitConfig
from genrec.io import write_json
from genrec.rankers import Ranker


class EvaluateRankerParams(StrictModel):
    """Parameters of the evaluate-ranker flow (the Prefect UI form)."""

    dataset: str = Field("movielens-latest-small", description="bundled name, path, or FORMAT:PATH")
    ranker: str = Field("popular", description="registered ranker name")
    config: str | None = Field(None, description="named config or JSON config file; None = the ranker's default")
    overrides: dict[str, Any] = Field(default_factory=dict, description="config fields to override")
    seed: Seed = Field(0, description="random seed")
    split: SplitConfig = Field(default_factory=SplitConfig)
    output_dir: str | None = Field(None, description="if set, metrics.json and the model are written here")


# Data sets and models are large in-memory objects: hashing them for Prefect's input cache
# would cost more than recomputing, so caching is off.
@task(name="load-dataset", cache_policy=NONE)
def load_task(source: str) -> Dataset:
    return gp.load_dataset(source)


@task(name="split", cache_policy=NONE)
def split_task(dataset: Dataset, config: SplitConfig) -> Split:
    return gp.split(dataset, config)


@task(name="fit-ranker", cache_policy=NONE)
def fit_task(params: EvaluateRankerParams, split: Split) -> tuple[Ranker, float]:
    ranker = gp.build_ranker(params.ranker, params.config, params.overrides, params.seed)
    start = time.perf_counter()
    gp.fit_ranker(ranker, split, progress=False)
    return ranker, time.perf_counter() - start


@task(name="evaluate-ranker", cache_policy=NONE)
def evaluate_task(ranker: Ranker, split: Split) -> RankingEvaluation:
    return gp.evaluate_ranker(ranker, split)


@flow(name="evaluate-ranker", log_prints=True)
def evaluate_ranker_flow(params: EvaluateRankerParams | None = None) -> dict[str, Any]:
    """Fit a ranker on the training split and report full-ranking test metrics."""
    params = params or EvaluateRankerParams()
    dataset = load_task(params.dataset)
    split = split_task(dataset, params.split)
    ranker, fit_seconds = fit_task(params, split)
    evaluation = evaluate_task(ranker, split)
    result = gp.ranking_result(dataset, split, ranker, fit_seconds, evaluation)
    if params.output_dir:
        out = Path(params.output_dir)
        write_json(out / "metrics.json", result)
        ranker.save_pretrained(out / "ranker")
    print(f"{params.ranker} on {dataset.name}: NDCG@10 {result['metrics']['NDCG@10']:.4f}")
    return result
