"""Scoring alert packets in worker processes (decode, convert units, score), keeping the survey's ids.

The scorer is duck-typed (`realbogus.inference.scorer.Scorer`: `.card` with `stamp_size`,
`pixel_units`, `model_survey`, `.score_stamps(stamps, ids, status=, reason=)`), so this module
never imports torch itself.

Every packet ends as one row (docs/design.md, "Input faults"): scored, or reliability NaN with
`status` "decode-failed" (the packet or file does not decode), "unconvertible" (its stamps cannot
be brought to the card's pixel units) or "wrong-survey" (the card's survey is another; `force`
scores it anyway and says so in `reason`).
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

__all__ = [
    "PASS_THROUGH",
    "AlertScores",
    "check_survey",
    "failure_rows",
    "score_alerts",
    "score_batch",
]

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


def check_survey(
    batch: AlertBatch, survey: str | None, version: str, *, force: bool = False
) -> AlertBatch:
    """Refuse alerts of another survey than the model's (`survey`; None accepts any).

    Refused alerts leave the batch and join its failures ("wrong-survey"); with `force` they
    stay, and the table's `reason` column says they were forced.
    """
    if survey is None or not len(batch) or "survey" not in batch.table:
        return batch
    theirs = batch.table["survey"].astype(str).to_numpy()
    other = theirs != survey
    if not other.any():
        return batch
    what = [f"model {version} is for {survey}; this alert is {s}" for s in theirs]
    if force:
        table = batch.table.copy()
        table["reason"] = np.where(other, [f"forced (--force): {w}" for w in what], "")
        return AlertBatch(table, batch.stamps, batch.failures)
    failures = [
        AlertFailure(
            str(batch.table["file"].iat[i]),
            int(batch.table["index"].iat[i]),
            f"{what[i]}; score it with a {theirs[i]} model, or pass --force",
            int(batch.table["diaSourceId"].iat[i]),
            "wrong-survey",
        )
        for i in np.flatnonzero(other)
    ]
    keep = ~other
    stamps = Stamps(
        batch.stamps.data[keep], batch.stamps.valid_fraction[keep], batch.stamps.edge[keep]
    )
    table = batch.table[keep].reset_index(drop=True)
    return AlertBatch(table, stamps, [*batch.failures, *failures])


def score_batch(
    scorer,
    batch: AlertBatch,
    *,
    owned: bool = False,
    converted: bool = False,
    force: bool = False,
) -> AlertScores:
    """Score decoded alerts in the card's pixel units (`to_units`) after `check_survey`;
    unconvertible and refused ones become failures (no rows: `score_alerts` adds those).

    `owned`: the batch is this call's to change (its stamps are converted in place).
    `converted`: the batch is already checked and in the card's units (`score_alerts` does that
    in its workers).
    """
    if not converted:
        batch = _prepared(
            batch,
            expected=getattr(scorer.card, "pixel_units", None),
            survey=getattr(scorer.card, "model_survey", None),
            version=scorer.card.version,
            force=force,
            in_place=owned,
        )
    ids = (
        batch.table["diaSourceId"].to_numpy(dtype=np.int64) if len(batch) else np.zeros(0, np.int64)
    )
    reason = batch.table["reason"].to_numpy(object) if "reason" in batch.table else None
    table = scorer.score_stamps(batch.stamps, ids, reason=reason)
    for source, target in PASS_THROUGH.items():
        if source in batch.table:
            table[target] = batch.table[source].array
    return AlertScores(table, list(batch.failures))


def failure_rows(scorer, failures: list[AlertFailure]) -> pd.DataFrame:
    """Score table rows for packets that were not scored: reliability NaN, their `status` and
    `reason`, `diaSourceId` where known (else <NA>), `file` and `index`."""
    n, size = len(failures), int(scorer.card.stamp_size)
    blank = Stamps(  # a zero-stride view: no pixels are held, none are scored
        np.broadcast_to(np.zeros((1, 3, size, size), np.float32), (n, 3, size, size)),
        np.full(n, np.nan, np.float32),
        np.zeros(n, bool),
    )
    ids = np.array([-1 if f.diaSourceId is None else f.diaSourceId for f in failures], np.int64)
    table = scorer.score_stamps(
        blank,
        ids,
        status=np.array([f.status for f in failures], object),
        reason=np.array([f.reason for f in failures], object),
    )
    # int64 as on scored rows, nullable Int64 only where some id or index is unknown
    for column, values in (
        ("diaSourceId", [f.diaSourceId for f in failures]),
        ("index", [f.index for f in failures]),
    ):
        known = all(v is not None for v in values)
        table[column] = np.array(values, np.int64) if known else pd.array(values, dtype="Int64")
    table["file"] = pd.array([f.file for f in failures], dtype="string")
    return table


def _label(source) -> str:
    return str(source if not isinstance(source, (tuple, list)) else source[0])


def _with_failure_rows(scorer, scored: AlertScores, chunk: list) -> pd.DataFrame:
    """A chunk's score table with a row for each failure, in input order (file, record)."""
    if not scored.failures:
        return scored.table
    rows = failure_rows(scorer, scored.failures)
    parts = [t for t in (scored.table, rows) if len(t)]
    table = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    rank = {label: i for i, label in reversed(list(enumerate(map(_label, chunk))))}
    file_rank = np.array([rank.get(str(f), len(rank)) for f in table["file"]], np.int64)
    index = pd.array(table["index"], dtype="Int64").fillna(-1).to_numpy(np.int64)
    order = np.lexsort((index, file_rank))
    return table.iloc[order].reset_index(drop=True)


def score_alerts(
    scorer,
    sources: Source | Iterable[Source],
    *,
    workers: int | None = None,
    chunk_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
    force: bool = False,
) -> AlertScores:
    """Score Rubin and ZTF alert packets from files, folders or message bytes.

    Parameters
    ----------
    scorer : realbogus.inference.scorer.Scorer
        The model; its card's `stamp_size` sets the stamp size and `pixel_units` (when set)
        is what the alerts' stamps are converted to (`realbogus.alerts.units`: ZTF's DN to
        nJy with the candidate's `magzpsci`); alerts that cannot be converted are failures.
        Without `pixel_units` each alert keeps its units, but ZTF's sky is still taken off and
        its inverted differences turned (`realbogus.alerts.units.to_units`).
    sources : path, bytes, or iterable of them
        As for `realbogus.alerts.read_alerts`.
    workers, chunk_size : int
        Processes (None = one per CPU) and sources per work unit. With ONNX Runtime (the CPU
        backend) each process decodes and scores whole chunks with a single-threaded copy of
        the scorer; otherwise (torch, a GPU) they decode and this process scores.
    progress : callable(done, total), optional
        Called with the number of sources done.
    force : bool
        Score alerts of another survey than the card's (`check_survey`), saying so in `reason`.

    Returns
    -------
    AlertScores
        One row per alert packet, in input order (a file that does not decode at all: one row
        with index <NA>): scored, or reliability NaN with its `status` and `reason`; and the
        failures (those rows' reasons).
    """
    size = int(scorer.card.stamp_size)
    convert = functools.partial(
        _prepared,
        expected=getattr(scorer.card, "pixel_units", None),
        survey=getattr(scorer.card, "model_survey", None),
        version=scorer.card.version,
        force=force,
        in_place=True,
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
    for chunk, scored in zip(chunks, results, strict=True):
        failures.extend(scored.failures)
        table = _with_failure_rows(scorer, scored, chunk)
        if len(table):
            tables.append(table)
    for column in ("diaSourceId", "index"):  # one dtype: int64, or Int64 where some is <NA>
        if len({str(t[column].dtype) for t in tables}) > 1:
            tables = [t.astype({column: "Int64"}) for t in tables]
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
    """Each worker process decodes, checks, converts and scores whole chunks with its own single-threaded
    copy of the scorer; only score tables come back. On CPUs this beats decoding in workers and
    scoring here: the stamps (~48 kB an alert) never cross processes (docs/benchmarks.md)."""
    state = {**scorer.__getstate__(), "threads": 1}
    with ProcessPoolExecutor(
        max_workers=n_workers, initializer=_start_worker, initargs=(type(scorer), state)
    ) as pool:
        work = functools.partial(_score_chunk, size=int(scorer.card.stamp_size), convert=convert)
        yield from in_order(pool, work, chunks, 2 * n_workers, progress, total)


def _prepared(
    batch: AlertBatch,
    *,
    expected: str | None,
    survey: str | None,
    version: str,
    force: bool,
    in_place: bool,
) -> AlertBatch:
    """`check_survey`, then `to_units` (in a decoding worker, which owns the stamps): refused
    alerts leave the batch and join its failures."""
    batch = check_survey(batch, survey, version, force=force)
    if not len(batch):
        return batch
    converted, refused = to_units(batch, expected, version, in_place=in_place)
    return AlertBatch(converted.table, converted.stamps, [*converted.failures, *refused])


def _no_stamps(size: int) -> Stamps:
    return Stamps(
        np.zeros((0, 3, size, size), np.float32), np.zeros(0, np.float32), np.zeros(0, bool)
    )
