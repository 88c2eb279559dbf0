"""`realbogus train`: train or fine-tune a model package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import RealBogusError
from .common import console, fail, progress_bar, warnings_shown


def train(
    data: Annotated[
        Path,
        typer.Option(
            help="Labelled stamp dataset directory (needs `label`; `field` groups the split)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Model package directory to write.")],
    from_: Annotated[
        str | None,
        typer.Option(
            "--from", help="Parent package to fine-tune from (directory, .zip or built-in name)."
        ),
    ] = None,
    epochs: Annotated[
        int, typer.Option(help="Maximum epochs (early stopping on validation loss).")
    ] = 30,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 128,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-4,
    weight_decay: Annotated[float, typer.Option(help="Adam weight decay.")] = 3.6e-2,
    lr_schedule: Annotated[
        str, typer.Option(help="constant, or cosine (lr down to lr/100 over --epochs).")
    ] = "constant",
    mask_augment: Annotated[
        float,
        typer.Option(
            help="Probability that a training stamp gets masked blocks, as flagged pixels in survey cutouts."
        ),
    ] = 0.0,
    rotations: Annotated[
        bool,
        typer.Option(
            help="Also train on quarter-turned stamps (all 8 orientations), not only mirrored ones."
        ),
    ] = False,
    patience: Annotated[
        int, typer.Option(help="Epochs without validation improvement before stopping.")
    ] = 5,
    seed: Annotated[
        int, typer.Option(help="Seed of split, order, flips, dropout and initialisation.")
    ] = 0,
    name: Annotated[str, typer.Option(help="Model name for the card.")] = "realbogus",
    version: Annotated[
        str | None,
        typer.Option(help="Version string for the card (default: derived from data and seed)."),
    ] = None,
    cutoff: Annotated[
        str,
        typer.Option(
            help="Cutoff for the card: a number, or auto (chosen on the validation split)."
        ),
    ] = "auto",
    preprocessing: Annotated[
        str | None,
        typer.Option(
            help="asinh-noise (default for new models: stamps in units of their own difference noise, depth- and unit-free), asinh (fixed scale) or none (raw pixels, Rubin's convention); fine-tuning keeps the parent's."
        ),
    ] = None,
) -> None:
    """Train a model package (or fine-tune one with --from); rerun the same command to resume."""
    from ..training.train import TrainConfig
    from ..training.train import train as run_training

    try:
        config = TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            lr_schedule=lr_schedule,
            mask_augment=mask_augment,
            rotations=rotations,
            patience=patience,
            seed=seed,
            preprocessing=preprocessing,
        )

        def show(report) -> None:
            mark = " [green]best[/]" if report.best else ""
            console.print(
                f"epoch {report.epoch + 1}: train loss {report.train_loss:.4f}, validation loss "
                f"{report.val_loss:.4f}, purity {report.val_purity:.3f}, completeness {report.val_completeness:.3f}{mark}"
            )

        with warnings_shown(), progress_bar("training") as progress:
            chosen = cutoff if cutoff == "auto" else float(cutoff)
            path = run_training(
                data,
                out,
                config=config,
                parent=from_,
                name=name,
                version=version,
                cutoff=chosen,
                on_epoch=show,
                progress=progress,
            )
    except RealBogusError as exc:
        raise fail(exc) from exc
    console.print(f"wrote {path}")
