"""The `realbogus` command: parses arguments, calls the library, shows progress. No logic here."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

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
package_app = typer.Typer(help="Create model packages and move them to and from Rubin's layout.", no_args_is_help=True)
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
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Package directories or .zip files to list besides the built-in ones.")] = None,
) -> None:
    """List built-in and given model packages: version, parent, cutoff, stamp size."""
    from .package import builtin_models, load_package

    table = Table(title="realbogus model packages")
    for column in ("name", "version", "parent", "cutoff", "stamp size", "architecture", "source"):
        table.add_column(column)
    sources = [(name, "built-in") for name in builtin_models()] + [(str(p), str(p)) for p in paths or []]
    for ref, where in sources:
        try:
            card = load_package(ref).card
        except RealBogusError as exc:
            raise fail(exc) from exc
        table.add_row(card.name, card.version, card.parent or "-", f"{card.cutoff:g}", str(card.stamp_size), card.architecture, where)
    if not sources:
        console.print("no built-in model packages are installed yet; pass package paths to list them")
    Console().print(table)


@app.command()
def score(
    model: Annotated[str, typer.Option(help="Model package: a directory, a .zip, or a built-in name.")],
    out: Annotated[Path, typer.Option(help="Score table to write: .parquet, .csv or .fits (by extension).")],
    data: Annotated[Optional[Path], typer.Option(help="A realbogus stamp dataset directory.")] = None,
    science: Annotated[Optional[Path], typer.Option(help="Science image (FITS).")] = None,
    template: Annotated[Optional[Path], typer.Option(help="Template image (FITS), warped to the science image.")] = None,
    difference: Annotated[Optional[Path], typer.Option(help="Difference image (FITS).")] = None,
    catalog: Annotated[Optional[Path], typer.Option(help="Detections: Parquet/CSV/FITS with x, y (pixels) or ra, dec.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Stamps per forward pass (default: the backend's best).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:i].")] = "auto",
    backend: Annotated[str, typer.Option(help="auto (ONNX Runtime on CPU), torch or onnx.")] = "auto",
) -> None:
    """Score detections: from a stamp dataset (--data) or from FITS images plus a catalog."""
    from .dataset import open_dataset
    from .images import stamps_from_files
    from .package import load_package
    from .scoring import Scorer
    from .tables import write_table

    image_args = {"science": science, "template": template, "difference": difference, "catalog": catalog}
    given = [k for k, v in image_args.items() if v is not None]
    if (data is None) == (not given) or (given and len(given) != 4):
        console.print("[bold red]error:[/] give either --data DIR, or all of --science --template --difference --catalog")
        raise typer.Exit(code=2)
    try:
        scorer = Scorer(load_package(model), batch_size=batch_size, device=device, backend=backend)
        with progress_bar(f"scoring with {scorer.version}") as progress:
            if data is not None:
                scores = scorer.score_dataset(open_dataset(data), progress=progress)
            else:
                table, stamps = stamps_from_files(size=scorer.card.stamp_size, **image_args)
                scores = scorer.score_stamps(stamps, table["diaSourceId"].to_numpy(), progress=progress)
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
    data: Annotated[Path, typer.Option(help="Labelled stamp dataset directory (needs `label`; `field` groups the split).")],
    out: Annotated[Path, typer.Option(help="Model package directory to write.")],
    from_: Annotated[Optional[str], typer.Option("--from", help="Parent package to fine-tune from (directory, .zip or built-in name).")] = None,
    epochs: Annotated[int, typer.Option(help="Maximum epochs (early stopping on validation loss).")] = 30,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 128,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-4,
    weight_decay: Annotated[float, typer.Option(help="Adam weight decay.")] = 3.6e-2,
    patience: Annotated[int, typer.Option(help="Epochs without validation improvement before stopping.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of split, order, flips, dropout and initialisation.")] = 0,
    name: Annotated[str, typer.Option(help="Model name for the card.")] = "realbogus",
    version: Annotated[Optional[str], typer.Option(help="Version string for the card (default: derived from data and seed).")] = None,
    cutoff: Annotated[float, typer.Option(help="Cutoff to record in the card.")] = 0.5,
) -> None:
    """Train a model package (or fine-tune one with --from); rerun the same command to resume."""
    from .train import TrainConfig
    from .train import train as run_training

    try:
        config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience, seed=seed)

        def show(report) -> None:
            mark = " [green]best[/]" if report.best else ""
            console.print(
                f"epoch {report.epoch + 1}: train loss {report.train_loss:.4f}, validation loss "
                f"{report.val_loss:.4f}, purity {report.val_purity:.3f}, completeness {report.val_completeness:.3f}{mark}"
            )

        with progress_bar("training") as progress:
            path = run_training(data, out, config=config, parent=from_, name=name, version=version, cutoff=cutoff, on_epoch=show, progress=progress)
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


@package_app.command("export-rubin")
def package_export_rubin(
    model: Annotated[str, typer.Argument(help="Model package: directory, .zip or built-in name.")],
    out: Annotated[Path, typer.Argument(help="Rubin package directory, or a .zip for the Butler payload.")],
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
    rubin: Annotated[Path, typer.Argument(help="Rubin package directory (*.pt + meta.yaml) or payload .zip.")],
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


# --- alert packets (issue 7/9) ------------------------------------------------------------


@app.command("score-alerts")
def score_alerts_command(
    paths: Annotated[list[Path], typer.Argument(help="Alert files (Avro container files, Confluent .msg) or folders of them.")],
    model: Annotated[str, typer.Option(help="Model package: a directory, a .zip, or a built-in name.")],
    out: Annotated[Path, typer.Option(help="Score table to write: .parquet, .csv or .fits (by extension).")],
    write_alerts: Annotated[Optional[Path], typer.Option("--write-alerts", help="Folder to write the packets back to, with reliability filled in.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Decoding processes (default: one per CPU; 1 = in this process).")] = None,
    batch_size: Annotated[int, typer.Option(help="Stamps per forward pass.")] = 1024,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:i].")] = "auto",
) -> None:
    """Score Rubin and ZTF alert packets; exit status 1 when some packets failed (after writing the rest)."""
    from .alerts import score_alerts, write_alerts as write_packets
    from .package import load_package
    from .scoring import Scorer
    from .tables import write_table

    try:
        scorer = Scorer(load_package(model), batch_size=batch_size, device=device)
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
def demo() -> None:
    """Simulate a small survey, score it with rubin-v0.1, evaluate it and write a report."""
    console.print(
        "[bold yellow]realbogus demo is not available yet[/]: it needs the trained built-in model "
        "rubin-v0.1, which no release ships so far. `realbogus --help` lists what works today."
    )
    raise typer.Exit(code=2)


if __name__ == "__main__":  # pragma: no cover
    app()
