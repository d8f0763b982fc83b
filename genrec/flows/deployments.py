"""Prefect deployments of genrec's flows: scheduled runs, and runs triggered from the UI form.

``genrec serve`` starts a long-running process serving these deployments against the
Prefect server configured in the environment (``PREFECT_API_URL``).
"""

from __future__ import annotations

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from genrec.flows.evaluate_ranker import EvaluateRankerParams, evaluate_ranker_flow


def build_deployments(cron: str | None = "0 3 * * *", ranker: str = "popular") -> list[RunnerDeployment]:
    """The deployments ``genrec serve`` serves; ``cron=None`` leaves them unscheduled (UI-triggered only)."""
    params = EvaluateRankerParams(ranker=ranker)
    return [
        evaluate_ranker_flow.to_deployment(
            name=f"evaluate-{ranker}",
            cron=cron,
            parameters={"params": params.model_dump(mode="json")},
            description=f"Fit {ranker} on the training split and report full-ranking test metrics.",
            tags=["genrec", "ranking"],
        )
    ]


def serve_deployments(cron: str | None = "0 3 * * *", ranker: str = "popular") -> None:
    """Serve the deployments until interrupted."""
    serve(*build_deployments(cron=cron, ranker=ranker))
