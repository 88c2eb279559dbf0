"""`realbogus evaluate`: model versions side by side on a labelled dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..errors import RealBogusError
from .common import console, fail


def evaluate_command(
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            help="Model package (directory, .zip or built-in name); repeat to compare several.",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Report directory to write: metrics.json, report.html, figures/, curves/."
        ),
    ],
    data: Annotated[
        Path | None,
        typer.Option(
            help="Labelled stamp dataset directory (realbogus dataset); may be left out with "
            "--alerts for a report of real alerts alone."
        ),
    ] = None,
    n_boot: Annotated[
        int, typer.Option(help="Bootstrap resamples for the 95 % intervals (0 = none).")
    ] = 200,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    alerts: Annotated[
        Path | None,
        typer.Option(
            help="Folder of Rubin or ZTF alert packets carrying the survey's own score: adds a "
            "real-alerts section (ours vs theirs, ROC, asteroid recall, disagreement galleries)."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing report directory.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Evaluate on data of another survey or pixel unit than a model's card states.",
        ),
    ] = False,
) -> None:
    """Evaluate model versions side by side: requirement window, P = C crossing, slices, report."""
    import warnings

    from ..errors import RealBogusWarning
    from ..workflows.evaluate import evaluate_packages

    try:
        with (
            Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
            ) as bar,
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always", RealBogusWarning)
            tasks: dict[str, int] = {}

            def update(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            labelled = {} if data is None else {"n_boot": n_boot, "seed": seed}
            result = evaluate_packages(
                model,
                data,
                out,
                overwrite=overwrite,
                progress=update,
                alerts=alerts,
                force=force,
                **labelled,
            )
    except RealBogusError as exc:
        raise fail(exc) from exc
    if data is None:
        _print_alerts(result.metrics["alerts"])
        console.print(f"report -> {result.report}")
        return
    table = Table(title="requirement window (purity >= 0.95, completeness >= 0.90)")
    for column in (
        "model",
        "population",
        "Real/Bogus",
        "window",
        "P = C (threshold: value)",
        "AUC",
    ):
        table.add_column(column)
    for name, entry in result.metrics["models"].items():
        for pop, s in entry["populations"].items():
            if s is None:
                table.add_row(name, pop, "-", "not computed", "-", "-")
                continue
            win, cross = s["window"], s["crossing"]
            table.add_row(
                name,
                pop,
                f"{s['n_real']}/{s['n_bogus']}",
                "none: not met" if win is None else f"[{win['low']:.3f}, {win['high']:.3f}]",
                "-" if cross is None else f"{cross['threshold']:.3f}: {cross['value']:.3f}",
                "-" if s["auc"] is None else f"{s['auc']:.3f}",
            )
    console.print(table)
    for verdict in result.metrics.get("summary", []):
        console.print(verdict["text"], markup=False)
    n_warn = sum(issubclass(w.category, RealBogusWarning) for w in caught)
    if result.metrics["warnings"]:
        console.print(
            f"[yellow]{len(result.metrics['warnings'])} degenerate slice(s)/population(s)[/]: see 'warnings' in metrics.json"
        )
    elif n_warn:
        console.print(f"[yellow]{n_warn} warning(s)[/]")
    console.print(f"report -> {result.report}")


def _print_alerts(alerts: dict) -> None:
    """Our scores against the survey's own, one row per model."""
    table = Table(title=f"real alerts: {alerts['source']} ({alerts['n_failed']} not scored)")
    for column in ("model", "alerts", "survey score", "AUC", "Spearman", "asteroid recall"):
        table.add_column(column)
    for name, c in alerts["models"].items():
        ours = c["asteroids"]["ours"]
        auc, rho = c["auc"], c["spearman"]
        table.add_row(
            name,
            str(c["n"]),
            f"{c['survey']} {c['survey_score']}",
            "-" if auc is None else f"{auc:.3f}",
            "-" if rho is None else f"{rho:.3f}",
            f"{ours['passing']} of {ours['n']}",
        )
    console.print(table)
