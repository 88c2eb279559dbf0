"""`realbogus crowd ...`: simulated volunteers, Panoptes exports, SWAP, subjects, label sets."""

from __future__ import annotations

import typer

from ..errors import RealBogusError
from .common import console, fail, progress_bar

crowd_app = typer.Typer(
    help="Crowd labels: simulate volunteers, aggregate Panoptes exports, make subjects and training sets.",
    no_args_is_help=True,
)


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
    from ..crowd.simulate import CrowdConfig, simulate_crowd, write_export
    from ..io.dataset import open_dataset

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
    from ..crowd.aggregate import aggregate_export
    from ..crowd.panoptes import workflow_answers
    from ..errors import ConfigError

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

    from ..crowd.subjects import write_subjects
    from ..errors import InputError

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
    from ..crowd.core import read_labels
    from ..crowd.labels import training_dataset
    from ..io.dataset import open_dataset

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
