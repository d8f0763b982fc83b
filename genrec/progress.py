"""Progress of long loops: rich bars on a terminal, periodic lines everywhere else.

On a terminal :func:`progress_bar` yields a rich ``Progress``. When output is not a terminal
(nohup, CI, a Prefect worker) a live bar would print nothing useful, so it yields a
:class:`LineProgress` with the same ``add_task`` / ``update`` / ``advance`` calls, which
writes one line per task every ``interval`` seconds and a last line when the task finishes
or the loop ends. Lines go to the ``genrec.progress`` logger when logging is configured to
show it (the Prefect flows attach the run logger), otherwise to stderr.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

LOGGER = logging.getLogger("genrec.progress")
LOG_INTERVAL_SECONDS = 30.0


@dataclass
class LineTask:
    description: str
    total: float | None
    status: str = ""
    completed: float = 0.0
    started: float = field(default_factory=time.monotonic)
    last_line: float = field(default_factory=time.monotonic)
    finished: bool = False


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def emit_line(line: str) -> None:
    """To the ``genrec.progress`` logger if something shows its INFO records, else to stderr."""
    if LOGGER.isEnabledFor(logging.INFO) and LOGGER.hasHandlers():
        LOGGER.info(line)
    else:
        print(line, file=sys.stderr, flush=True)


class LineProgress:
    """The part of ``rich.progress.Progress`` genrec's loops use, reported as periodic text lines."""

    def __init__(self, interval: float = LOG_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self.tasks: list[LineTask] = []

    def add_task(self, description: str, total: float | None = None, status: str = "", **_: object) -> int:
        self.tasks.append(LineTask(description, total, status))
        return len(self.tasks) - 1

    def update(self, task_id: int, *, advance: float | None = None, status: str | None = None, **_: object) -> None:
        task = self.tasks[task_id]
        if advance:
            task.completed += advance
        if status is not None:
            task.status = status
        now = time.monotonic()
        done = task.total is not None and task.completed >= task.total
        if done or now - task.last_line >= self.interval:
            self.report(task, now)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def report(self, task: LineTask, now: float) -> None:
        elapsed = now - task.started
        if task.total:
            share = task.completed / task.total
            line = f"{task.description}: {task.completed:g}/{task.total:g} ({share:.0%}), {format_seconds(elapsed)}"
            if 0 < share < 1:
                line += f", ~{format_seconds(elapsed * (1 - share) / share)} left"
        else:
            line = f"{task.description}: {task.completed:g} done, {format_seconds(elapsed)}"
        if task.status:
            line += f"  {task.status}"
        task.last_line = now
        task.finished = task.total is not None and task.completed >= task.total
        emit_line(line)

    def close(self) -> None:
        """A last line for every task that stopped before its total (early stopping, an error)."""
        now = time.monotonic()
        for task in self.tasks:
            if not task.finished:
                self.report(task, now)


@contextmanager
def progress_bar(enabled: bool = True, interval: float = LOG_INTERVAL_SECONDS) -> Iterator[Progress | LineProgress]:
    """Yield a progress reporter with a free-text ``status`` field (loss, validation metric, ...).

    A rich bar when stdout is a terminal, else a :class:`LineProgress` writing a line every
    ``interval`` seconds; with ``enabled=False`` a disabled rich bar that shows nothing.
    """
    if enabled and not Console().is_terminal:
        lines = LineProgress(interval)
        try:
            yield lines
        finally:
            lines.close()
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, disable=not enabled, transient=False) as progress:
        yield progress
