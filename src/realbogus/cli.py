"""The `realbogus` command: parses arguments, calls the library, shows progress. No logic here."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="realbogus",
    help=(
        "Reliability (real/bogus) scores for difference-imaging detections, after Rubin's "
        "DMTN-337: score images, stamp datasets and alert packets; simulate surveys; train, "
        "evaluate and compare model versions."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)


@app.command()
def demo() -> None:
    """Simulate a small survey, score it with rubin-v0.1, evaluate it and write a report."""
    console.print(
        "[bold yellow]realbogus demo is not available yet[/]: it needs the trained built-in model "
        "rubin-v0.1, which no release ships so far. `realbogus --help` lists what works today."
    )
    raise typer.Exit(code=2)


def main() -> None:  # pragma: no cover - console-script entry
    app()
