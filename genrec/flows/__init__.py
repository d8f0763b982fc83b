"""Prefect flows wiring the plain functions of genrec.pipelines; no model logic lives here.

Flows: ``train``, ``recommend``, ``generate``, ``evaluate`` and ``pipeline`` (all four chained);
deployments of them are served by ``genrec serve`` (:mod:`genrec.flows.deployments`).
"""

from genrec.flows.pipeline import FLOWS, evaluate_flow, generate_flow, pipeline_flow, recommend_flow, train_flow

__all__ = ["FLOWS", "evaluate_flow", "generate_flow", "pipeline_flow", "recommend_flow", "train_flow"]
