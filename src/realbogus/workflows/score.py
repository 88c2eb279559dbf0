"""Scoring what users have on disk: stamp datasets, FITS images with a catalog, alert packets.

Each function opens the inputs, hands arrays to a `Scorer` and returns the score table (one row
per input detection, in input order); writing it is the caller's (`realbogus.io.tables`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..alerts import ALERT_SUFFIXES, AlertScores, expand_sources, read_alerts, score_alerts
from ..alerts.reader import iter_sources
from ..alerts.units import to_units
from ..errors import InputError, StampShapeError
from ..inference.scorer import SCORED, Scorer, score_table
from ..io.dataset import Dataset
from ..model.card import ModelCard, survey_family

__all__ = [
    "alert_check_stamps",
    "check_dataset_fits",
    "score_alert_files",
    "score_dataset",
    "score_images",
]

Progress = Callable[[int, int], None]


def score_dataset(
    scorer: Scorer, dataset: Dataset, *, progress: Progress | None = None, force: bool = False
) -> pd.DataFrame:
    """Score every row of a dataset, part by part (bounded memory), in dataset order.

    A dataset simulated for another survey, or in other pixel units, than the model's card is
    refused before any work (`InputError`); `force` scores it and says so in `reason`.
    """
    forced = check_dataset_fits(scorer.card, dataset, force=force)
    if dataset.stamp_size != scorer.card.stamp_size:
        msg = (
            f"{dataset.path}: stamps are {dataset.stamp_size} px but model "
            f"{scorer.version} takes {scorer.card.stamp_size} px"
        )
        raise StampShapeError(msg)
    tables, done, total = [], 0, len(dataset)
    for table, stamps in dataset.iter_parts():
        part = scorer.score_part(table, stamps, first_row=done)
        if forced:
            part["reason"] = part["reason"].mask(part["status"] == SCORED, forced)
        tables.append(part)
        done += len(table)
        if progress is not None:
            progress(done, total)
    if not tables:
        return score_table(
            np.empty(0, np.int64),
            np.empty(0, np.float32),
            version=scorer.version,
            cutoff=scorer.card.cutoff,
            valid_fraction=np.empty(0),
            edge=np.empty(0, bool),
        )
    return pd.concat(tables, ignore_index=True)


def check_dataset_fits(card: ModelCard, dataset: Dataset, *, force: bool = False) -> str:
    """The empty string when the dataset's survey and pixel units (its manifest's provenance,
    where stated) match the card's; else `InputError` naming --force, or with `force` the
    reason to record."""
    provenance = dataset.manifest.get("provenance") or {}
    theirs = {
        "survey": survey_family(provenance.get("survey")),
        "pixel units": provenance.get("pixel_units"),
    }
    ours = {"survey": card.model_survey, "pixel units": card.pixel_units}
    differ = [k for k in theirs if theirs[k] and ours[k] and theirs[k] != ours[k]]
    if not differ:
        return ""
    what = "; ".join(f"model {card.version} {k} {ours[k]}, data {theirs[k]}" for k in differ)
    if not force:
        msg = (
            f"{dataset.path}: {what}: score it with a model for these data, or pass --force to "
            "score anyway (recorded in the reason column)"
        )
        raise InputError(msg)
    return f"forced (--force): {what}"


def score_images(
    scorer: Scorer,
    *,
    science: str | os.PathLike,
    template: str | os.PathLike,
    difference: str | os.PathLike,
    catalog: str | os.PathLike,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Score the detections of `catalog` (x, y or ra, dec) on three FITS images.

    One row per catalog row, in order; rows off the image or at a non-finite position have
    reliability NaN with their `status` and `reason` (`realbogus.io.images.position_faults`).
    """
    from ..io.images import stamps_from_files  # astropy: ~0.5 s that alert scoring does not need

    table, stamps = stamps_from_files(
        science=science,
        template=template,
        difference=difference,
        catalog=catalog,
        size=scorer.card.stamp_size,
    )
    return scorer.score_stamps(
        stamps,
        table["diaSourceId"].to_numpy(),
        status=table["status"].to_numpy(object),
        reason=table["reason"].to_numpy(object),
        progress=progress,
    )


def score_alert_files(
    scorer: Scorer,
    paths: Sequence[str | os.PathLike],
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    force: bool = False,
) -> AlertScores:
    """Score Rubin and ZTF alert packets (files or folders of them); failures are reported in the
    result, not raised. A folder holding no alert files is an error before any work."""
    for path in map(Path, paths):
        if path.is_dir() and next(iter_sources(path), None) is None:
            hint = (
                "; it is a stamp dataset: score it with --data"
                if (path / "manifest.json").is_file()
                else ""
            )
            msg = f"{path}: no alert files (names ending in {', '.join(ALERT_SUFFIXES)}) in this folder{hint}"
            raise InputError(msg)
    return score_alerts(scorer, list(paths), workers=workers, progress=progress, force=force)


def alert_check_stamps(
    paths: Sequence[str | os.PathLike], card: ModelCard, *, n: int = 2048
) -> np.ndarray:
    """Check stamps for a reduced precision from alert packets: up to `n` evenly spaced files
    of the input, decoded in this process and brought to the card's pixel units (alerts that
    cannot be converted are left out).

    Returns
    -------
    ndarray of shape (<= n, 3, S, S), float32, S = the card's stamp size
    """
    files = expand_sources([os.fspath(p) for p in paths])
    step = max(1, len(files) // n)
    batch = read_alerts(files[::step][:n], stamp_size=card.stamp_size, workers=1)
    if len(batch):
        batch, _ = to_units(batch, card.pixel_units, card.version, in_place=True)
    return batch.stamps.data
