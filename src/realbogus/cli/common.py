"""What every command shares: the error console, progress bars, the one way to fail."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["console", "fail", "progress_bar", "warnings_shown"]

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


@contextlib.contextmanager
def warnings_shown() -> Iterator[list]:
    """Print each RealBogusWarning raised in the block as one 'warning:' line (after the block)."""
    from ..errors import RealBogusWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RealBogusWarning)
        try:
            yield caught
        finally:
            for warning in caught:
                if issubclass(warning.category, RealBogusWarning):
                    console.print(f"[bold yellow]warning:[/] {warning.message}", soft_wrap=True)


def fail(error: Exception) -> typer.Exit:
    """Print a library error and return the exit to raise."""
    console.print(f"[bold red]error:[/] {error}")
    return typer.Exit(code=1)
