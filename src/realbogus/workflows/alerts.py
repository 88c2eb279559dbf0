"""Scoring a folder of real alert packets with several models, for the report's real-alerts section."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..alerts.reader import read_alerts
from ..alerts.score import score_batch
from ..errors import InputError
from ..evaluation.alerts import AlertRun
from ..inference.scorer import SCORED, Scorer

__all__ = ["score_alert_folder"]


def score_alert_folder(
    packages: Sequence[object], source: str | os.PathLike, *, workers: int | None = None
) -> AlertRun:
    """Decode alert packets once per stamp size and score them with each model package.

    Parameters
    ----------
    packages : sequence of (name, realbogus.ModelPackage)
        The models, named as in the report.
    source : path-like
        A folder of Rubin (``.msg``/Avro) or ZTF (``.avro``) packets, or one file.
    workers : int, optional
        Decoding processes (None: one per CPU).

    Returns
    -------
    AlertRun
        Only alerts every model scored (status "scored"), in input order.
    """
    if not os.path.exists(source):
        msg = f"--alerts {source}: no such file or folder"
        raise InputError(msg)
    batches: dict[int, object] = {}
    tables: dict[str, pd.DataFrame] = {}
    cutoffs: dict[str, float] = {}
    failed = 0
    first_size = None
    for name, package in packages:
        scorer = Scorer(package)
        size = int(scorer.card.stamp_size)
        first_size = size if first_size is None else first_size
        if size not in batches:
            batches[size] = read_alerts(source, stamp_size=size, workers=workers)
        scored = score_batch(scorer, batches[size])
        failed = max(failed, len(scored.failures))
        tables[name] = scored.table.reset_index(drop=True)
        cutoffs[name] = float(scorer.card.cutoff)
    if not tables:
        msg = "give at least one model package to score the alerts with"
        raise InputError(msg)
    scored = [t.loc[t["status"] == SCORED, "diaSourceId"] for t in tables.values()]
    common = set.intersection(*(set(ids.tolist()) for ids in scored))  # scored by every model
    batch = batches[first_size]
    ids = batch.table["diaSourceId"].to_numpy(np.int64)
    keep = np.flatnonzero(np.isin(ids, list(common)))
    order = ids[keep]
    for name, t in tables.items():
        tables[name] = t.set_index("diaSourceId").loc[order].reset_index()
    if len(keep) == 0:
        msg = f"--alerts {source}: no alert packet could be decoded and scored"
        raise InputError(msg)
    return AlertRun(str(source), tables, cutoffs, batch.stamps.data[keep], failed)
