"""Zooniverse subjects from a dataset: one PNG per detection and Panoptes subject manifests.

Each PNG shows template | science | difference side by side (DMTN-337 Fig. 2), each panel
scaled by its own zscale limits (the one stamp renderer,
:func:`realbogus.render.render_triplet`) to 8-bit grey and enlarged by
nearest-neighbour repetition. The manifests carry hidden (``#``) metadata: ``#diaSourceId``,
``#origin`` and, for reference subjects, ``#feedback_1_answer`` ("0" = Real, "1" = Bogus).
Subject sets follow DMTN-337 Table 3: one per `origin`, plus ``reliability_cuts`` for the
detections a previous model scored 0.5 < reliability < 0.9 when a score table is given.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import ConfigError, InputError
from ..io.atomic import atomic_directory
from ..io.dataset import Dataset, open_dataset
from ..render import render_triplet

__all__ = ["RELIABILITY_CUTS", "subject_sets", "render_subject", "write_subjects"]

RELIABILITY_CUTS = "reliability_cuts"
_PANEL_ORDER = (
    "template",
    "science",
    "difference",
)  # DMTN-337 Fig. 2: template | science | difference


def subject_sets(
    table: pd.DataFrame, *, scores: pd.DataFrame | None = None, low: float = 0.5, high: float = 0.9
) -> np.ndarray:
    """Subject-set name of each detection: its `origin`, or ``reliability_cuts`` if selected.

    Parameters
    ----------
    table : DataFrame of n rows
        Detection table with `diaSourceId` and (optionally) `origin`.
    scores : DataFrame, optional
        A previous model's scores: `diaSourceId`, `reliability`; detections with
        low < reliability < high go to ``reliability_cuts`` (DMTN-337 Table 3).

    Returns
    -------
    ndarray of shape (n,), object (str)
    """
    if not 0 <= low < high <= 1:
        msg = f"need 0 <= low < high <= 1 for the reliability cut; got {(low, high)}"
        raise ConfigError(msg)
    sets = (
        table["origin"].astype(str).to_numpy(dtype=object)
        if "origin" in table
        else np.full(len(table), "unknown", dtype=object)
    )
    if scores is not None:
        missing = [c for c in ("diaSourceId", "reliability") if c not in scores.columns]
        if missing:
            msg = f"score table lacks columns {missing}; it needs diaSourceId and reliability"
            raise InputError(msg)
        rel = scores.drop_duplicates("diaSourceId").set_index("diaSourceId")["reliability"]
        r = rel.reindex(table["diaSourceId"].to_numpy()).to_numpy(dtype=float)
        sets = np.where((r > low) & (r < high), RELIABILITY_CUTS, sets)
    return sets


def render_subject(stamp: np.ndarray, *, scale: int = 4, gap: int = 2) -> np.ndarray:
    """One subject image: template | science | difference, each zscaled, as 8-bit grey.

    Parameters
    ----------
    stamp : ndarray of shape (3, S, S)
        One triplet in `stamps.CHANNELS` order (difference, science, template).
    scale : int
        Nearest-neighbour enlargement factor (>= 1).
    gap : int
        White pixels between panels, before enlargement.

    Returns
    -------
    ndarray of shape (S * scale, (3 S + 2 gap) * scale), uint8
    """
    if stamp.ndim != 3 or stamp.shape[0] != 3 or stamp.shape[1] != stamp.shape[2]:
        msg = f"a subject stamp must have shape (3, S, S); got {stamp.shape}"
        raise InputError(msg)
    rgb = render_triplet(stamp, order=_PANEL_ORDER, scale=scale, gap=gap, nan_color=None)
    return rgb[:, :, 0]  # the one renderer (realbogus.render); grey: planes equal


def write_subjects(
    dataset: Dataset | str | os.PathLike,
    out: str | os.PathLike,
    *,
    reference_fraction: float = 0.0,
    scores: pd.DataFrame | None = None,
    scale: int = 4,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Write PNG subjects and Panoptes manifests for every detection of a dataset (atomically).

    Parameters
    ----------
    dataset : Dataset or path
        A realbogus dataset with `diaSourceId` (and optionally `origin`, `label`).
    out : path-like
        Output directory: ``<diaSourceId>.png`` images, ``manifest.csv`` (every subject, with
        a `subject_set` column) and ``manifest_<set>.csv`` (one per subject set, to upload).
    reference_fraction : float
        Fraction of the labelled detections (seeded draw) made reference subjects, whose
        manifest row carries ``#feedback_1_answer``.
    scores : DataFrame, optional
        Previous model's scores (`diaSourceId`, `reliability`) for the reliability_cuts set.
    scale : int
        Enlargement of the 51 px panels (4 -> 204 px high).
    seed : int
        Seed of the reference draw.
    progress : callable (done, total), optional

    Returns
    -------
    DataFrame
        The full manifest.
    """
    if not 0 <= reference_fraction <= 1:
        msg = (
            f"--reference-fraction (reference_fraction) must be in [0, 1]; got {reference_fraction}"
        )
        raise ConfigError(msg)
    if scale < 1:
        msg = f"scale must be >= 1; got {scale}"
        raise ConfigError(msg)
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    out = Path(out)
    if out.exists() and not overwrite:
        msg = f"{out} already exists; choose another directory or pass --overwrite (from Python: overwrite=True)"
        raise InputError(msg)
    table = ds.table()
    if "diaSourceId" not in table.columns:
        msg = f"{ds.path}: the dataset has no diaSourceId column to name subjects by"
        raise InputError(msg)
    if table["diaSourceId"].duplicated().any():
        msg = f"{ds.path}: diaSourceId values repeat; subjects need unique ids"
        raise InputError(msg)
    sets = subject_sets(table, scores=scores)
    rng = np.random.default_rng([seed, 0])
    labelled = (
        table["label"].notna().to_numpy() if "label" in table else np.zeros(len(table), dtype=bool)
    )
    is_ref = labelled & (rng.random(len(table)) < reference_fraction)
    feedback = np.full(len(table), "", dtype=object)
    if is_ref.any():
        feedback[is_ref] = np.where(table["label"].to_numpy()[is_ref].astype(int) == 1, "0", "1")
    manifest = pd.DataFrame(
        {
            "image": [f"{int(d)}.png" for d in table["diaSourceId"]],
            "subject_set": sets,
            "#diaSourceId": table["diaSourceId"].astype("int64").to_numpy(),
            "#origin": sets,
            "#feedback_1_answer": feedback,
        }
    )
    with atomic_directory(out) as tmp:
        done = 0
        for part, stamps in ds.iter_parts():
            for did, stamp in zip(part["diaSourceId"], stamps.data, strict=True):
                Image.fromarray(render_subject(stamp, scale=scale), mode="L").save(
                    tmp / f"{int(did)}.png"
                )
                done += 1
                if progress is not None:
                    progress(done, len(table))
        manifest.to_csv(tmp / "manifest.csv", index=False)
        for name, rows in manifest.groupby("subject_set", sort=True):
            rows.drop(columns="subject_set").to_csv(tmp / f"manifest_{name}.csv", index=False)
    return manifest
