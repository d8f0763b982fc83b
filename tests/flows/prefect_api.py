"""Reading what the test server recorded: task runs, logs and artifacts of a flow run."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogWorker


def task_runs(flow_run_id: UUID, timeout: float = 60.0) -> list[Any]:
    """The flow run's task runs once each has a final state on the server.

    Task runs report their states to the server in the background (as events), so right after a
    flow returns a task run can still read as Pending or Running, or without a state: wait for them.
    """

    async def read() -> list[Any]:
        async with get_client() as client:
            deadline = time.monotonic() + timeout
            while True:
                runs = await client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
                )
                if all(run.state is not None and run.state.is_final() for run in runs) or time.monotonic() > deadline:
                    return runs
                await asyncio.sleep(0.2)

    return asyncio.run(read())


def flow_run_logs(flow_run_id: UUID) -> list[str]:
    APILogWorker.drain_all()  # logs reach the API in batches: send what is queued first

    async def read() -> list[str]:
        async with get_client() as client:
            logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            return [log.message for log in logs]

    return asyncio.run(read())


def artifact_keys(flow_run_id: UUID) -> set[str]:
    async def read() -> set[str]:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
            return {artifact.key for artifact in found}

    return asyncio.run(read())
