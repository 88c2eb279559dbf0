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

from ..alerts import ALERT_SUFFIXES, AlertScores, expand_sources, score_alerts
from ..errors import InputError, StampShapeError
from ..inference.scorer import Scorer, score_table
from ..io.dataset import Dataset
from ..io.images import stamps_from_files

__all__ = ["score_alert_files", "score_dataset", "score_images"]

Progress = Callable[[int, int], None]


def score_dataset(
    scorer: Scorer, dataset: Dataset, *, progress: Progress | None = None
) -> pd.DataFrame:
    """Score every row of a dataset, part by part (bounded memory), in dataset order."""
    if dataset.stamp_size != scorer.card.stamp_size:
        msg = (
            f"{dataset.path}: stamps are {dataset.stamp_size} px but model "
            f"{scorer.version} takes {scorer.card.stamp_size} px"
        )
        raise StampShapeError(msg)
    tables, done, total = [], 0, len(dataset)
    for table, stamps in dataset.iter_parts():
        tables.append(scorer.score_part(table, stamps, first_row=done))
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
        if path.is_dir() and not expand_sources(path):
            hint = (
                "; it is a stamp dataset: score it with --data"
                if (path / "manifest.json").is_file()
                else ""
            )
            msg = f"{path}: no alert files (names ending in {', '.join(ALERT_SUFFIXES)}) in this folder{hint}"
            raise InputError(msg)
    return score_alerts(scorer, list(paths), workers=workers, progress=progress, force=force)
