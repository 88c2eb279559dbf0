"""`realbogus simulate`: a simulated DIA survey with truth labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import RealBogusError
from .common import console, fail, progress_bar


def simulate(
    out: Annotated[
        Path, typer.Option(help="Output dataset directory (must not exist unless --overwrite).")
    ],
    survey: Annotated[
        str,
        typer.Option(
            help="Survey preset: rubin, ztf, rubin-small, ztf-small, or one registered with realbogus.sim.register_preset."
        ),
    ] = "rubin",
    visits: Annotated[
        int, typer.Option(help="Science visits to simulate (grouped into fields).")
    ] = 20,
    seed: Annotated[
        int, typer.Option(help="Survey seed: the same seed gives the same dataset.")
    ] = 1,
    config: Annotated[
        Path | None, typer.Option(help="YAML file overriding the preset (nested keys).")
    ] = None,
    save_images: Annotated[
        bool, typer.Option("--save-images", help="Also write FITS images + catalogs per visit.")
    ] = False,
    workers: Annotated[int | None, typer.Option(help="Processes (default: all cores).")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output directory.")
    ] = False,
) -> None:
    """Simulate a DIA survey and write a labelled stamp dataset with DIR/preview.png."""
    import json

    from ..sim import load_config, simulate_survey

    try:
        cfg = load_config(config, survey=survey)
        with progress_bar(f"simulating {cfg.name} visits") as progress:
            path = simulate_survey(
                cfg,
                n_visits=visits,
                seed=seed,
                out=out,
                workers=workers,
                save_images=save_images,
                overwrite=overwrite,
                progress=progress,
            )
    except RealBogusError as exc:
        raise fail(exc) from exc
    summary = json.loads((path / "summary.json").read_text())
    console.print(
        f"{summary['n_detections']} detections ({summary['n_real']} Real, {summary['n_bogus']} Bogus) "
        f"from {summary['n_visits']} visits -> {path} (preview: {path / 'preview.png'})"
    )
