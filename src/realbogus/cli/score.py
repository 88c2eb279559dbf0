"""`realbogus score`: alert packets, a stamp dataset (also on Dask), or FITS images with a catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import RealBogusError
from .common import console, fail, progress_bar


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
            help="Score with the int8 ONNX graph, if it stays within 0.01 of fp32 on check stamps from the input; else fail (see --precision).",
        ),
    ] = False,
    precision: Annotated[
        str,
        typer.Option(
            help="fp32 (default, reproducible), bf16 or int8: a reduced precision is used only if, on check stamps from the input, it stays within 0.01 of fp32 and changes passes_cutoff for < 0.1 % of them; else fp32, with a message. The table's precision column says which.",
        ),
    ] = "fp32",
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
            help="With alert packets: a folder to write them back to, our reliability beside the survey's (container files: top-level fields; all: realbogus-reliability.parquet).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Score alerts (or a --data set) of another survey than the model's; recorded in the reason column.",
        ),
    ] = False,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Alert packets: Avro container files, Confluent .msg files (Rubin, ZTF), or folders of them.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Score detections: alert packets (PATH...), a stamp dataset (--data), or FITS images plus a catalog.

    Every input detection gets one row: scored, or reliability NaN with a `status` and `reason`.
    Exit status 1 when some detection was not scored or some alert packet failed (after writing
    everything else, each reason reported).
    """
    from ..inference.scorer import Scorer
    from ..io.dataset import open_dataset, sample_check_stamps
    from ..io.tables import check_table_path, check_writable_folder, write_table
    from ..model.package import load_package
    from ..workflows.score import check_dataset_fits, score_dataset, score_images

    image_args = {
        "science": science,
        "template": template,
        "difference": difference,
        "catalog": catalog,
    }
    given = [k for k, v in image_args.items() if v is not None]
    try:  # outputs first: a bad --out must not cost a whole scoring run
        if scheduler is None:
            check_table_path(out, flag="--out")
        else:
            check_writable_folder(out, flag="--out")
        if write_alerts is not None:
            check_writable_folder(write_alerts, flag="--write-alerts")
    except RealBogusError as exc:
        raise fail(exc) from exc
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
            precision=precision,
            force=force,
        )
        return
    if precision != "fp32" and (int8 or scheduler is not None):
        console.print(
            "[bold red]error:[/] --precision goes without --int8 and --scheduler (with --scheduler, give --int8)"
        )
        raise typer.Exit(code=2)
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
            from ..workflows.distributed import read_scores, score_distributed

            dataset = open_dataset(data)
            check_dataset_fits(package.card, dataset, force=force)
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
            report_not_scored(read_scores(out, columns=["status", "reason"]))
            return
        if int8 or precision != "fp32":
            from ..io.images import stamps_from_files  # astropy (~0.5 s): FITS images only

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
            check_stamps=check if int8 or precision != "fp32" else None,
            precision=precision,
        )
        _say_precision(scorer)
        if scorer.int8_model is not None and int8:
            console.print(
                f"int8 accepted: at most {scorer.int8_model.max_deviation:.4f} from fp32 on {scorer.int8_model.n_check} check stamps"
            )
        with progress_bar(f"scoring with {scorer.version}") as progress:
            if data is not None:
                scores = score_dataset(scorer, open_dataset(data), progress=progress, force=force)
            else:
                scores = score_images(scorer, **image_args, progress=progress)
        write_table(scores, out)
    except RealBogusError as exc:
        raise fail(exc) from exc
    n_pass = int(scores["passes_cutoff"].sum())
    console.print(
        f"scored {len(scores)} detections with {scorer.version}: {n_pass} pass the cutoff "
        f"{scorer.card.cutoff:g}, {int(scores['edge'].sum())} flagged edge -> {out}"
    )
    report_not_scored(scores)


def report_not_scored(scores) -> None:
    """Count the rows that were not scored by status; exit status 1 when there are any."""
    refused = scores["status"] != "scored"
    if not refused.any():
        return
    counts = scores.loc[refused, "status"].value_counts()
    first = scores.loc[refused, "reason"].iloc[0]
    console.print(
        f"[bold red]{int(refused.sum())} not scored[/] (reliability NaN; see the status and reason "
        f"columns): {', '.join(f'{n} {k}' for k, n in counts.items())}; e.g. {first}",
        soft_wrap=True,
    )
    raise typer.Exit(code=1)


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
    force: bool,
    precision: str = "fp32",
) -> None:
    """Score Rubin and ZTF alert packets; exit status 1 when some were not scored or not written
    (after writing everything else)."""
    from ..alerts import write_alerts as write_packets
    from ..inference.scorer import Scorer
    from ..io.tables import write_table
    from ..model.package import load_package
    from ..workflows.score import alert_check_stamps, score_alert_files

    try:
        package = load_package(model)
        check = alert_check_stamps(paths, package.card) if precision != "fp32" else None
        scorer = Scorer(
            package,
            batch_size=batch_size,
            device=device,
            backend=backend,
            threads=threads,
            precision=precision,
            check_stamps=check,
        )
        _say_precision(scorer)
        with progress_bar(f"scoring alerts with {scorer.version}") as progress:
            result = score_alert_files(
                scorer, paths, workers=workers, progress=progress, force=force
            )
        write_table(result.table, out)
        failures = list(result.failures)
        written: list = []
        if write_alerts is not None:
            written, write_failures = write_packets(result.table, write_alerts)
            failures += write_failures
    except RealBogusError as exc:
        raise fail(exc) from exc
    n_scored = int((result.table["status"] == "scored").sum())
    console.print(
        f"scored {n_scored} of {len(result.table)} alerts with {scorer.version}: "
        f"{int(result.table['passes_cutoff'].sum())} pass the cutoff {scorer.card.cutoff:g} -> {out}"
        + (f"; wrote {len(written)} files -> {write_alerts}" if write_alerts is not None else "")
    )
    for failure in failures:
        where = failure.file if failure.index is None else f"{failure.file} [{failure.index}]"
        console.print(f"[bold red]failed:[/] {where}: {failure.reason}", soft_wrap=True)
    if failures:
        console.print(f"[bold red]{len(failures)} packet(s) or file(s) failed[/]")
    report_not_scored(result.table)
    if failures:
        raise typer.Exit(code=1)


def _say_precision(scorer) -> None:
    """One line on a requested reduced precision: accepted, or refused and scoring in fp32."""
    if scorer.precision_check is not None:
        colour = "green" if scorer.precision_check.accepted else "yellow"
        console.print(f"[{colour}]{scorer.precision_check.reason}[/]", soft_wrap=True)
