"""genrec.run_lock: one writer per run directory, across processes; re-entrant in one; stale locks taken over."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from genrec.config import ConfigError
from genrec.io import UnwritablePathError
from genrec.run_lock import LOCK_FILE, RunDirectoryLockedError, RunLock

REPO_ROOT = Path(__file__).resolve().parents[1]
# A second process that takes the lock, prints its token, then waits until its stdin closes.
HOLD = """
import sys
from genrec.run_lock import RunLock
with RunLock(sys.argv[1]) as lock:
    print(lock.token, flush=True)
    sys.stdin.read()
"""


def hold_in_another_process(run_dir: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir), "--users", "1,2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    return holder, holder.stdout.readline().strip()


def test_a_second_process_is_refused_at_once_naming_the_directory_and_the_holder(tmp_path: Path):
    run_dir = tmp_path / "run"
    holder, _ = hold_in_another_process(run_dir)
    try:
        start = time.perf_counter()
        with pytest.raises(RunDirectoryLockedError) as err, RunLock(run_dir):
            pass
        assert time.perf_counter() - start < 1, "refused at once, not after a wait"
        message = str(err.value)
        assert message.startswith(f"{run_dir}: another run is writing into this directory (pid {holder.pid} on ")
        assert "started 20" in message
        assert message.endswith("--users 1,2); wait for it to finish, or give another run directory")
        assert "\n" not in message and isinstance(err.value, ConfigError)
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    with RunLock(run_dir) as lock:  # released cleanly: nothing to take over
        assert lock.took_over is None
    assert (run_dir / LOCK_FILE).read_text() == ""


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path: Path):
    run_dir = tmp_path / "run"
    holder, _ = hold_in_another_process(run_dir)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    with RunLock(run_dir) as lock:
        assert lock.took_over is not None and lock.took_over.pid == holder.pid
        assert lock.took_over.running() is False
        assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_a_worker_process_given_the_runs_token_joins_it(tmp_path: Path):
    run_dir = tmp_path / "run"
    holder, token = hold_in_another_process(run_dir)
    try:
        with RunLock(run_dir, token=token) as joined:  # e.g. a Ray task of the holder's run
            assert joined.token == token
        with pytest.raises(RunDirectoryLockedError), RunLock(run_dir, token="another-run"):
            pass
        with RunLock(run_dir, token=token):  # leaving the joined context released nothing
            pass
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_threads_of_the_holding_process_reenter_without_deadlock(tmp_path: Path):
    run_dir = tmp_path / "run"
    entered = []

    def stage() -> None:  # a Prefect task in a thread of the flow's process
        with RunLock(run_dir) as inner, RunLock(run_dir):
            entered.append(inner.token)

    with RunLock(run_dir) as outer:
        threads = [threading.Thread(target=stage) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert entered == [outer.token] * 4
        assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == os.getpid()  # still held by the run
    assert (run_dir / LOCK_FILE).read_text() == ""  # the outermost exit released it


def _try_lock(run_dir: str, results) -> None:
    try:
        with RunLock(run_dir):
            results.put("entered")
    except RunDirectoryLockedError as err:
        results.put(str(err))


def test_a_forked_child_is_another_process(tmp_path: Path):
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    with RunLock(tmp_path / "run"):
        child = context.Process(target=_try_lock, args=(str(tmp_path / "run"), results))
        child.start()
        child.join(timeout=30)
    assert "another run is writing into this directory" in results.get(timeout=5)


def test_a_run_directory_under_a_file_is_one_line(tmp_path: Path):
    (tmp_path / "FILE").write_text("x")
    with pytest.raises(UnwritablePathError, match="FILE is a file, not a directory"), RunLock(tmp_path / "FILE" / "r"):
        pass
