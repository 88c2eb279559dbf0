"""The `realbogus` command: parses arguments, calls the library, shows progress. No logic here."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .errors import RealBogusError

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
package_app = typer.Typer(
    help="Create model packages and move them to and from Rubin's layout.", no_args_is_help=True
)
app.add_typer(package_app, name="package")
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


@app.command()
def models(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Package directories or .zip files to list besides the built-in ones."),
    ] = None,
) -> None:
    """List built-in and given model packages: version, parent, cutoff, stamp size, pixel
    preprocessing and any observing-condition correction of the scores."""
    from .package import builtin_models, load_package

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


@app.command()
def score(
    model: Annotated[
        str, typer.Option(help="Model package: a directory, a .zip, or a built-in name.")
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Score table to write: .parquet, .csv or .fits (by extension); with --scheduler, an output directory."
        ),
    ],
    data: Annotated[Path | None, typer.Option(help="A realbogus stamp dataset directory.")] = None,
    science: Annotated[Path | None, typer.Option(help="Science image (FITS).")] = None,
    template: Annotated[
        Path | None, typer.Option(help="Template image (FITS), warped to the science image.")
    ] = None,
    difference: Annotated[Path | None, typer.Option(help="Difference image (FITS).")] = None,
    catalog: Annotated[
        Path | None,
        typer.Option(help="Detections: Parquet/CSV/FITS with x, y (pixels) or ra, dec."),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Stamps per forward pass (default: the backend's best).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:i].")] = "auto",
    backend: Annotated[
        str, typer.Option(help="auto (torch on a GPU, else ONNX Runtime), torch or onnx.")
    ] = "auto",
    threads: Annotated[
        int | None,
        typer.Option(help="CPU cores to score on (default: all; per task with --scheduler)."),
    ] = None,
    int8: Annotated[
        bool,
        typer.Option(
            "--int8",
            help="Score with the int8 ONNX graph, if it stays within 0.01 of fp32 on check stamps from the input.",
        ),
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Score --data on Dask, one output part per input part, resumable: 'local' or tcp://HOST:PORT."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes of --scheduler local (default 1); for alert packets, decoding processes (default: one per core)."
        ),
    ] = None,
    write_alerts: Annotated[
        Path | None,
        typer.Option(
            "--write-alerts",
            help="With alert packets: a folder to write them back to, reliability filled in.",
        ),
    ] = None,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Alert packets: Avro container files, Confluent .msg files (Rubin, ZTF), or folders of them.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Score detections: alert packets (PATH...), a stamp dataset (--data), or FITS images plus a catalog.

    Exit status 1 when some alert packets failed (after writing the rest, each failure reported).
    """
    from .dataset import open_dataset
    from .images import stamps_from_files
    from .package import load_package
    from .scoring import Scorer, sample_check_stamps
    from .tables import write_table

    image_args = {
        "science": science,
        "template": template,
        "difference": difference,
        "catalog": catalog,
    }
    given = [k for k, v in image_args.items() if v is not None]
    if paths:
        if data is not None or given or scheduler is not None:
            console.print(
                "[bold red]error:[/] alert packets (PATH...) go alone, without --data, FITS images or --scheduler"
            )
            raise typer.Exit(code=2)
        _score_alert_files(
            paths,
            model=model,
            out=out,
            write_alerts=write_alerts,
            workers=workers,
            batch_size=batch_size,
            device=device,
            backend=backend,
            threads=threads,
        )
        return
    if (data is None) == (not given) or (given and len(given) != 4):
        console.print(
            "[bold red]error:[/] give alert packets (PATH...), --data DIR, or all of --science --template --difference --catalog"
        )
        raise typer.Exit(code=2)
    if (scheduler is not None or workers is not None) and data is None:
        console.print(
            "[bold red]error:[/] --scheduler and --workers score a stamp dataset: give --data DIR"
        )
        raise typer.Exit(code=2)
    if workers is not None and scheduler != "local":
        console.print("[bold red]error:[/] --workers sets the processes of --scheduler local")
        raise typer.Exit(code=2)
    try:
        package = load_package(model)
        if scheduler is not None:
            from .distributed import score_distributed

            dataset = open_dataset(data)
            check = sample_check_stamps(dataset) if int8 else None
            with progress_bar(f"scoring with {package.version} on {scheduler}") as progress:
                run = score_distributed(
                    dataset.path,
                    out,
                    package=package,
                    scheduler=scheduler,
                    workers=workers,
                    threads=threads,
                    backend=backend,
                    device=device,
                    batch_size=batch_size,
                    int8=int8,
                    check_stamps=check,
                    progress=progress,
                )
            console.print(
                f"scored {run.n_rows} detections in {len(run.scored) + len(run.skipped)} parts with {package.version} "
                f"({len(run.scored)} scored now, {len(run.skipped)} already done) -> {out}"
            )
            return
        if int8:
            check = (
                sample_check_stamps(open_dataset(data))
                if data is not None
                else stamps_from_files(size=package.card.stamp_size, **image_args)[1]
            )
        scorer = Scorer(
            package,
            batch_size=batch_size,
            device=device,
            backend=backend,
            threads=threads,
            int8=int8,
            check_stamps=check if int8 else None,
        )
        if scorer.int8_model is not None:
            console.print(
                f"int8 accepted: at most {scorer.int8_model.max_deviation:.4f} from fp32 on {scorer.int8_model.n_check} check stamps"
            )
        with progress_bar(f"scoring with {scorer.version}") as progress:
            if data is not None:
                scores = scorer.score_dataset(open_dataset(data), progress=progress)
            else:
                table, stamps = stamps_from_files(size=scorer.card.stamp_size, **image_args)
                scores = scorer.score_stamps(
                    stamps, table["diaSourceId"].to_numpy(), progress=progress
                )
        write_table(scores, out)
    except RealBogusError as exc:
        raise fail(exc) from exc
    n_pass = int(scores["passes_cutoff"].sum())
    console.print(
        f"scored {len(scores)} detections with {scorer.version}: {n_pass} pass the cutoff "
        f"{scorer.card.cutoff:g}, {int(scores['edge'].sum())} flagged edge -> {out}"
    )


@app.command()
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
    from .train import TrainConfig
    from .train import train as run_training

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

        with progress_bar("training") as progress:
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


@package_app.command("init")
def package_init(
    out: Annotated[Path, typer.Argument(help="Package directory (or .zip) to create.")],
    stamp_size: Annotated[int, typer.Option(help="Stamp side in pixels.")] = 51,
    seed: Annotated[int, typer.Option(help="Torch seed for the random weights.")] = 0,
) -> None:
    """Write a randomly initialised, untrained package (for tests and as a training start)."""
    from .package import init_package

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
    from .conditions import condition_package
    from .package import load_package

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
    from .package import export_rubin, load_package

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
    cutoff: Annotated[float, typer.Option(help="Cutoff to record in the card.")] = 0.5,
) -> None:
    """Import a Rubin meas_transiNet package (weights-only load; its arch.py is never run)."""
    from .package import import_rubin

    try:
        import_rubin(rubin, out, cutoff=cutoff)
    except RealBogusError as exc:
        raise fail(exc) from exc
    console.print(f"imported {rubin} -> {out}")


# --- evaluate (issue 4) -----------------------------------------------------------------------


@app.command("evaluate")
def evaluate_command(
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            help="Model package (directory, .zip or built-in name); repeat to compare several.",
        ),
    ],
    data: Annotated[
        Path, typer.Option(help="Labelled stamp dataset directory (realbogus dataset).")
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Report directory to write: metrics.json, report.html, figures/, curves/."
        ),
    ],
    n_boot: Annotated[
        int, typer.Option(help="Bootstrap resamples for the 95 % intervals (0 = none).")
    ] = 200,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing report directory.")] = False,
) -> None:
    """Evaluate model versions side by side: requirement window, P = C crossing, slices, report."""
    import warnings

    from .errors import RealBogusWarning
    from .evaluate import evaluate_packages

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

            result = evaluate_packages(
                model, data, out, n_boot=n_boot, seed=seed, overwrite=overwrite, progress=update
            )
    except RealBogusError as exc:
        raise fail(exc) from exc
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
                "none" if win is None else f"[{win['low']:.3f}, {win['high']:.3f}]",
                "-" if cross is None else f"{cross['threshold']:.3f}: {cross['value']:.3f}",
                "-" if s["auc"] is None else f"{s['auc']:.3f}",
            )
    console.print(table)
    n_warn = sum(issubclass(w.category, RealBogusWarning) for w in caught)
    if result.metrics["warnings"]:
        console.print(
            f"[yellow]{len(result.metrics['warnings'])} degenerate slice(s)/population(s)[/]: see 'warnings' in metrics.json"
        )
    elif n_warn:
        console.print(f"[yellow]{n_warn} warning(s)[/]")
    console.print(f"report -> {result.report}")


# --- alert packets (issue 7/9) ------------------------------------------------------------


def _score_alert_files(
    paths: list[Path],
    *,
    model: str,
    out: Path,
    write_alerts: Path | None,
    workers: int | None,
    batch_size: int | None,
    device: str,
    backend: str,
    threads: int | None,
) -> None:
    """Score Rubin and ZTF alert packets; exit status 1 when some packets failed (after writing the rest)."""
    from .alerts import ALERT_SUFFIXES, expand_sources, score_alerts
    from .alerts import write_alerts as write_packets
    from .errors import InputError
    from .package import load_package
    from .scoring import Scorer
    from .tables import write_table

    try:
        for path in paths:
            if path.is_dir() and not expand_sources(path):
                hint = (
                    "; it is a stamp dataset: score it with --data"
                    if (path / "manifest.json").is_file()
                    else ""
                )
                msg = f"{path}: no alert files (names ending in {', '.join(ALERT_SUFFIXES)}) in this folder{hint}"
                raise InputError(msg)
        scorer = Scorer(
            load_package(model),
            batch_size=batch_size,
            device=device,
            backend=backend,
            threads=threads,
        )
        with progress_bar(f"scoring alerts with {scorer.version}") as progress:
            result = score_alerts(scorer, paths, workers=workers, progress=progress)
        write_table(result.table, out)
        failures = list(result.failures)
        written: list = []
        if write_alerts is not None:
            written, write_failures = write_packets(result.table, write_alerts)
            failures += write_failures
    except RealBogusError as exc:
        raise fail(exc) from exc
    console.print(
        f"scored {len(result.table)} alerts with {scorer.version}: "
        f"{int(result.table['passes_cutoff'].sum())} pass the cutoff {scorer.card.cutoff:g} -> {out}"
        + (f"; wrote {len(written)} files -> {write_alerts}" if write_alerts is not None else "")
    )
    for failure in failures:
        where = failure.file if failure.index is None else f"{failure.file} [{failure.index}]"
        console.print(f"[bold red]failed:[/] {where}: {failure.reason}", soft_wrap=True)
    if failures:
        console.print(f"[bold red]{len(failures)} packet(s) or file(s) failed[/]")
        raise typer.Exit(code=1)


@app.command()
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
    from .demo import run_demo

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
        return f"[{w['low']:.3f}, {w['high']:.3f}]" if w else "none"

    console.print(
        f"\n[bold]{result.n_detections} simulated detections scored with {result.model_version}[/]\n"
        f"  SNR > 5:        AUC {overall.get('auc', float('nan')):.4f}, purity {overall.get('purity_at_cutoff', float('nan')):.3f} "
        f"and completeness {overall.get('completeness_at_cutoff', float('nan')):.3f} at the cutoff, "
        f"requirement window {window(overall)}\n"
        f"  SNR 5.5 - 6.5:  requirement window {window(requirement)}\n"
        f"  report: {result.report}\n  scores: {result.scores}\n  data:   {result.out / 'data'} (preview.png)"
    )


# --- crowd: Zooniverse exports, SWAP, simulated volunteers, label sets (issue 6) -------------
crowd_app = typer.Typer(
    help="Crowd labels: simulate volunteers, aggregate Panoptes exports, make subjects and training sets.",
    no_args_is_help=True,
)
app.add_typer(crowd_app, name="crowd")


@crowd_app.command("simulate")
def crowd_simulate(
    dataset: str = typer.Argument(
        ..., help="realbogus dataset directory (needs label; snr, origin used if present)"
    ),
    out: str = typer.Option(..., "--out", help="classification export CSV to write"),
    volunteers: int = typer.Option(400, help="number of volunteers"),
    reference_fraction: float = typer.Option(
        0.05, help="fraction of subjects with a reference (feedback) answer"
    ),
    reference_rate: float = typer.Option(
        0.02, help="extra feedback views, as a fraction of classifications"
    ),
    faint_snr: float = typer.Option(
        5.5, help="SNR at which real sources are called Real half as often"
    ),
    faint_width: float = typer.Option(0.6, help="width of the low-SNR bias in SNR (0 = no bias)"),
    logged_out: float = typer.Option(0.2, help="fraction of volunteers not logged in"),
    truth: str | None = typer.Option(None, help="also write the subjects' truth table (CSV) here"),
    seed: int = typer.Option(0, help="random seed"),
) -> None:
    """Simulate a Zooniverse crowd classifying a dataset and write a Panoptes export."""
    from .crowd.simulate import CrowdConfig, simulate_crowd, write_export
    from .dataset import open_dataset
    from .errors import RealBogusError

    try:
        table = open_dataset(dataset).table()
        cfg = CrowdConfig(
            n_volunteers=volunteers,
            reference_fraction=reference_fraction,
            reference_rate=reference_rate,
            faint_snr=faint_snr,
            faint_width=faint_width,
            logged_out_fraction=logged_out,
        )
        sim = simulate_crowd(table, config=cfg, seed=seed)
        write_export(sim, out, seed=seed)
        if truth:
            sim.subjects.to_csv(truth, index=False)
    except RealBogusError as exc:
        raise fail(exc) from exc
    console.print(
        f"wrote {len(sim.votes)} classifications of {len(sim.subjects)} subjects by "
        f"{len(sim.volunteers)} volunteers to {out}"
    )


@crowd_app.command("aggregate")
def crowd_aggregate(
    export: str = typer.Argument(..., help="Panoptes classification export CSV"),
    out: str = typer.Option(..., "--out", help="labels Parquet file to write"),
    method: str = typer.Option("swap", help="swap | majority | dawid-skene"),
    reference: str | None = typer.Option(
        None, help="reference CSV (subject_id, label 1/0 or answer); default: #feedback_1_answer"
    ),
    task: str = typer.Option("T0", help="question task key"),
    answers: str = typer.Option("Real,Bogus", help="answer labels in index order"),
    real_answer: str | None = typer.Option(
        None, help="the answer meaning Real (default: the first)"
    ),
    workflow_export: str | None = typer.Option(
        None, help="workflows CSV: take the answer labels from it (needs --workflow-id)"
    ),
    workflow_id: int | None = typer.Option(None, help="workflow to keep"),
    workflow_version: str | None = typer.Option(
        None, help="major ('12') or exact ('12.3') version"
    ),
    prior: float = typer.Option(0.5, help="SWAP prior Pr(Real)"),
    pseudo_count: float = typer.Option(
        0.0, help="SWAP pseudo-count gamma (0 = DMTN raw fractions)"
    ),
    mode: str = typer.Option("online", help="SWAP online | offline"),
    stability: str = typer.Option("dmtn", help="dmtn | analysis-code"),
    min_used: int = typer.Option(
        0, help="SWAP: subjects with fewer used classifications get no label set"
    ),
    volunteers_out: str | None = typer.Option(
        None, help="also write the volunteer table (Parquet)"
    ),
) -> None:
    """Aggregate a Panoptes export into per-subject labels (Pr(Real), stable and unstable sets)."""
    from .crowd.aggregate import aggregate_export
    from .crowd.panoptes import workflow_answers
    from .errors import ConfigError, RealBogusError

    options: dict = {"stability": stability}
    if method == "swap":
        options.update(prior=prior, pseudo_count=pseudo_count, mode=mode, min_used=min_used)
    try:
        labels_in_order = tuple(a.strip() for a in answers.split(","))
        if workflow_export:
            if workflow_id is None:
                raise ConfigError("--workflow-export needs --workflow-id")
            labels_in_order = workflow_answers(
                workflow_export,
                workflow_id=workflow_id,
                task=task,
                workflow_version=workflow_version,
            )
        labels, dropped = aggregate_export(
            export,
            method=method,
            reference=reference,
            task=task,
            answers=labels_in_order,
            real_answer=real_answer,
            workflow_id=workflow_id,
            workflow_version=workflow_version,
            **options,
        )
        labels.to_parquet(out)
        if volunteers_out:
            labels.volunteers.to_parquet(volunteers_out, index=False)
    except RealBogusError as exc:
        raise fail(exc) from exc
    s = labels.subjects
    console.print(
        f"{method}: {len(s)} subjects; unstable set {int(s.unstable.sum())} "
        f"(Real {int((s.unstable & (s.p_real >= 0.5)).sum())}), stable set {int(s.stable.sum())} "
        f"(Real {int((s.stable & (s.p_real >= 0.5)).sum())}); dropped rows {dropped}; wrote {out}"
    )


@crowd_app.command("subjects")
def crowd_subjects(
    dataset: str = typer.Argument(..., help="realbogus dataset directory"),
    out: str = typer.Option(..., "--out", help="output directory (PNGs and manifests)"),
    reference_fraction: float = typer.Option(
        0.0, help="fraction of labelled detections made reference subjects"
    ),
    scores: str | None = typer.Option(
        None, help="previous model's scores (Parquet or CSV: diaSourceId, reliability)"
    ),
    scale: int = typer.Option(4, help="panel enlargement factor"),
    seed: int = typer.Option(0, help="seed of the reference draw"),
    overwrite: bool = typer.Option(False, help="replace an existing output directory"),
) -> None:
    """Write Zooniverse subjects (template | science | difference PNGs) and Panoptes manifests."""
    import pandas as pd

    from .crowd.subjects import write_subjects
    from .errors import InputError, RealBogusError

    try:
        table = None
        if scores:
            try:
                table = (
                    pd.read_parquet(scores) if scores.endswith(".parquet") else pd.read_csv(scores)
                )
            except (OSError, ValueError) as exc:
                raise InputError(f"{scores}: unreadable score table ({exc})") from exc
        with progress_bar("subjects") as progress:
            manifest = write_subjects(
                dataset,
                out,
                reference_fraction=reference_fraction,
                scores=table,
                scale=scale,
                seed=seed,
                overwrite=overwrite,
                progress=progress,
            )
    except RealBogusError as exc:
        raise fail(exc) from exc
    counts = manifest["subject_set"].value_counts().to_dict()
    console.print(f"wrote {len(manifest)} subjects to {out}; subject sets {counts}")


@crowd_app.command("labels")
def crowd_labels(
    labels: str = typer.Argument(..., help="labels Parquet file from `realbogus crowd aggregate`"),
    data: str = typer.Option(..., "--data", help="the dataset the subjects came from"),
    out: str = typer.Option(..., "--out", help="training dataset directory to write"),
    label_set: str = typer.Option("stable", "--set", help="stable | unstable"),
    balance: bool = typer.Option(True, help="balance Real/Bogus by subsampling"),
    include_reference: bool = typer.Option(True, help="keep reference subjects"),
    seed: int = typer.Option(0, help="seed of the subsampling"),
    overwrite: bool = typer.Option(False, help="replace an existing output directory"),
) -> None:
    """Turn a crowd label set into a (balanced) realbogus training dataset."""
    from .crowd.core import read_labels
    from .crowd.labels import training_dataset
    from .dataset import open_dataset
    from .errors import RealBogusError

    try:
        table, _ = read_labels(labels)
        path = training_dataset(
            table,
            data,
            out,
            which=label_set,
            balance=balance,
            include_reference=include_reference,
            seed=seed,
            overwrite=overwrite,
        )
        counts = open_dataset(path).manifest["counts"]
    except RealBogusError as exc:
        raise fail(exc) from exc
    console.print(f"wrote {out}: {counts}")


# --- end crowd ----------------------------------------------------------------------------


# --- simulate (realbogus.sim) -------------------------------------------------------------------
@app.command()
def simulate(
    out: Annotated[
        Path, typer.Option(help="Output dataset directory (must not exist unless --overwrite).")
    ],
    survey: Annotated[
        str, typer.Option(help="Survey preset: rubin, ztf, rubin-small or ztf-small.")
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

    from .sim import load_config, simulate_survey

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


# --- end simulate ---------------------------------------------------------------------------------

# --- real exposures in: template, inject (realbogus.injection, issue 18) --------------------------
from .cli_images import inject as _inject_cmd  # noqa: E402
from .cli_images import template as _template_cmd  # noqa: E402

app.command("template")(_template_cmd)
app.command("inject")(_inject_cmd)


if __name__ == "__main__":  # pragma: no cover
    app()
