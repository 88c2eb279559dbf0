"""The `realbogus` command: parses arguments, calls the library, shows progress. No logic here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

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


# --- simulate (realbogus.sim) -------------------------------------------------------------------
@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Output dataset directory (must not exist unless --overwrite).")],
    survey: Annotated[str, typer.Option(help="Survey preset: rubin, ztf, rubin-small or ztf-small.")] = "rubin",
    visits: Annotated[int, typer.Option(help="Science visits to simulate (grouped into fields).")] = 20,
    seed: Annotated[int, typer.Option(help="Survey seed: the same seed gives the same dataset.")] = 1,
    config: Annotated[Optional[Path], typer.Option(help="YAML file overriding the preset (nested keys).")] = None,
    save_images: Annotated[bool, typer.Option("--save-images", help="Also write FITS images + catalogs per visit.")] = False,
    workers: Annotated[Optional[int], typer.Option(help="Processes (default: all cores).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output directory.")] = False,
) -> None:
    """Simulate a DIA survey and write a labelled stamp dataset with DIR/preview.png."""
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from .errors import RealBogusError
    from .sim import load_config, simulate_survey

    try:
        cfg = load_config(config, survey=survey)
        with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task(f"simulating {cfg.name}", total=visits)
            path = simulate_survey(
                cfg, n_visits=visits, seed=seed, out=out, workers=workers,
                save_images=save_images, overwrite=overwrite,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except RealBogusError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from exc
    summary = json.loads((path / "summary.json").read_text())
    console.print(
        f"{summary['n_detections']} detections ({summary['n_real']} Real, {summary['n_bogus']} Bogus) "
        f"from {summary['n_visits']} visits -> {path} (preview: {path / 'preview.png'})"
    )


# --- end simulate ---------------------------------------------------------------------------------


def main() -> None:  # pragma: no cover - console-script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
