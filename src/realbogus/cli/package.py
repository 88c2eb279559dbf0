"""`realbogus package ...`: create packages, fit a condition correction, Rubin interchange."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import RealBogusError
from .common import console, fail, progress_bar

package_app = typer.Typer(
    help="Create model packages and move them to and from Rubin's layout.", no_args_is_help=True
)


@package_app.command("init")
def package_init(
    out: Annotated[Path, typer.Argument(help="Package directory (or .zip) to create.")],
    stamp_size: Annotated[int, typer.Option(help="Stamp side in pixels.")] = 51,
    seed: Annotated[int, typer.Option(help="Torch seed for the random weights.")] = 0,
) -> None:
    """Write a randomly initialised, untrained package (for tests and as a training start)."""
    from ..model.package import init_package

    try:
        init_package(out, stamp_size=stamp_size, seed=seed)
    except RealBogusError as exc:
        raise fail(exc) from exc
    console.print(f"wrote untrained package ({stamp_size} px, seed {seed}) -> {out}")


@package_app.command("fit-conditions")
def package_fit_conditions(
    model: Annotated[
        str,
        typer.Argument(
            help="Model package whose scores to correct: directory, .zip or built-in name."
        ),
    ],
    data: Annotated[
        Path,
        typer.Argument(
            help="Labelled simulation with cloudy visits (realbogus dataset) to fit on."
        ),
    ],
    out: Annotated[Path, typer.Argument(help="Package directory (or .zip) to write.")],
    version: Annotated[str, typer.Option(help="Version of the new package (its parent is MODEL).")],
    knee: Annotated[
        float,
        typer.Option(help="Template/difference noise ratio below which scores are corrected."),
    ] = 0.1,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing OUT.")] = False,
) -> None:
    """Fit an observing-condition correction (thick cloud) of MODEL's scores on a simulation.

    Stamps whose template noise is below KNEE times their difference noise come from exposures
    far shallower than their template (cloud); there a PSF-shaped change of a star is most often
    a calibration residual. The correction (three numbers in the card) is fitted on DATA's labels
    and leaves every other score unchanged (docs/real-data.md).
    """
    from ..model.package import load_package
    from ..workflows.conditions import condition_package

    try:
        with progress_bar("fitting the condition correction") as progress:
            path = condition_package(
                model, data, out, version=version, knee=knee, overwrite=overwrite, progress=progress
            )
        fit = load_package(path).card.conditions
    except RealBogusError as exc:
        raise fail(exc) from exc
    before, after = fit.fitted_on["log_loss"]
    console.print(
        f"wrote {path}: a {fit.cloud:+.3f}, b {fit.cloud_logit:+.3f}, s {fit.cloud_template_snr:+.3f} per decade below "
        f"{fit.knee:g} ({fit.fitted_on['rows_below_knee']} of {fit.fitted_on['rows']} rows); log-loss {before:.4f} -> {after:.4f}"
    )


@package_app.command("export-rubin")
def package_export_rubin(
    model: Annotated[str, typer.Argument(help="Model package: directory, .zip or built-in name.")],
    out: Annotated[
        Path, typer.Argument(help="Rubin package directory, or a .zip for the Butler payload.")
    ],
) -> None:
    """Export a package to Rubin's meas_transiNet layout (arch.py, checkpoint.pt, meta.yaml)."""
    from ..model.package import load_package
    from ..model.rubin import export_rubin

    try:
        export_rubin(load_package(model), out)
    except RealBogusError as exc:
        raise fail(exc) from exc
    console.print(f"exported {model} -> {out}")


@package_app.command("import-rubin")
def package_import_rubin(
    rubin: Annotated[
        Path, typer.Argument(help="Rubin package directory (*.pt + meta.yaml) or payload .zip.")
    ],
    out: Annotated[Path, typer.Argument(help="realbogus package directory (or .zip) to write.")],
    version: Annotated[
        str | None,
        typer.Option(
            help="Version of the imported model (default: the original's plus '-import'; never the original's)."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Name in the card (default: kept).")] = None,
    cutoff: Annotated[
        float | None,
        typer.Option(help="Cutoff to record (default: the exported card's, else 0.5)."),
    ] = None,
) -> None:
    """Import a Rubin meas_transiNet package (weights-only load; its arch.py is never run).

    A package exported by realbogus carries realbogus-card.json: its card (survey, pixel units,
    cutoff) is kept, or the import is refused when the checkpoint changed since.
    """
    from ..model.package import load_package
    from ..model.rubin import import_rubin

    try:
        path = import_rubin(rubin, out, name=name, version=version, cutoff=cutoff)
        card = load_package(path).card
    except RealBogusError as exc:
        raise fail(exc) from exc
    console.print(
        f"imported {rubin} -> {out}: version {card.version} (parent {card.parent}), "
        f"survey {card.model_survey}, pixel units {card.pixel_units}, cutoff {card.cutoff:g}"
    )
