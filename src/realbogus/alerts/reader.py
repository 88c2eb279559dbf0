"""Batch reading of alert packets into a detection table and stamps of a model's size.

Sources may be files (Avro container files with any number of records, Confluent wire-format
Rubin messages), folders of such files, or in-memory Kafka message payloads (bytes). Work is
split into chunks of sources that worker processes decode (`concurrent.futures`); results come
back in input order, the stamp pixels through a file in /dev/shm where there is one (cheaper for
the receiving process than the result pipe). A bad packet never stops the batch: it becomes an
`AlertFailure` with its file, record index and reason, and its row is absent from the decoded
table (`score_alerts` gives it a score-table row with reliability NaN and that reason).
"""

from __future__ import annotations

import errno
import functools
import mmap
import os
import shutil
import stat
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputError
from ..stamps import CHANNELS, Stamps, resize_stamps
from ._avro import (
    CONFLUENT_MAGIC,
    CONTAINER_MAGIC,
    container_blocks,
    decode_confluent,
    read_container,
)
from .formats import decode_record, read_fields
from .rubin import RUBIN_FIELDS
from .ztf import ZTF_FIELDS

__all__ = [
    "ALERT_COLUMNS",
    "ALERT_SUFFIXES",
    "AlertBatch",
    "AlertFailure",
    "BLANK_LIMIT",
    "Source",
    "blank_to_nan",
    "expand_sources",
    "iter_sources",
    "iter_alert_batches",
    "read_alerts",
    "decode_alert_bytes",
]

#: File name endings taken from folders (files named explicitly are read whatever their name).
ALERT_SUFFIXES = (".avro", ".msg", ".kafka", ".bin")
#: Columns every alert table has, besides the survey's own fields.
BASE_COLUMNS = ("file", "index", "survey", "schema", "stampUnits", "cutoutShape")
_INT = (
    "index",
    "diaSourceId",
    "candid",
    "diaObjectId",
    "ssObjectId",
    "visit",
    "detector",
    "pid",
    "field",
    "rcid",
    "fid",
    "programid",
    "nbad",
    "nneg",
    "ndethist",
)
_BOOL = ("isNegative", "isDipole")
_STR = (
    "file",
    "survey",
    "schema",
    "stampUnits",
    "cutoutShape",
    "objectId",
    "band",
    "isdiffpos",
    "rbversion",
    "drbversion",
    "ssnamenr",
    "reliabilityVersion",
)
#: Every column of an alert table, in order; ids are nullable Int64 (exact 64-bit values).
ALERT_COLUMNS = tuple(
    dict.fromkeys(
        (
            *BASE_COLUMNS,
            "diaSourceId",
            "candid",
            "objectId",
            "x",
            "y",
            "ra",
            "dec",
            "isNegative",
            "band",
            *RUBIN_FIELDS,
            *ZTF_FIELDS,
        )
    )
)
_DTYPES = {
    c: "Int64" if c in _INT else "boolean" if c in _BOOL else "string" if c in _STR else "Float64"
    for c in ALERT_COLUMNS
}

#: Pixels beyond this magnitude are blanks, not data (ZTF fills blank template pixels with
#: -3.4e38 = -FLT_MAX); like NaN they become 0 and count out of `valid_fraction`.
BLANK_LIMIT = 1e30

Source = str | os.PathLike | bytes
Progress = Callable[[int, int], None]
#: A picklable function a worker applies to each decoded chunk (e.g. unit conversion).
Convert = Callable[["AlertBatch"], "AlertBatch"]


class AlertFailure(NamedTuple):
    """A packet that could not be read: its file (or message label), record index and reason.

    `index` is the record's position in its file (0 for single messages), or None when the
    file as a whole is unreadable (not Avro, corrupt header) and no record could be counted.
    `diaSourceId` is the alert's id where it was decoded (a refused conversion), and `status`
    the score table's status of its row: "decode-failed", "unconvertible" or "wrong-survey".
    """

    file: str
    index: int | None
    reason: str
    diaSourceId: int | None = None
    status: str = "decode-failed"


@dataclass(frozen=True)
class AlertBatch:
    """Decoded alerts.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per decoded alert, in input order: `file`, `index` (record within the file),
        `survey` ('rubin' or 'ztf'), `schema` (Rubin schema id / ZTF schemavsn), `stampUnits`
        (pixel unit of the stamps: 'nJy' for Rubin, 'DN' for ZTF), `cutoutShape` ("HxW" of the
        difference cutout) and the survey's fields with DiaSource names (`diaSourceId` = ZTF
        `candid`, `x`, `y` 0-based pixels, `ra`, `dec` degrees, `isNegative`, `reliability`
        (Rubin's own score), ZTF `rb`, `drb`, `ssdistnr`, ...).
    stamps : Stamps
        (N, 3, S, S) float32 in CHANNELS order, in `stampUnits`, centred on the source pixel;
        NaN, blank (|value| > `BLANK_LIMIT`) and missing pixels are 0 and counted out of
        `valid_fraction`.
    failures : list of AlertFailure
        Packets that were rejected, with the reason.
    """

    table: pd.DataFrame
    stamps: Stamps
    failures: list[AlertFailure]

    def __len__(self) -> int:
        return len(self.table)


def _empty_stamps(size: int) -> Stamps:
    return Stamps(
        data=np.zeros((0, len(CHANNELS), size, size), dtype=np.float32),
        valid_fraction=np.zeros(0, dtype=np.float32),
        edge=np.zeros(0, dtype=bool),
    )


def _table(rows: list[dict]) -> pd.DataFrame:
    """Rows -> a table with every `ALERT_COLUMNS` column and fixed dtypes (so chunks concatenate)."""
    return pd.DataFrame(
        {c: pd.array([r.get(c) for r in rows], dtype=_DTYPES[c]) for c in ALERT_COLUMNS}
    )


def _empty_table() -> pd.DataFrame:
    return _table([])


#: Top-level record fields the reader needs; the others are skipped while decoding.
READ_FIELDS = read_fields()  # of the built-in formats; the reader asks `read_fields()` each time


def decode_alert_bytes(
    buf: bytes, *, where: str, keep: frozenset[str] | None = READ_FIELDS, first_index: int = 0
) -> Iterator[tuple[int, dict | InputError, str | None]]:
    """Yield (index, record or InputError, Rubin schema id or None) for every packet in `buf`.

    Only the top-level fields in `keep` are decoded (all when None); container record indices
    start at `first_index` (for a slice of a file's blocks).
    """
    if buf[:4] == CONTAINER_MAGIC:
        container = read_container(buf, where=where)
        for index, record in container.records(keep):
            yield first_index + index, record, None
    elif buf[:1] == CONFLUENT_MAGIC:
        try:
            schema_id, record = decode_confluent(buf, where=where, keep=keep)
        except InputError as exc:
            yield 0, exc, None
        else:
            yield 0, record, str(schema_id)
    else:
        msg = f"{where}: neither an Avro container file ('Obj\\x01') nor a Confluent message (0x00); starts {bytes(buf[:4])!r}"
        raise InputError(msg)


def blank_to_nan(plane: np.ndarray) -> np.ndarray:
    """`plane` with |value| > `BLANK_LIMIT` set to NaN (a copy only when there are any)."""
    if plane.dtype.kind != "f":
        return plane
    blank = np.abs(plane) > BLANK_LIMIT
    if blank.any():
        plane = plane.copy()
        plane[blank] = np.nan
    return plane


class _Slice(NamedTuple):
    """Consecutive blocks of a large container file: a work unit of its own."""

    path: str
    header_end: int
    start: int
    end: int
    first_index: int
    n_records: int


def _read_source(source: str | tuple[str, bytes] | _Slice) -> tuple[str, bytes, int]:
    """-> (label, bytes, index of the first record)."""
    if isinstance(source, _Slice):
        try:
            with open(source.path, "rb") as handle:
                header = handle.read(source.header_end)
                handle.seek(source.start)
                return (
                    source.path,
                    header + handle.read(source.end - source.start),
                    source.first_index,
                )
        except OSError as exc:
            msg = f"{source.path}: cannot be read ({exc.strerror or exc})"
            raise InputError(msg) from exc
    if isinstance(source, tuple):
        return source[0], source[1], 0
    try:
        with open(source, "rb") as handle:
            return source, handle.read(), 0
    except OSError as exc:
        msg = f"{source}: cannot be read ({exc.strerror or exc})"
        raise InputError(msg) from exc


def decode_chunk(
    sources: list, size: int, convert: Convert | None = None
) -> tuple[pd.DataFrame, Stamps, list[AlertFailure]]:
    """Worker: decode a list of sources into (table, stamps, failures), then `convert` them.
    Never raises InputError."""
    rows, triplets, centres, failures = [], [], [], []
    for source in sources:
        label = source if isinstance(source, str) else source[0]
        try:
            label, buf, first_index = _read_source(source)
            packets = decode_alert_bytes(
                buf, where=label, keep=read_fields(), first_index=first_index
            )
            for index, record, schema in packets:
                if isinstance(record, InputError):
                    failures.append(AlertFailure(label, index, str(record)))
                    continue
                where = f"{label} record {index}"
                try:
                    row, planes, plane_centres, unit = decode_record(record, where)
                except InputError as exc:
                    failures.append(AlertFailure(label, index, str(exc)))
                    continue
                row["file"], row["index"], row["stampUnits"] = label, index, unit
                row["cutoutShape"] = f"{planes[0].shape[0]}x{planes[0].shape[1]}"
                if schema is not None:
                    row["schema"] = schema
                rows.append(row)
                triplets.append(planes)
                centres.append(plane_centres)
        except InputError as exc:
            failures.append(AlertFailure(label, None, str(exc)))
    if not rows:
        return _empty_table(), _empty_stamps(size), failures
    stamps = resize_stamps(
        triplets, size, centres=np.asarray(centres, dtype=np.int64), blank_limit=BLANK_LIMIT
    )
    if convert is None:
        return _table(rows), stamps, failures
    batch = convert(AlertBatch(_table(rows), stamps, failures))
    return batch.table, batch.stamps, batch.failures


def expand_sources(
    sources: Source | Iterable[Source], *, suffixes: Sequence[str] = ALERT_SUFFIXES
) -> list:
    """Flatten paths, folders and message bytes into a list of file paths and (label, bytes).

    Folders are walked recursively in sorted order and contribute files whose name ends in one
    of `suffixes`; hidden files are skipped. A path that does not exist is an error.
    """
    return list(iter_sources(sources, suffixes=suffixes))


def iter_sources(
    sources: Source | Iterable[Source], *, suffixes: Sequence[str] = ALERT_SUFFIXES
) -> Iterator:
    """`expand_sources` one item at a time: whether a folder holds any alert file is known at its
    first (`next(iter_sources(folder), None)`), without walking all of it."""
    if isinstance(sources, (str, os.PathLike, bytes, bytearray)):
        sources = [sources]
    for i, source in enumerate(sources):
        if isinstance(source, (bytes, bytearray, memoryview)):
            yield (f"message[{i}]", bytes(source))
            continue
        path = Path(source)
        if _is_dir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                yield from (
                    os.path.join(root, name)
                    for name in sorted(files)
                    if not name.startswith(".") and name.endswith(tuple(suffixes))
                )
        else:
            yield os.fspath(path)


def _is_dir(path: Path) -> bool:
    """Whether `path` is a folder; InputError when nothing is there (one stat, for long file lists)."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP):
            msg = f"{path}: no such file or folder"
            raise InputError(msg) from None
        raise
    except ValueError:  # e.g. an embedded NUL
        msg = f"{path}: no such file or folder"
        raise InputError(msg) from None


#: Container files larger than this are split into slices of blocks decoded in parallel.
SPLIT_BYTES = 8 << 20


def _weight(item: object) -> int:
    return item.n_records if isinstance(item, _Slice) else 1


def _split_large(items: list, target: int) -> list:
    """Replace large container files by slices of about `target` records (whole blocks)."""
    out = []
    for item in items:
        if not isinstance(item, str) or os.path.getsize(item) < SPLIT_BYTES:
            out.append(item)
            continue
        try:
            with open(item, "rb") as handle:
                is_container = handle.read(4) == CONTAINER_MAGIC
            header_end, blocks = container_blocks(item) if is_container else (0, [])
        except (InputError, OSError):
            blocks = []  # the worker will read the whole file and report what is wrong
        if len(blocks) < 2:
            out.append(item)
            continue
        first = index = n = 0
        for k, (offset, count, nbytes) in enumerate(blocks):
            if n == 0:
                start, first = offset, index
            n += count
            index += count
            if n >= target or k == len(blocks) - 1:
                out.append(_Slice(item, header_end, start, offset + nbytes, first, n))
                n = 0
    return out


def _chunks(items: list, n_chunks: int, max_chunk: int) -> list[list]:
    """Group work items into chunks of about equal weight (records), at most `max_chunk` each."""
    total = sum(_weight(i) for i in items)
    target = max(1, min(max_chunk, -(-total // max(1, n_chunks))))
    chunks, current, weight = [], [], 0
    for item in items:
        current.append(item)
        weight += _weight(item)
        if weight >= target:
            chunks.append(current)
            current, weight = [], 0
    if current:
        chunks.append(current)
    return chunks


def _check_options(stamp_size: int, workers: int | None, chunk_size: int) -> int:
    if not isinstance(stamp_size, (int, np.integer)) or stamp_size < 1:
        msg = f"stamp_size must be a positive integer; got {stamp_size!r}"
        raise ConfigError(msg)
    if workers is not None and (not isinstance(workers, int) or workers < 0):
        msg = (
            f"workers must be None (one per CPU), 0 or 1 (in this process) or more; got {workers!r}"
        )
        raise ConfigError(msg)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        msg = f"chunk_size must be a positive integer; got {chunk_size!r}"
        raise ConfigError(msg)
    return os.cpu_count() or 1 if workers is None else max(1, workers)


def plan_chunks(
    sources: Source | Iterable[Source], *, stamp_size: int, workers: int | None, chunk_size: int
) -> tuple[list[list], int, int]:
    """Work units for `workers` processes: (chunks of sources, number of processes, total weight).

    Large container files are split into slices of blocks when there is more than one process;
    a chunk's weight is its files and messages plus its slices' records (what `progress` counts).
    """
    n_workers = _check_options(stamp_size, workers, chunk_size)
    items = expand_sources(sources)
    if n_workers > 1:
        items = _split_large(items, chunk_size)
    return _chunks(items, n_workers * 4, chunk_size), n_workers, sum(_weight(i) for i in items)


def chunk_weight(chunk: list) -> int:
    """Progress units of one chunk of `plan_chunks`."""
    return sum(_weight(i) for i in chunk)


def in_order(
    pool: Executor,
    work: Callable,
    chunks: list,
    depth: int,
    progress: Progress | None = None,
    total: int = 0,
) -> Iterator:
    """`work(chunk)` for every chunk on `pool`, results in chunk order, at most `depth` in flight."""
    pending: deque = deque()
    queue = iter(chunks)
    done = 0
    for chunk in queue:
        pending.append((chunk_weight(chunk), pool.submit(work, chunk)))
        if len(pending) >= depth:
            break
    while pending:
        n, future = pending.popleft()
        for chunk in queue:
            pending.append((chunk_weight(chunk), pool.submit(work, chunk)))
            break
        result = future.result()
        done += n
        if progress is not None:
            progress(done, total)
        yield result


def iter_alert_batches(
    sources: Source | Iterable[Source],
    *,
    stamp_size: int,
    workers: int | None = None,
    chunk_size: int = 256,
    progress: Progress | None = None,
    convert: Convert | None = None,
) -> Iterator[AlertBatch]:
    """Decode alerts chunk by chunk, in input order, while workers decode the next chunks.

    Parameters are those of `read_alerts`; each yielded `AlertBatch` covers one chunk of
    sources. At most two chunks per worker are in flight, so memory stays bounded. `convert`
    (picklable, e.g. a `functools.partial` of a module-level function) is applied to each
    decoded chunk by the worker, while its stamps are in cache: it returns the batch to yield,
    with any alerts it refuses moved to the failures.
    """
    chunks, n_workers, total = plan_chunks(
        sources, stamp_size=stamp_size, workers=workers, chunk_size=chunk_size
    )
    return iter_planned_batches(
        chunks, n_workers, total, stamp_size=int(stamp_size), progress=progress, convert=convert
    )


def iter_planned_batches(
    chunks: list[list],
    n_workers: int,
    total: int,
    *,
    stamp_size: int,
    progress: Progress | None = None,
    convert: Convert | None = None,
) -> Iterator[AlertBatch]:
    """`iter_alert_batches` on the work units of `plan_chunks`."""
    done = 0
    if n_workers == 1 or len(chunks) <= 1:
        for chunk in chunks:
            batch = AlertBatch(*decode_chunk(chunk, stamp_size, convert))
            done += chunk_weight(chunk)
            if progress is not None:
                progress(done, total)
            yield batch
        return
    folder = _handoff_folder()
    try:
        with ProcessPoolExecutor(max_workers=min(n_workers, len(chunks))) as pool:
            work = functools.partial(
                _decode_chunk_handoff, size=stamp_size, folder=folder, convert=convert
            )
            for table, stamps, failures in in_order(
                pool, work, chunks, 2 * n_workers, progress, total
            ):
                yield AlertBatch(table, _received(stamps), failures)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


#: Where workers leave decoded stamps for this process (memory-backed; None: pickle them).
HANDOFF_ROOT = "/dev/shm"


def _handoff_folder() -> str | None:
    """A private folder in `HANDOFF_ROOT` for this batch's stamp files, or None when unavailable."""
    if not os.path.isdir(HANDOFF_ROOT) or not os.access(HANDOFF_ROOT, os.W_OK):
        return None
    try:
        return tempfile.mkdtemp(prefix="realbogus-", dir=HANDOFF_ROOT)
    except OSError:
        return None


class _StampFile(NamedTuple):
    """Stamps a worker left in a file: the pixels travel outside the result pipe."""

    path: str
    shape: tuple[int, ...]
    valid_fraction: np.ndarray
    edge: np.ndarray


def _decode_chunk_handoff(
    sources: list, size: int, folder: str | None, convert: Convert | None = None
) -> tuple[pd.DataFrame, Stamps | _StampFile, list[AlertFailure]]:
    """Worker: `decode_chunk`, with the stamp pixels written to a file in `folder`.

    Sending ~48 kB of pixels per alert through the result pipe costs the receiving process
    more CPU than reading them from a memory-backed file. Falls back to the pipe when the
    file cannot be written (e.g. the folder is full).
    """
    table, stamps, failures = decode_chunk(sources, size, convert)
    if folder is None or stamps.data.size == 0:
        return table, stamps, failures
    path = None
    try:
        fd, path = tempfile.mkstemp(dir=folder, suffix=".f32")
        with os.fdopen(fd, "wb") as handle:
            handle.write(memoryview(np.ascontiguousarray(stamps.data)).cast("B"))
    except OSError:
        if path is not None:
            _unlink(path)
        return table, stamps, failures
    return table, _StampFile(path, stamps.data.shape, stamps.valid_fraction, stamps.edge), failures


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _received(stamps: Stamps | _StampFile) -> Stamps:
    """The stamps of a worker's result; a stamp file is mapped (copy-on-write) and removed."""
    if isinstance(stamps, Stamps):
        return stamps
    try:
        with open(stamps.path, "rb") as handle:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
    finally:
        _unlink(stamps.path)
    data = np.frombuffer(mapped, dtype=np.float32).reshape(stamps.shape)
    return Stamps(data=data, valid_fraction=stamps.valid_fraction, edge=stamps.edge)


def concat_batches(batches: Iterable[AlertBatch], stamp_size: int) -> AlertBatch:
    """Join batches into one, preserving order."""
    batches = [b for b in batches]
    failures = [f for b in batches for f in b.failures]
    full = [b for b in batches if len(b)]
    if not full:
        return AlertBatch(_empty_table(), _empty_stamps(stamp_size), failures)
    table = (
        pd.concat([b.table for b in full], ignore_index=True) if len(full) > 1 else full[0].table
    )
    stamps = Stamps.concat([b.stamps for b in full], stamp_size)
    return AlertBatch(table.reset_index(drop=True), stamps, failures)


def read_alerts(
    sources: Source | Iterable[Source],
    *,
    stamp_size: int,
    workers: int | None = None,
    chunk_size: int = 256,
    progress: Progress | None = None,
) -> AlertBatch:
    """Read Rubin and ZTF alert packets into a detection table and stamps of `stamp_size`.

    Parameters
    ----------
    sources : path, bytes, or iterable of them
        Avro container files (any number of records each), Confluent wire-format Rubin
        messages, folders of such files (names ending in `ALERT_SUFFIXES`, recursively), or
        Kafka message payloads as bytes.
    stamp_size : int
        Side S of the output stamps, pixels (the model card's `stamp_size`). Cutouts are
        cropped or zero-padded around their source pixel; `valid_fraction` counts what is real.
    workers : int, optional
        Processes that decode in parallel; None = one per CPU; 0 or 1 = in this process.
    chunk_size : int
        Most sources per work unit sent to a worker.
    progress : callable(done, total), optional
        Called with the work done: files and messages count 1, slices of large container
        files (over `SPLIT_BYTES`, split by blocks so that workers share them) their records.

    Returns
    -------
    AlertBatch
        `table` (one row per good alert, input order), `stamps` (N, 3, S, S) float32 and
        `failures` (file, index, reason) for every rejected packet or file.

    Raises
    ------
    InputError
        A named path does not exist (bad packets are failures, not exceptions).
    ConfigError
        An option is out of range.
    """
    batches = iter_alert_batches(
        sources, stamp_size=stamp_size, workers=workers, chunk_size=chunk_size, progress=progress
    )
    return concat_batches(batches, int(stamp_size))
