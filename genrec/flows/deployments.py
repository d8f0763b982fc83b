"""Prefect deployments of genrec's flows: scheduled runs, and runs triggered from the UI form.

``genrec serve`` starts a long-running process serving these deployments against the
Prefect server configured in the environment (``PREFECT_API_URL``).
"""

from __future__ import annotations

from prefect import serve
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import RunnerDeployment
from pydantic import ValidationError

from genrec.config import ConfigError
from genrec.flows.evaluate_ranker import EvaluateRankerParams, evaluate_ranker_flow


def check_cron(cron: str, source: str = "cron") -> str:
    """``cron`` if Prefect can schedule it (five fields: minute hour day-of-month month day-of-week), else ConfigError.

    Prefect checks a schedule only when a deployment is served; this runs that check up front,
    so a bad ``--cron`` is a one-line error before anything starts.
    """
    try:
        CronSchedule(cron=cron)
    except ValidationError:
        raise ConfigError(
            f"{source}: invalid cron schedule {cron!r}; expected five fields 'minute hour day-of-month month "
            "day-of-week', e.g. '0 3 * * *' (03:00 every day) or '*/15 * * * *'"
        ) from None
    return cron


def build_deployments(cron: str | None = "0 3 * * *", ranker: str = "popular") -> list[RunnerDeployment]:
    """The deployments ``genrec serve`` serves; ``cron=None`` leaves them unscheduled (UI-triggered only).

    Raises ConfigError for an invalid ``cron`` (:func:`check_cron`).
    """
    if cron is not None:
        check_cron(cron)
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
