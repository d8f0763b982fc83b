"""One writer per run directory: :class:`RunLock`, held by the process that runs a run, for the whole run.

Two runs writing into one directory interleave their outputs (one run's images, the other's
tables) and each may report the other's work as its own. The lock makes the second run fail at
once, naming the directory and the run that holds it::

    with RunLock(run_dir) as lock:   # refused at once if another process holds it
        ...every stage of the run...

How it works, and why:

- The lock is the operating system's (``flock`` on ``<run_dir>/.genrec-run.lock``), not the
  file's existence: the kernel releases it when the holding process dies, however it dies
  (``kill -9``, OOM, power loss on a local disk), so a killed run never leaves a lock that blocks
  the next one. The file also records the holder (pid, host, start time, command, token) for the
  refusal message; a clean release empties it, so a record found on taking a free lock is a
  run that was killed: it is taken over (:attr:`RunLock.took_over`, and a warning).
- The lock belongs to a *process*, and is re-entrant within it, from any thread: a stage that
  takes it again inside the run (a Prefect task running in a thread of the flow's process)
  enters at once and leaves the lock held until the outermost holder exits. Threads of one
  process are therefore one writer; two runs started as threads of one process are not told apart.
- Another process is refused, unless it joins the run: a worker process (a Ray task, a process
  pool) that was handed the holder's :attr:`RunLock.token` enters with ``RunLock(run_dir, token=...)``
  as part of the holder's run, without taking the lock (it cannot: the holder has it) and
  without releasing it. So the process that coordinates a run takes the lock for the whole run
  and passes its token to the stages it sends elsewhere; a stage never depends on a worker
  process's lifetime to keep the lock.
- A forked child does not inherit the lock: it closes its copy of the lock's descriptor (so a
  fork that outlives a killed parent does not keep the lock held) and is another process.

POSIX only (``fcntl``). On a network file system the lock is as good as the file system's own
``flock`` (NFSv4 and Lustre: cluster-wide; some FUSE file systems: none).
"""

from __future__ import annotations

import datetime
import fcntl
import json
import logging
import os
import socket
import sys
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from genrec.config import ConfigError, capped
from genrec.io import io_errors

logger = logging.getLogger(__name__)

LOCK_FILE = ".genrec-run.lock"  # in the run directory; hidden, so listings of outputs leave it out


class RunDirectoryLockedError(ConfigError):
    """Another run (another process) is writing into the run directory."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a run directory's lock, as its lock file records it."""

    pid: int
    host: str
    started: str  # local time, ISO 8601 to the second
    command: str
    token: str  # what a worker process of the same run passes to join it

    @classmethod
    def this_process(cls, token: str) -> Holder:
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        command = capped(" ".join(sys.argv) or sys.executable).replace("\n", " ")
        return cls(os.getpid(), socket.gethostname(), started, command, token)

    def running(self) -> bool | None:
        """Whether the holding process still runs; None for a process on another host (it cannot be asked)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)  # signal 0: only asks whether the pid exists
        except ProcessLookupError:
            return False
        except PermissionError:  # it exists, under another user
            return True
        return True

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started}: {self.command}"


@dataclass
class _Held:
    """This process's hold on one directory's lock."""

    descriptor: int
    holder: Holder
    depth: int  # how many RunLock contexts of this process are inside it


_HELD: dict[Path, _Held] = {}  # run directory (resolved) -> this process's hold
_GUARD = threading.Lock()  # guards _HELD: threads of one process share its holds


def _forget_inherited_locks() -> None:
    # A forked child shares the parent's open file description, so closing its copy is safe (the
    # parent keeps the lock) and needed (a child that outlives its killed parent would keep it held).
    # LOCK_UN here would release the parent's lock: never called.
    for held in _HELD.values():
        os.close(held.descriptor)
    _HELD.clear()


os.register_at_fork(after_in_child=_forget_inherited_locks)


def _read_holder(descriptor: int) -> Holder | None:
    """The holder the lock file records; None for an empty file (released cleanly) or an unreadable record."""
    data = os.pread(descriptor, 1 << 16, 0)
    try:
        return Holder(**json.loads(data)) if data else None
    except (ValueError, TypeError):  # half written by a holder that is starting, or not ours
        return None


class RunLock:
    """Hold ``run_dir`` for one run: a context manager, re-entrant within a process (see the module docstring).

    Args:
        run_dir: the run directory; created if missing.
        token: a run's :attr:`token`; a process given the holder's token joins its run instead of
            being refused (a worker of the same run).

    Raises (on entering):
        RunDirectoryLockedError: another process holds the directory; the message names the directory,
            the holder (pid, host, start time, command) and what to do.
        UnwritablePathError: the directory or its lock file cannot be created.
    """

    def __init__(self, run_dir: str | Path, token: str | None = None):
        self.run_dir = Path(run_dir)
        self.token = token or uuid.uuid4().hex
        self.took_over: Holder | None = None  # the killed run whose lock this one took over, if any
        self._joined: list[bool] = []  # one per open context of this object: joined another process's run?

    def __enter__(self) -> RunLock:
        with io_errors(self.run_dir):
            self.run_dir.mkdir(parents=True, exist_ok=True)
        key = self.run_dir.resolve()
        with _GUARD:
            held = _HELD.get(key)
            if held is not None:  # this process already runs this directory (another thread, an inner stage)
                held.depth += 1
                self.token = held.holder.token
                self._joined.append(False)
                return self
            with io_errors(key / LOCK_FILE):
                descriptor = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(descriptor)
                os.close(descriptor)
                if holder is not None and holder.token == self.token:
                    self._joined.append(True)
                    return self
                raise RunDirectoryLockedError(self._refusal(holder)) from None
            except BaseException:
                os.close(descriptor)
                raise
            self.took_over = _read_holder(descriptor)  # a record left behind: its run died without releasing
            holder = Holder.this_process(self.token)
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, json.dumps(asdict(holder)).encode(), 0)
            _HELD[key] = _Held(descriptor, holder, 1)
            self._joined.append(False)
        if self.took_over is not None:
            logger.warning("%s: took over the lock of a run that ended without releasing it (%s)",
                           self.run_dir, self.took_over.describe())  # fmt: skip
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._joined.pop():
            return
        key = self.run_dir.resolve()
        with _GUARD:
            held = _HELD[key]
            held.depth -= 1
            if held.depth == 0:
                os.ftruncate(held.descriptor, 0)  # an empty record: released cleanly, nothing to take over
                fcntl.flock(held.descriptor, fcntl.LOCK_UN)
                os.close(held.descriptor)
                del _HELD[key]

    def _refusal(self, holder: Holder | None) -> str:
        if holder is None:
            return (
                f"{self.run_dir}: another process holds this run directory's lock ({LOCK_FILE}; it recorded no "
                "holder yet); wait for that run to finish, or give another run directory"
            )
        if holder.running() is False:  # the pid is gone, yet the lock is held: a process it started keeps it
            return (
                f"{self.run_dir}: locked by a run whose process has ended ({holder.describe()}), but a process it "
                f"started still holds {LOCK_FILE}; end that process (fuser {self.run_dir / LOCK_FILE}) and rerun"
            )
        return (
            f"{self.run_dir}: another run is writing into this directory ({holder.describe()}); wait for it to "
            "finish, or give another run directory"
        )
