"""Crowd label sets -> training datasets (DMTN-337 sec. 3.2.2: stable labels, balanced).

The labels (`CrowdLabels.subjects` or a labels Parquet file) must carry `diaSourceId`, which the
aggregation of an export takes from the subjects' hidden ``#diaSourceId`` metadata. The chosen
set is balanced by subsampling the larger class (seeded), the dataset's own `origin` is kept, and
the rows are written, with their stamps, as a new realbogus dataset with `label` = the crowd
label and `labelSource` = "crowd" (any earlier label is kept as `label_original`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputError
from ..io.dataset import Dataset, open_dataset, write_dataset
from ..stamps import Stamps

__all__ = ["select_labels", "training_dataset"]


def select_labels(
    labels: pd.DataFrame,
    *,
    which: str = "stable",
    balance: bool = True,
    include_reference: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """The rows of one label set, optionally balanced by subsampling.

    Parameters
    ----------
    labels : DataFrame
        Per-subject crowd labels with `diaSourceId`, `label`, `stable`, `unstable`, `p_real`.
    which : {"stable", "unstable"}
        DMTN-337 label set.
    balance : bool
        Subsample the larger class to the size of the smaller (seeded).
    include_reference : bool
        Keep reference subjects (their aggregated label, not the reference one).
    seed : int
        Seed of the subsampling.

    Returns
    -------
    DataFrame
        `diaSourceId`, `label` (int8), `p_real`, `n_votes` of the chosen subjects.
    """
    if which not in ("stable", "unstable"):
        msg = f"which must be 'stable' or 'unstable'; got {which!r}"
        raise ConfigError(msg)
    missing = [c for c in ("diaSourceId", "label", which, "p_real") if c not in labels.columns]
    if missing:
        msg = (
            f"crowd labels lack columns {missing}; diaSourceId comes from the subjects' "
            "#diaSourceId metadata in the export"
        )
        raise InputError(msg)
    rows = labels[
        labels[which].astype(bool).to_numpy()
        & labels["label"].notna().to_numpy()
        & labels["diaSourceId"].notna().to_numpy()
    ]
    if not include_reference and "reference" in rows.columns:
        rows = rows[rows["reference"].isna().to_numpy()]
    rows = rows.assign(
        label=rows["label"].astype("int8"), diaSourceId=rows["diaSourceId"].astype("int64")
    )
    if rows["diaSourceId"].duplicated().any():
        msg = "crowd labels repeat diaSourceId values"
        raise InputError(msg)
    if balance and len(rows):
        rng = np.random.default_rng([seed, 0])
        real, bogus = np.flatnonzero(rows["label"] == 1), np.flatnonzero(rows["label"] == 0)
        n = min(len(real), len(bogus))
        pick = np.sort(
            np.concatenate(
                [rng.choice(real, n, replace=False), rng.choice(bogus, n, replace=False)]
            )
        )
        rows = rows.iloc[pick]
    keep = [c for c in ("diaSourceId", "label", "p_real", "n_votes") if c in rows.columns]
    return rows[keep].reset_index(drop=True)


def training_dataset(
    labels: pd.DataFrame,
    dataset: Dataset | str | os.PathLike,
    out: str | os.PathLike,
    *,
    which: str = "stable",
    balance: bool = True,
    include_reference: bool = True,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the chosen crowd label set, with the stamps, as a new realbogus dataset.

    Parameters
    ----------
    labels : DataFrame
        Per-subject crowd labels (see `select_labels`).
    dataset : Dataset or path
        The dataset the subjects were made from (matched on `diaSourceId`).
    out : path-like
        The new dataset directory.
    which, balance, include_reference, seed
        See `select_labels`.
    progress : callable (done, total), optional
        Called after each dataset part.

    Returns
    -------
    Path
        `out`.
    """
    chosen = select_labels(
        labels, which=which, balance=balance, include_reference=include_reference, seed=seed
    )
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    crowd = chosen.set_index("diaSourceId")
    tables, data, valid, edge = [], [], [], []
    parts = ds.parts
    for i, (part, stamps) in enumerate(ds.iter_parts()):
        if "diaSourceId" not in part.columns:
            msg = f"{ds.path}: the dataset has no diaSourceId column to match crowd labels on"
            raise InputError(msg)
        hit = part["diaSourceId"].isin(crowd.index).to_numpy()
        if hit.any():
            tables.append(part[hit])
            data.append(stamps.data[hit])
            valid.append(stamps.valid_fraction[hit])
            edge.append(stamps.edge[hit])
        if progress is not None:
            progress(i + 1, len(parts))
    found = sum(len(t) for t in tables)
    if found < len(crowd):
        msg = f"{ds.path}: {len(crowd) - found} of {len(crowd)} labelled diaSourceIds are not in the dataset"
        raise InputError(msg)
    if not found:
        msg = f"the {which} crowd label set is empty; nothing to write"
        raise InputError(msg)
    table = pd.concat(tables, ignore_index=True)
    if "label" in table.columns:
        table = table.rename(columns={"label": "label_original"})
    ids = table["diaSourceId"].to_numpy()
    table["label"] = crowd.loc[ids, "label"].to_numpy().astype("int8")
    table["labelSource"] = "crowd"
    table["crowd_p_real"] = crowd.loc[ids, "p_real"].to_numpy()
    stamps = Stamps(
        data=np.concatenate(data), valid_fraction=np.concatenate(valid), edge=np.concatenate(edge)
    )
    provenance = {
        "crowd_labels": {
            "set": which,
            "balanced": balance,
            "include_reference": include_reference,
            "seed": seed,
            "parent_dataset": str(ds.path),
            "parent_content_hash": ds.manifest.get("content_hash"),
        },
    }
    return write_dataset(out, table, stamps, provenance=provenance, overwrite=overwrite)
