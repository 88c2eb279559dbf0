"""Scoring alert packets: decode in worker processes, score in this one, keep the survey's ids.

The scorer is duck-typed (`realbogus.scoring.Scorer`: `.card` with `stamp_size`, `pixel_units`,
`.score_stamps(stamps, ids)`), so this module never imports torch itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..stamps import Stamps
from .reader import AlertBatch, AlertFailure, Source, iter_alert_batches

__all__ = ["PASS_THROUGH", "AlertScores", "score_alerts", "score_batch"]

#: Alert columns copied into the score table: {alert table column: score table column}.
PASS_THROUGH = {
    "candid": "candid",
    "objectId": "objectId",
    "survey": "survey",
    "reliability": "surveyReliability",
    "reliabilityVersion": "surveyReliabilityVersion",
    "rb": "rb",
    "drb": "drb",
    "ssdistnr": "ssdistnr",
    "ssObjectId": "ssObjectId",
    "stampUnits": "stampUnits",
    "file": "file",
    "index": "index",
}


@dataclass(frozen=True)
class AlertScores:
    """Scores of alert packets.

    Attributes
    ----------
    table : pandas.DataFrame
        The score table (`diaSourceId` = Rubin diaSourceId or ZTF candid, `reliability`,
        `reliabilityVersion`, `valid_fraction`, `edge`, `passes_cutoff`) followed by
        `PASS_THROUGH` columns: the survey's own scores (`surveyReliability`, `rb`, `drb`),
        ids, and the packet's `file` and `index`.
    failures : list of AlertFailure
        Packets that were not scored, with the reason.
    """

    table: pd.DataFrame
    failures: list[AlertFailure]


def _select(batch: AlertBatch, keep: np.ndarray) -> AlertBatch:
    stamps = Stamps(batch.stamps.data[keep], batch.stamps.valid_fraction[keep], batch.stamps.edge[keep])
    return AlertBatch(batch.table[keep].reset_index(drop=True), stamps, batch.failures)


def score_batch(scorer, batch: AlertBatch) -> AlertScores:
    """Score decoded alerts; alerts whose stamp units differ from the card's become failures."""
    failures = list(batch.failures)
    expected = getattr(scorer.card, "pixel_units", None)
    if expected and len(batch):
        units = batch.table["stampUnits"].astype(str).to_numpy()
        keep = units == expected
        for file, index, unit in batch.table.loc[~keep, ["file", "index", "stampUnits"]].itertuples(index=False):
            failures.append(AlertFailure(file, int(index), f"stamps are in {unit} but model {scorer.card.version} expects {expected}"))
        if not keep.all():
            batch = _select(batch, keep)
    ids = batch.table["diaSourceId"].to_numpy(dtype=np.int64) if len(batch) else np.zeros(0, np.int64)
    table = scorer.score_stamps(batch.stamps, ids)
    for source, target in PASS_THROUGH.items():
        if source in batch.table:
            table[target] = batch.table[source].array
    return AlertScores(table, failures)


def score_alerts(
    scorer,
    sources: Source | Iterable[Source],
    *,
    workers: int | None = None,
    chunk_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> AlertScores:
    """Score Rubin and ZTF alert packets from files, folders or message bytes.

    Parameters
    ----------
    scorer : realbogus.scoring.Scorer
        The model; its card's `stamp_size` sets the stamp size and `pixel_units` (when set)
        must match the alerts' stamp units (nJy for Rubin, DN for ZTF).
    sources : path, bytes, or iterable of them
        As for `realbogus.alerts.read_alerts`.
    workers, chunk_size : int
        Decoding processes (None = one per CPU) and sources per work unit; chunks are
        scored here while workers decode the next ones.
    progress : callable(done, total), optional
        Called with the number of sources done.

    Returns
    -------
    AlertScores
        One row per scored alert, in input order, and the failures.
    """
    size = int(scorer.card.stamp_size)
    tables, failures = [], []
    for batch in iter_alert_batches(sources, stamp_size=size, workers=workers, chunk_size=chunk_size, progress=progress):
        scored = score_batch(scorer, batch)
        failures.extend(scored.failures)
        if len(scored.table):
            tables.append(scored.table)
    if not tables:
        empty = score_batch(scorer, AlertBatch(pd.DataFrame({"diaSourceId": np.zeros(0, np.int64)}), _no_stamps(size), []))
        return AlertScores(empty.table, failures)
    return AlertScores(pd.concat(tables, ignore_index=True), failures)


def _no_stamps(size: int) -> Stamps:
    return Stamps(np.zeros((0, 3, size, size), np.float32), np.zeros(0, np.float32), np.zeros(0, bool))
