"""The stages as plain functions with typed inputs and outputs (the plan: :mod:`genrec.pipelines.stages`, one
run's settings: :mod:`genrec.pipelines.settings`) and the building blocks under them, exported here.
Flows in genrec.flows only wire these; nothing here imports Prefect.
"""

from genrec.data import load_dataset
from genrec.pipelines.describe import (
    check_description,
    check_descriptions,
    generate_descriptions,
)
from genrec.pipelines.encode import encode_histories, encode_items, preference_profile
from genrec.pipelines.images import generate_images
from genrec.pipelines.ranking import (
    benchmark_ranking,
    build_ranker,
    evaluate_ranker,
    fit_and_evaluate,
    fit_ranker,
    rank,
    ranking_result,
    split,
)

__all__ = [
    "benchmark_ranking",
    "build_ranker",
    "check_description",
    "check_descriptions",
    "encode_histories",
    "encode_items",
    "evaluate_ranker",
    "fit_and_evaluate",
    "fit_ranker",
    "generate_descriptions",
    "generate_images",
    "load_dataset",
    "preference_profile",
    "rank",
    "ranking_result",
    "split",
]
