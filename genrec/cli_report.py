"""``genrec report RUN_DIR``: render report.html for a run directory (registered on the app in ``genrec.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genrec.cli_console import console, fail


def report(
    run_dir: Annotated[Path, typer.Argument(help="a run directory (config.json, recommendations.parquet, ...)")],
) -> None:
    """Write RUN_DIR/report.html: the run, ranking metrics and plots, each user's images and descriptions."""
    from genrec.evaluation.report import write_report
    from genrec.evaluation.run_contents import RunDirectoryError

    try:
        path = write_report(run_dir)
    except RunDirectoryError as err:
        raise fail(str(err)) from None
    console.print(f"wrote {path}", soft_wrap=True)  # one line: the path stays copyable
