"""Progress off a terminal: periodic lines instead of a bar that prints nothing."""

from __future__ import annotations

import logging

import pytest

from genrec.progress import LineProgress, progress_bar


@pytest.fixture(autouse=True)
def unconfigured_genrec_logger():
    """As in a fresh process: nothing shows genrec's INFO records (a flow test earlier in the same
    run attaches Prefect's run-log handler to the ``genrec`` logger and sets it to INFO)."""
    logger = logging.getLogger("genrec")
    handlers, level = logger.handlers[:], logger.level
    logger.handlers.clear()
    logger.setLevel(logging.NOTSET)
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_off_a_terminal_loops_report_lines(capsys: pytest.CaptureFixture[str]):
    # pytest captures stdout, so it is not a terminal: the reporter is LineProgress
    with progress_bar(True, interval=0.0) as bar:
        assert isinstance(bar, LineProgress)
        task = bar.add_task("images (tiny)", total=4, status="")
        bar.advance(task, 2)
        bar.update(task, advance=2, status="done")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("images (tiny): 2/4 (50%)") and "left" in lines[0]
    assert lines[-1].startswith("images (tiny): 4/4 (100%)") and lines[-1].endswith("done")
    assert len(lines) == 2  # a finished task is not reported again on exit


def test_lines_are_periodic_and_a_stopped_loop_gets_a_last_line(capsys: pytest.CaptureFixture[str]):
    with progress_bar(True, interval=3600.0) as bar:
        task = bar.add_task("training sasrec", total=200, status="")
        for _ in range(5):
            bar.update(task, advance=1, status="loss 1.0")
    (line,) = capsys.readouterr().err.splitlines()  # no line inside the interval, one when the loop ends
    assert line.startswith("training sasrec: 5/200 (2%)") and line.endswith("loss 1.0")


def test_lines_go_to_the_logger_when_it_is_shown(caplog: pytest.LogCaptureFixture, capsys):
    with caplog.at_level(logging.INFO, logger="genrec.progress"), progress_bar(True, interval=0.0) as bar:
        bar.advance(bar.add_task("ranking (popular)", total=1, status=""))
    assert [r.getMessage().split(",")[0] for r in caplog.records] == ["ranking (popular): 1/1 (100%)"]
    assert capsys.readouterr().err == ""


def test_disabled_progress_prints_nothing(capsys: pytest.CaptureFixture[str]):
    with progress_bar(False) as bar:
        bar.advance(bar.add_task("x", total=1, status=""))
    assert capsys.readouterr().err == ""
