"""Faults a run must survive: Ctrl-C and a Prefect server that stops answering end the command at once, with
one line and a resumable run directory (issue 28)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genrec import temporary_server
from tests.conftest import REPO_ROOT, write_toy_latest


def test_a_server_that_stops_answering_is_noticed_within_seconds(monkeypatch):
    import http.server
    import socket
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # the name http.server calls
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    with socket.socket() as probe:  # a port nothing listens on yet: a server still booting
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(temporary_server, "api_url", lambda: f"http://127.0.0.1:{port}/api")
    lost: list[str] = []
    stop = temporary_server.watch_api(lost.append, interval=0.2)
    time.sleep(1.0)
    assert lost == []  # not yet answered: booting, not lost
    server = http.server.HTTPServer(("127.0.0.1", port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    time.sleep(1.0)
    server.shutdown()
    server.server_close()
    start = time.monotonic()
    while not lost and time.monotonic() - start < 10:
        time.sleep(0.05)
    stop.set()
    assert lost == [f"http://127.0.0.1:{port}/api"]  # how soon: benchmarks/RESULTS.md, "Faults a run survives"


@pytest.mark.slow
def test_ctrl_c_during_training_stops_at_once_with_one_line_and_the_rerun_resumes(tmp_path: Path):
    data, out = write_toy_latest(tmp_path / "toy", n_users=40, n_items=30, per_user=12), tmp_path / "run"
    long_fit = ["--set", "epochs=100000", "--set", "patience=100000", "--set", "max_len=8", "--set", "hidden=16"]
    command = [sys.executable, "-m", "genrec.cli", "run", "--dataset", str(data), "--ranker", "sasrec", *long_fit]
    command += ["--users", "1,2", "--text-generator", "template", "--out", str(out), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "300"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "users.json").is_file():
        assert process.poll() is None and time.monotonic() < deadline, "the run did not start"
        time.sleep(0.1)
    time.sleep(5)  # past the encode stage, inside the endless fit
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)  # a bound on the wait, not a timing under test
    assert process.returncode == 130, stdout + stderr
    assert f"interrupted: the outputs finished so far are kept in {out}; run the same command again" in " ".join(
        stdout.split()
    )
    assert "Traceback" not in stdout + stderr
    assert (out / "users.json").is_file() and not (out / "model" / "model.safetensors").exists()
    # the lock died with the process: the same directory takes a new run at once
    quick = [c if c != "epochs=100000" else "epochs=1" for c in command]
    done = subprocess.run(quick, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_a_second_run_into_a_held_run_directory_is_refused_at_once_naming_the_holder(tmp_path: Path):
    from typer.testing import CliRunner

    from genrec.cli import app

    out = tmp_path / "run"
    holder = (
        "import sys, time\nfrom genrec.run_lock import RunLock\n"
        "with RunLock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen([sys.executable, "-c", holder, str(out)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        data = write_toy_latest(tmp_path / "toy")
        args = ["run", "--dataset", str(data), "--ranker", "popular", "--users", "1", "--out", str(out)]
        result = CliRunner().invoke(app, [*args, "--text-generator", "template", "--no-progress"])
    finally:
        process.kill()
        process.wait()
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "another run is writing into this directory" in text
    assert f"pid {process.pid}" in text and "Traceback" not in result.output
    assert not (out / "users.json").exists()  # nothing of the refused run was written
