"""Scoring alert packets in worker processes (decode, convert units, score), keeping the survey's ids.

The scorer is duck-typed (`realbogus.inference.scorer.Scorer`: `.card` with `stamp_size`, `pixel_units`,
`.score_stamps(stamps, ids)`), so this module never imports torch itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..stamps import Stamps
from .reader import (
    AlertBatch,
    AlertFailure,
    Source,
    decode_chunk,
    in_order,
    iter_planned_batches,
    plan_chunks,
)
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
    "differenceNegated": "differenceNegated",
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


def score_batch(
    scorer, batch: AlertBatch, *, owned: bool = False, converted: bool = False
) -> AlertScores:
    """Score decoded alerts in the card's pixel units (`to_units`); unconvertible ones become failures.

    `owned`: the batch is this call's to change (its stamps are converted in place).
    `converted`: the batch is already in the card's units (`score_alerts` converts in its workers).
    """
    failures = list(batch.failures)
    expected = getattr(scorer.card, "pixel_units", None)
    if expected and len(batch) and not converted:
        batch, refused = to_units(batch, expected, scorer.card.version, in_place=owned)
        failures.extend(refused)
    ids = (
        batch.table["diaSourceId"].to_numpy(dtype=np.int64) if len(batch) else np.zeros(0, np.int64)
    )
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
    scorer : realbogus.inference.scorer.Scorer
        The model; its card's `stamp_size` sets the stamp size and `pixel_units` (when set)
        is what the alerts' stamps are converted to (`realbogus.alerts.units`: ZTF's DN to
        nJy with the candidate's `magzpsci`); alerts that cannot be converted are failures.
    sources : path, bytes, or iterable of them
        As for `realbogus.alerts.read_alerts`.
    workers, chunk_size : int
        Processes (None = one per CPU) and sources per work unit. With ONNX Runtime (the CPU
        backend) each process decodes and scores whole chunks with a single-threaded copy of
        the scorer; otherwise (torch, a GPU) they decode and this process scores.
    progress : callable(done, total), optional
        Called with the number of sources done.

    Returns
    -------
    AlertScores
        One row per scored alert, in input order, and the failures.
    """
    size = int(scorer.card.stamp_size)
    expected = getattr(scorer.card, "pixel_units", None)
    convert = (
        functools.partial(_converted, expected=expected, version=scorer.card.version)
        if expected
        else None
    )
    chunks, n_workers, total = plan_chunks(
        sources, stamp_size=size, workers=workers, chunk_size=chunk_size
    )
    if n_workers > 1 and len(chunks) > 1 and getattr(scorer, "backend", None) == "onnx":
        results = _score_in_workers(
            scorer, chunks, min(n_workers, len(chunks)), convert, progress, total
        )
    else:  # one process, or a GPU in this one: workers decode, this process scores
        batches = iter_planned_batches(
            chunks, n_workers, total, stamp_size=size, progress=progress, convert=convert
        )
        results = (score_batch(scorer, batch, converted=True) for batch in batches)
    tables, failures = [], []
    for scored in results:
        failures.extend(scored.failures)
        if len(scored.table):
            tables.append(scored.table)
    if not tables:
        empty = score_batch(
            scorer,
            AlertBatch(pd.DataFrame({"diaSourceId": np.zeros(0, np.int64)}), _no_stamps(size), []),
        )
        return AlertScores(empty.table, failures)
    return AlertScores(pd.concat(tables, ignore_index=True), failures)


#: The scorer of a `_score_in_workers` process.
_WORKER_SCORER = None


def _start_worker(scorer_class: type, state: dict) -> None:
    global _WORKER_SCORER  # noqa: PLW0603 - one scorer per worker process
    scorer = scorer_class.__new__(scorer_class)
    scorer.__setstate__(state)
    _WORKER_SCORER = scorer


def _score_chunk(sources: list, size: int, convert) -> AlertScores:
    batch = AlertBatch(*decode_chunk(sources, size, convert))
    return score_batch(_WORKER_SCORER, batch, converted=True)


def _score_in_workers(
    scorer, chunks: list, n_workers: int, convert, progress, total: int
) -> Iterator[AlertScores]:
    """Each worker process decodes, converts and scores whole chunks with its own single-threaded
    copy of the scorer; only score tables come back. On CPUs this beats decoding in workers and
    scoring here: the stamps (~48 kB an alert) never cross processes (docs/benchmarks.md)."""
    state = {**scorer.__getstate__(), "threads": 1}
    with ProcessPoolExecutor(
        max_workers=n_workers, initializer=_start_worker, initargs=(type(scorer), state)
    ) as pool:
        work = functools.partial(_score_chunk, size=int(scorer.card.stamp_size), convert=convert)
        yield from in_order(pool, work, chunks, 2 * n_workers, progress, total)


def _converted(batch: AlertBatch, expected: str, version: str) -> AlertBatch:
    """`to_units` in a decoding worker (which owns the stamps): refused alerts join the failures."""
    converted, refused = to_units(batch, expected, version, in_place=True)
    return AlertBatch(converted.table, converted.stamps, [*converted.failures, *refused])


def _no_stamps(size: int) -> Stamps:
    return Stamps(
        np.zeros((0, 3, size, size), np.float32), np.zeros(0, np.float32), np.zeros(0, bool)
    )
