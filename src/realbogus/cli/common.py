"""What every command shares: the error console, progress bars, the one way to fail."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["console", "fail", "progress_bar"]

console = Console(stderr=True, soft_wrap=True)


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator:
    """A rich progress bar; yields the library's `progress(done, total)` callback."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def fail(error: Exception) -> typer.Exit:
    """Print a library error and return the exit to raise."""
    console.print(f"[bold red]error:[/] {error}")
    return typer.Exit(code=1)
