"""genrec's own log records (per-epoch training lines, progress lines) in the Prefect run logs.

The rankers and pipelines log through the standard ``logging`` module under ``genrec.*`` and
know nothing of Prefect; the flows call :func:`send_genrec_logs_to_prefect`, which is what
``PREFECT_LOGGING_EXTRA_LOGGERS=genrec`` would do, without needing the setting.
"""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler

GENREC_LOGGER = "genrec"


class RunLogHandler(APILogHandler):
    """Prefect's API log handler, silent outside a flow or task run (plain Python use stays quiet)."""

    def emit(self, record: logging.LogRecord) -> None:
        if FlowRunContext.get() is None and TaskRunContext.get() is None:
            return
        super().emit(record)


def send_genrec_logs_to_prefect() -> None:
    """Attach the run log handler to the ``genrec`` logger (once) and let its INFO records through."""
    logger = logging.getLogger(GENREC_LOGGER)
    if not any(isinstance(handler, RunLogHandler) for handler in logger.handlers):
        logger.addHandler(RunLogHandler())
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
