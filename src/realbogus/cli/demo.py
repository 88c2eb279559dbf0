"""`realbogus demo`: simulate, score, evaluate and report on a small survey."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import RealBogusError
from .common import console, fail, progress_bar


def demo(
    out: Annotated[Path, typer.Option(help="Output directory (replaced if it exists).")] = Path(
        "realbogus-demo"
    ),
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain", help="Also simulate a training survey and train a model on the spot."
        ),
    ] = False,
    model: Annotated[
        str, typer.Option(help="Model to score with (ignored with --retrain).")
    ] = "rubin-v0.1",
    visits: Annotated[int, typer.Option(help="Visits of the simulated survey to score.")] = 6,
    seed: Annotated[
        int, typer.Option(help="Survey seed (the default was never used to build a model).")
    ] = 20261126,
    workers: Annotated[
        int | None, typer.Option(help="Processes for the simulation (default: all cores).")
    ] = None,
) -> None:
    """Simulate a small survey, score it with rubin-v0.1, evaluate it and write a report."""
    from ..workflows.demo import run_demo

    bar_context = progress_bar("demo")
    try:
        with bar_context as progress:
            result = run_demo(
                out,
                model=model,
                visits=visits,
                seed=seed,
                retrain=retrain,
                workers=workers,
                stage=lambda text: console.print(f"[bold]>[/] {text}"),
                progress=progress,
            )
    except RealBogusError as exc:
        raise fail(exc) from exc
    overall = result.metrics["populations"]["overall"] or {}
    requirement = result.metrics["populations"]["requirement"] or {}

    def window(summary: dict) -> str:
        w = summary.get("window")
        return f"[{w['low']:.3f}, {w['high']:.3f}]" if w else "none: the requirement is not met"

    console.print(
        f"\n[bold]{result.n_detections} simulated detections scored with {result.model_version}[/]\n"
        f"  SNR > 5:        AUC {overall.get('auc', float('nan')):.4f}, purity {overall.get('purity_at_cutoff', float('nan')):.3f} "
        f"and completeness {overall.get('completeness_at_cutoff', float('nan')):.3f} at the cutoff, "
        f"requirement window {window(overall)}\n"
        f"  SNR 5.5 - 6.5:  requirement window {window(requirement)}\n"
        f"  report: {result.report}\n  scores: {result.scores}\n  data:   {result.out / 'data'} (preview.png)"
    )
