"""`realbogus models`: the built-in and given model packages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..errors import RealBogusError
from .common import console, fail


def models(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Package directories or .zip files to list besides the built-in ones."),
    ] = None,
) -> None:
    """List built-in and given model packages: version, parent, cutoff, stamp size, pixel
    preprocessing and any observing-condition correction of the scores."""
    from ..model.package import builtin_models, load_package

    table = Table(title="realbogus model packages")
    for column in ("name", "version", "parent", "cutoff", "stamp px", "pixels", "source"):
        table.add_column(column, overflow="fold")
    sources = [(name, "built-in") for name in builtin_models()] + [
        (str(p), str(p)) for p in paths or []
    ]
    corrected: list[str] = []
    for ref, where in sources:
        try:
            card = load_package(ref).card
        except RealBogusError as exc:
            raise fail(exc) from exc
        table.add_row(
            card.name,
            card.version,
            card.parent or "-",
            f"{card.cutoff:.3f}",
            str(card.stamp_size),
            card.preprocessing,
            where,
        )
        if card.conditions is not None:
            corrected.append(
                f"{card.version} (template/difference noise ratio < {card.conditions.knee:g})"
            )
    if not sources:
        console.print(
            "no built-in model packages are installed yet; pass package paths to list them"
        )
    Console().print(table)
    if corrected:
        Console().print(
            "scores corrected for observing conditions (thick cloud): " + ", ".join(corrected)
        )
