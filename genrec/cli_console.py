"""What every ``genrec`` command prints to, and how it stops on bad input.

Below genrec.cli and the command modules (cli_encode, cli_run, cli_describe, cli_report),
which all import it.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

console = Console()


def fail(message: str) -> typer.Exit:
    # escaped: messages quote user paths and shapes such as "[n_items, D]", which are not rich markup;
    # soft-wrapped: the terminal folds long lines, rich would break a path in two
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)
