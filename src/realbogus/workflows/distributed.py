"""Bulk scoring of a partitioned stamp dataset on a Dask cluster: one score part per input part.

The work unit is one Parquet part of a dataset (`realbogus.io.dataset`). Each part is scored by the same
`Scorer.score_part` that the single-process `Scorer.score_dataset` runs, so the output equals
the single-process score table row for row, and written atomically (temporary file, then
rename) to ``OUT/part-NNNNN.parquet`` with the score-table columns (docs/design.md).

Resumable: each output part carries, in its Parquet metadata, the fingerprint of its input part
(file name, size, modification time, row count, sha256 of the Parquet footer, which holds every
column chunk's size, offset and statistics) and of the scorer (model weights or graph, backend, precision).
A rerun skips every part whose output is readable, has the input's row count and matches both
fingerprints; everything else (missing, from an interrupted run, from other inputs or another
model) is scored again. Stale temporary files of killed runs are removed. When every part is
done, ``OUT/manifest.json`` lists them.

Schedulers: ``"local"`` starts a `distributed.LocalCluster` of `workers` processes on this
machine; ``"tcp://HOST:PORT"`` connects to a running scheduler (SLURM, Kubernetes: docs/scale.md),
whose workers must see the same file paths.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import struct
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ConfigError, InputError, StampShapeError
from ..inference.onnx import Int8Model
from ..inference.scorer import SCORE_COLUMNS, Scorer
from ..io.atomic import atomic_path
from ..io.dataset import Dataset, open_dataset, read_part
from ..io.jsonfile import dumps_strict
from ..model.package import ModelPackage
from ..numeric import available_cores

__all__ = [
    "SCORES_MANIFEST",
    "DistributedRun",
    "part_fingerprint",
    "read_scores",
    "score_distributed",
]

SCORES_MANIFEST = "manifest.json"
_META_KEY = b"realbogus.scores"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class DistributedRun:
    """What a `score_distributed` call did.

    Attributes
    ----------
    out : Path
        The output directory.
    scored : list of str
        Parts scored by this call.
    skipped : list of str
        Parts found complete from an earlier run and left untouched.
    n_rows : int
        Rows in the whole output.
    """

    out: Path
    scored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    n_rows: int = 0


def part_fingerprint(path: str | os.PathLike) -> dict:
    """Identity of a Parquet part without reading its data: name, size, mtime, rows, footer sha256.

    The footer (Parquet FileMetaData) holds the row count and every column chunk's offset,
    compressed size and min/max statistics; the modification time (ns) changes with any
    rewrite in place. A copy that keeps the mtime (``cp -p``, ``rsync -a``) keeps the identity.
    """
    path = Path(path)
    try:
        stat = path.stat()
        size, mtime_ns = stat.st_size, stat.st_mtime_ns
        with open(path, "rb") as handle:
            handle.seek(-8, os.SEEK_END)
            (length,) = struct.unpack("<i", handle.read(4))
            if handle.read(4) != b"PAR1" or not 0 < length <= size - 12:
                raise ValueError("no Parquet footer")
            handle.seek(-8 - length, os.SEEK_END)
            footer = handle.read(length)
        rows = pq.ParquetFile(path).metadata.num_rows
    except (OSError, ValueError, pa.ArrowException) as exc:
        msg = f"{path}: not a readable Parquet part ({exc})"
        raise InputError(msg) from exc
    return {
        "name": path.name,
        "size": size,
        "mtime_ns": mtime_ns,
        "rows": int(rows),
        "footer_sha256": hashlib.sha256(footer).hexdigest(),
    }


def _output_record(path: Path) -> dict | None:
    """The realbogus metadata of a finished output part, or None if absent/unreadable."""
    try:
        meta = pq.ParquetFile(path).metadata
        record = json.loads((meta.metadata or {})[_META_KEY])
        record["rows_on_disk"] = meta.num_rows
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None
    return record


def _is_complete(out_part: Path, source: dict, scorer_fingerprint: str) -> bool:
    record = _output_record(out_part) if out_part.is_file() else None
    return (
        record is not None
        and record.get("input") == source
        and record.get("scorer") == scorer_fingerprint
        and record["rows_on_disk"] == source["rows"]
    )


# --- the worker side ------------------------------------------------------------------------


@dataclass(frozen=True)
class _ScorerSpec:
    """What a worker needs to build the same Scorer (sent once per worker by Dask)."""

    package: ModelPackage
    backend: str
    device: str
    batch_size: int
    threads: int | None
    int8: Int8Model | None
    fingerprint: str


_SCORERS: dict[tuple[str, int | None], Scorer] = {}
_SCORERS_LOCK = threading.Lock()


def _worker_threads() -> int:
    """Cores per concurrently running task on this worker (cores / worker threads)."""
    try:
        from distributed import get_worker

        nthreads = int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        nthreads = 1
    return max(1, available_cores() // max(1, nthreads))


def _scorer_for(spec: _ScorerSpec) -> Scorer:
    key = (spec.fingerprint, spec.threads)
    with _SCORERS_LOCK:
        scorer = _SCORERS.get(key)
        if scorer is None:
            _SCORERS.clear()  # one model at a time per process
            scorer = Scorer(
                spec.package,
                batch_size=spec.batch_size,
                device=spec.device,
                backend=spec.backend,
                threads=spec.threads or _worker_threads(),
                int8=spec.int8 or False,
            )
            _SCORERS[key] = scorer
    return scorer


def _score_one(
    spec: _ScorerSpec, part: str, out_part: str, first_row: int, source: dict, stamp_size: int
) -> int:
    """Score one input part and write its output part atomically; returns its row count."""
    table, stamps = read_part(part, stamp_size)
    if len(table) != source["rows"]:
        msg = f"{part}: has {len(table)} rows, its footer said {source['rows']} (changed while scoring?)"
        raise InputError(msg)
    scores = _scorer_for(spec).score_part(table, stamps, first_row=first_row)
    arrow = pa.Table.from_pandas(scores, preserve_index=False)
    record = {
        "input": source,
        "scorer": spec.fingerprint,
        "first_row": first_row,
        "model_version": spec.package.version,
    }
    arrow = arrow.replace_schema_metadata(
        {**(arrow.schema.metadata or {}), _META_KEY: json.dumps(record).encode()}
    )
    with atomic_path(out_part) as tmp:
        pq.write_table(arrow, tmp)
    return len(scores)


# --- the client side ------------------------------------------------------------------------

_ADDRESS_PREFIXES = ("tcp://", "tls://", "inproc://", "ucx://")


def _check_scheduler(scheduler: str, workers: int | None) -> None:
    if not isinstance(scheduler, str) or not (
        scheduler == "local" or scheduler.startswith(_ADDRESS_PREFIXES)
    ):
        msg = f"scheduler must be 'local' or a scheduler address like 'tcp://HOST:8786'; got {scheduler!r}"
        raise ConfigError(msg)
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        msg = f"--workers (workers) must be a positive integer; got {workers!r}"
        raise ConfigError(msg)
    if workers is not None and scheduler != "local":
        msg = f"--workers is only for --scheduler local; the cluster at {scheduler} has its own"
        raise ConfigError(msg)


@contextlib.contextmanager
def _client(scheduler: str, workers: int | None) -> Iterator[object]:
    """A distributed.Client: of a LocalCluster of `workers` processes, or of a running scheduler."""
    from distributed import Client, LocalCluster

    if scheduler == "local":
        with (
            LocalCluster(
                n_workers=workers or 1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
    else:
        with Client(scheduler) as client:
            yield client


def _clean_stale_temporaries(out: Path) -> None:
    """Remove temporary files of killed runs (one run per output directory at a time)."""
    for pattern in (".part-*.parquet.*.tmp", f".{SCORES_MANIFEST}.*.tmp"):
        for tmp in out.glob(pattern):
            tmp.unlink(missing_ok=True)


def score_distributed(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    package: ModelPackage,
    scheduler: str = "local",
    workers: int | None = None,
    threads: int | None = None,
    backend: str = "auto",
    device: str = "auto",
    batch_size: int | None = None,
    int8: bool | Int8Model = False,
    check_stamps=None,
    client=None,
    progress: Progress | None = None,
) -> DistributedRun:
    """Score every part of a stamp dataset on a Dask cluster into a directory of score parts.

    Parameters
    ----------
    data : path-like
        A realbogus dataset directory (Parquet parts + manifest.json).
    out : path-like
        Output directory: ``part-NNNNN.parquet`` (score table, one per input part, same names)
        and ``manifest.json``. Rerunning into it resumes: finished parts are skipped.
    package : ModelPackage
    scheduler : str
        ``"local"`` (a LocalCluster of `workers` processes here) or a scheduler address.
    workers : int, optional
        Local worker processes (default 1); only with ``scheduler="local"``.
    threads : int, optional
        Cores each task's Scorer uses. Default: local, this machine's cores / `workers`; remote,
        each worker's cores / its Dask threads.
    backend, device, batch_size, int8, check_stamps
        As for `Scorer`. An int8 graph is quantised and verified once, here, and shipped.
    client : distributed.Client, optional
        An existing client to use instead of `scheduler` (its cluster is left running).
    progress : callable(done, total), optional
        Rows done (including skipped parts) and total rows, after each part.

    Returns
    -------
    DistributedRun
    """
    dataset = open_dataset(data)
    out = Path(out)
    if out.resolve() == dataset.path.resolve():
        msg = f"{out}: the output directory must not be the input dataset"
        raise ConfigError(msg)
    if client is None:
        _check_scheduler(scheduler, workers)
    if client is None and scheduler == "local" and threads is None:
        threads = max(1, available_cores() // (workers or 1))
    # Built here first: validates every option and runs the int8 check once, before any work.
    scorer = Scorer(
        package,
        batch_size=batch_size,
        device=device,
        backend=backend,
        threads=threads,
        int8=int8,
        check_stamps=check_stamps,
    )
    if dataset.stamp_size != scorer.card.stamp_size:
        msg = f"{dataset.path}: stamps are {dataset.stamp_size} px but model {scorer.version} takes {scorer.card.stamp_size} px"
        raise StampShapeError(msg)
    spec = _ScorerSpec(
        package=package,
        backend=scorer.backend,
        device=str(scorer.device),
        batch_size=scorer.batch_size,
        threads=threads,
        int8=scorer.int8_model,
        fingerprint=scorer.fingerprint,
    )
    sources = [part_fingerprint(p) for p in dataset.parts]
    first_rows = list(itertools.accumulate((s["rows"] for s in sources), initial=0))[:-1]
    total = sum(s["rows"] for s in sources)

    out.mkdir(parents=True, exist_ok=True)
    _clean_stale_temporaries(out)
    todo, skipped, done_rows = [], [], 0
    for part, source, first in zip(dataset.parts, sources, first_rows, strict=True):
        if _is_complete(out / part.name, source, spec.fingerprint):
            skipped.append(part.name)
            done_rows += source["rows"]
        else:
            todo.append((part, source, first))
    if progress is not None:
        progress(done_rows, total)

    scored: list[str] = []
    if todo:
        context = (
            contextlib.nullcontext(client) if client is not None else _client(scheduler, workers)
        )
        with context as active:
            scored = _run(active, spec, todo, out, dataset, done_rows, total, progress)
    _write_manifest(out, dataset, sources, first_rows, scorer)
    return DistributedRun(out=out, scored=scored, skipped=skipped, n_rows=total)


def _run(
    client, spec, todo, out: Path, dataset: Dataset, done_rows: int, total: int, progress
) -> list[str]:
    from distributed import as_completed

    [spec_future] = client.scatter([spec], broadcast=True, hash=False)
    futures = {
        client.submit(
            _score_one,
            spec_future,
            str(part),
            str(out / part.name),
            first,
            source,
            dataset.stamp_size,
            key=f"realbogus-score-{part.name}-{uuid.uuid4().hex}",
            pure=False,
        ): part.name
        for part, source, first in todo
    }
    scored = []
    try:
        for future in as_completed(futures):
            done_rows += future.result()  # a task's error is raised here, with its own type
            scored.append(futures[future])
            if progress is not None:
                progress(done_rows, total)
    finally:
        client.cancel(list(futures))
    return sorted(scored)


def _write_manifest(
    out: Path, dataset: Dataset, sources: list[dict], first_rows: list[int], scorer: Scorer
) -> None:
    manifest = {
        "kind": "realbogus scores",
        "input": str(dataset.path),
        "input_content_hash": dataset.manifest.get("content_hash"),
        "n_rows": sum(s["rows"] for s in sources),
        "columns": list(SCORE_COLUMNS),
        "parts": [
            {"name": s["name"], "rows": s["rows"], "first_row": first}
            for s, first in zip(sources, first_rows, strict=True)
        ],
        "model_version": scorer.version,
        "backend": scorer.backend,
        "precision": scorer.precision,
        "scorer": scorer.fingerprint,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with atomic_path(out / SCORES_MANIFEST) as tmp:
        tmp.write_text(dumps_strict(manifest))


def read_scores(out: str | os.PathLike, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The score table of a finished `score_distributed` output, in dataset order.

    Parameters
    ----------
    out : path-like
        The output directory.
    columns : sequence of str, optional
        Read only these score columns (e.g. ``["status", "reason"]``); default all.
    """
    out = Path(out)
    manifest_path = out / SCORES_MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        msg = f"{manifest_path}: no finished score output here ({exc})"
        raise InputError(msg) from exc
    frames = []
    for part in manifest["parts"]:
        path = out / part["name"]
        try:
            frame = pq.read_table(
                path, columns=None if columns is None else list(columns)
            ).to_pandas()
        except (OSError, pa.ArrowException) as exc:
            msg = f"{path}: unreadable score part ({exc})"
            raise InputError(msg) from exc
        if len(frame) != part["rows"]:
            msg = f"{path}: has {len(frame)} rows, the manifest says {part['rows']}"
            raise InputError(msg)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=list(SCORE_COLUMNS if columns is None else columns))
    return pd.concat(frames, ignore_index=True)
