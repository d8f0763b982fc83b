"""Prefect flows wiring the plain functions of genrec.pipelines; no model logic lives here."""

from genrec.flows.evaluate_ranker import EvaluateRankerParams, evaluate_ranker_flow

__all__ = ["EvaluateRankerParams", "evaluate_ranker_flow"]
