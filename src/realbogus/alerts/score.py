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
from .units import to_units

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
    "unitFactor": "unitFactor",
    "skySubtracted": "skySubtracted",
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


def score_batch(scorer, batch: AlertBatch, *, owned: bool = False) -> AlertScores:
    """Score decoded alerts in the card's pixel units (`to_units`); unconvertible ones become failures.

    `owned`: the batch is this call's to change (its stamps are converted in place).
    """
    failures = list(batch.failures)
    expected = getattr(scorer.card, "pixel_units", None)
    if expected and len(batch):
        batch, refused = to_units(batch, expected, scorer.card.version, in_place=owned)
        failures.extend(refused)
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
        is what the alerts' stamps are converted to (`realbogus.alerts.units`: ZTF's DN to
        nJy with the candidate's `magzpsci`); alerts that cannot be converted are failures.
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
        scored = score_batch(scorer, batch, owned=True)
        failures.extend(scored.failures)
        if len(scored.table):
            tables.append(scored.table)
    if not tables:
        empty = score_batch(scorer, AlertBatch(pd.DataFrame({"diaSourceId": np.zeros(0, np.int64)}), _no_stamps(size), []))
        return AlertScores(empty.table, failures)
    return AlertScores(pd.concat(tables, ignore_index=True), failures)


def _no_stamps(size: int) -> Stamps:
    return Stamps(np.zeros((0, 3, size, size), np.float32), np.zeros(0, np.float32), np.zeros(0, bool))
