"""Prefect's temporary server, for a run with no Prefect server configured (``genrec demo``).

With no ``PREFECT_API_URL``, Prefect starts a temporary local server for the process (a subprocess
over the SQLite database in ``PREFECT_HOME``, ``~/.prefect``) and stops it at exit; the run is
recorded there and nowhere else. For that case :func:`no_server_settings` applies, for this
process only and unless set by the user:

- no flow-run heartbeats: they let a server notice a crashed run, and a server that dies with the
  process has nothing to notice (each flow run also waits up to a second for the heartbeat thread);
- a longer start-up limit for the temporary server (120 s instead of Prefect's 20 s): its first
  start creates and migrates the database, which ran past 20 s on this 2-core machine under load;
- no telemetry from the temporary server (``PREFECT_SERVER_ANALYTICS_ENABLED``): the demo runs
  offline, where the server's telemetry call only fails and logs an error.

:func:`start_temporary_server` starts that server in a background thread, so that its subprocess
boots while the pipeline's modules import (each takes ~15 s; benchmarks/RESULTS.md, "genrec demo").
:func:`watch_api` notices a server that stops answering during a run (seconds, where Prefect's client
retries for minutes). This module imports only Prefect's settings: importing it starts nothing heavy.
"""

from __future__ import annotations

import contextvars
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prefect.settings import (
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    PREFECT_SERVER_ANALYTICS_ENABLED,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    get_current_settings,
    temporary_settings,
)

TEMPORARY_SERVER_STARTUP_SECONDS = 120


def uses_temporary_server() -> bool:
    """True when no Prefect server is configured (no ``PREFECT_API_URL``): Prefect starts a temporary one."""
    return not get_current_settings().api.url


def _set_by_user(section: Any, name: str) -> bool:
    """Whether setting ``name`` of a section of Prefect's settings was set (environment, profile, prefect.toml)."""
    return name in section.model_fields_set


@contextmanager
def no_server_settings() -> Iterator[None]:
    """The settings of a run against Prefect's temporary server (see the module docstring); else no change."""
    updates: dict[Any, Any] = {}
    settings = get_current_settings()
    if uses_temporary_server():
        if not _set_by_user(settings.flows, "heartbeat_frequency"):
            updates[PREFECT_FLOWS_HEARTBEAT_FREQUENCY] = None
        if not _set_by_user(settings.server.ephemeral, "startup_timeout_seconds"):
            updates[PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS] = TEMPORARY_SERVER_STARTUP_SECONDS
        if not _set_by_user(settings.server, "analytics_enabled"):
            updates[PREFECT_SERVER_ANALYTICS_ENABLED] = False
    with temporary_settings(updates=updates):
        yield


def start_temporary_server() -> threading.Thread | None:
    """Start Prefect's temporary server in a thread when no server is configured; else None.

    Join the thread before the first flow run: Prefect's client marks the server running before it
    answers, and would otherwise call it too early. A failed start is left to the client, which
    starts the server again on the first flow run and raises what went wrong there.
    """
    if not uses_temporary_server():
        return None

    def start() -> None:
        from prefect.server.api.server import SubprocessASGIServer

        try:
            SubprocessASGIServer().start()
        except Exception:
            return

    thread = threading.Thread(target=contextvars.copy_context().run, args=(start,), name="prefect-server-start")
    thread.start()
    return thread


def api_url() -> str | None:
    """The API the flow runs of this process talk to: the configured one, or the temporary server's once started."""
    configured = get_current_settings().api.url
    if configured:
        return str(configured)
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    return server.api_url if server.running else None


def stop_temporary_server() -> None:
    """Stop the temporary server if this process started one (exit paths that skip Prefect's own clean-up)."""
    module = sys.modules.get("prefect.server.api.server")  # not imported: this process started no server
    if module is not None and uses_temporary_server():
        server = module.SubprocessASGIServer()
        if server.running:
            server.stop()


def watch_api(on_lost: Callable[[str], None], interval: float = 1.0, misses: int = 2) -> threading.Event:
    """Call ``on_lost(url)`` from a daemon thread once the Prefect API, having answered, fails ``misses`` health
    checks in a row.

    Prefect's client retries a lost server for minutes before a flow run gives up; this notices it
    within ``interval * misses`` seconds (plus the check's own timeout). Set the returned event to stop watching.
    """
    import httpx

    stopped = threading.Event()

    def watch() -> None:
        failed, answered = 0, False
        while not stopped.wait(interval):
            url = api_url()
            if url is None:
                continue
            try:
                httpx.get(f"{url}/health", timeout=interval).raise_for_status()
                failed, answered = 0, True
            except httpx.HTTPError:
                failed += 1  # counted once the server has answered: a booting server is not a lost one
                if answered and failed >= misses and not stopped.is_set():
                    on_lost(url)
                    return

    threading.Thread(target=watch, name="prefect-api-watch", daemon=True).start()
    return stopped
