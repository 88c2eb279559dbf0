"""Avro framing of alert packets: object container files and Confluent wire-format messages.

* Avro object container file (ZTF's alerts, Rubin alert archives, Kafka messages of ZTF): magic
  ``Obj\\x01``, a metadata map holding the writer schema and codec, a 16-byte sync marker, then
  blocks of records. We parse the framing ourselves and cache each writer schema once parsed,
  so a folder of single-alert files pays fastavro's schema parsing once, not per file.
* Confluent wire format (Rubin's alert stream): byte 0 is 0x00, bytes 1-4 a big-endian uint32
  schema id = major * 100 + minor of the `lsst-alert-packet` schema, then one schemaless record.
  Every schema version the installed `lsst-alert-packet` ships is known; other ids are an error.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections.abc import Iterator
from functools import cache, lru_cache
from pathlib import Path

import fastavro

from ..errors import InputError
from ._tail import decode_tail, tail_plan

__all__ = [
    "CONTAINER_MAGIC",
    "CONFLUENT_MAGIC",
    "ContainerFile",
    "container_blocks",
    "read_container",
    "decode_confluent",
    "encode_confluent",
    "rubin_schema",
    "rubin_schema_ids",
]

CONTAINER_MAGIC = b"Obj\x01"
CONFLUENT_MAGIC = b"\x00"
_SYNC_SIZE = 16
_MAX_BLOCK_RECORDS = 1 << 24


def _read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """Zig-zag varint at `pos` -> (value, next position). Raises IndexError/ValueError on garbage."""
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


@lru_cache(maxsize=64)
def _parsed_schema(schema_json: bytes) -> dict:
    """A writer schema from a container header, parsed once per distinct schema text."""
    return fastavro.parse_schema(json.loads(schema_json))


@lru_cache(maxsize=64)
def _projection(schema_json: bytes, keep: frozenset[str]) -> dict | None:
    """A reader schema with only the top-level fields in `keep` (None when no projection applies).

    Decoding with it skips the rest (ZTF's prv_candidates, Rubin's prvDiaSources, ...) in
    fastavro's compiled code instead of building Python objects for them: ~1.6x faster.
    """
    schema = json.loads(schema_json)
    return _project(schema, keep)


def _project(schema: dict, keep: frozenset[str]) -> dict | None:
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    fields = [f for f in schema["fields"] if f["name"] in keep]
    if len(fields) == len(schema["fields"]):
        return None
    try:
        return fastavro.parse_schema(dict(schema, fields=fields))
    except Exception:  # noqa: BLE001 - a named type defined only in a dropped field: no projection
        return None


class ContainerFile:
    """The framing of an Avro object container file held in memory.

    Attributes
    ----------
    schema : dict
        The writer schema, parsed by fastavro (shared by files with the same schema text).
    codec : str
        'null' or 'deflate' (other codecs are read through fastavro's reader).
    metadata : dict of str -> bytes
        The header's metadata map.
    """

    def __init__(self, buf: bytes, *, where: str) -> None:
        self.buf = buf
        self.where = where
        if buf[:4] != CONTAINER_MAGIC:
            msg = f"{where}: not an Avro container file (no 'Obj\\x01' magic)"
            raise InputError(msg)
        try:
            pos, meta = 4, {}
            while True:
                count, pos = _read_long(buf, pos)
                if count == 0:
                    break
                if count < 0:
                    count = -count
                    _, pos = _read_long(buf, pos)
                for _ in range(count):
                    n, pos = _read_long(buf, pos)
                    key = buf[pos : pos + n].decode()
                    pos += n
                    n, pos = _read_long(buf, pos)
                    if n < 0 or pos + n > len(buf):
                        raise ValueError("metadata value runs past the end")
                    meta[key] = bytes(buf[pos : pos + n])
                    pos += n
            self.sync = bytes(buf[pos : pos + _SYNC_SIZE])
            self.data_start = pos + _SYNC_SIZE
            if len(self.sync) != _SYNC_SIZE:
                raise ValueError("header truncated before the sync marker")
            self.metadata = meta
            self.codec = meta.get("avro.codec", b"null").decode()
            self.schema = _parsed_schema(meta["avro.schema"])
        except KeyError:
            msg = f"{where}: Avro container header has no writer schema"
            raise InputError(msg) from None
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - garbage headers raise many kinds of error
            msg = f"{where}: corrupt Avro container header ({type(exc).__name__}: {exc})"
            raise InputError(msg) from exc

    def records(
        self, keep: frozenset[str] | None = None
    ) -> Iterator[tuple[int, dict | InputError]]:
        """Yield (index, record) in file order; a bad record or block yields (index, InputError).

        `keep` names the top-level fields to decode (all when None). A record that cannot be
        decoded costs the rest of its block (Avro records have no length prefix); a corrupt
        block framing ends the file. A block of one record that ends with ZTF's cutouts goes
        through the fast path of `_tail` first.
        """
        reader_schema = None if keep is None else _projection(self.metadata["avro.schema"], keep)
        plan = None if keep is None else tail_plan(self.metadata["avro.schema"], keep)
        if self.codec not in ("null", "deflate"):
            yield from self._fastavro_records()
            return
        buf, pos, index = self.buf, self.data_start, 0
        while pos < len(buf):
            try:
                count, pos = _read_long(buf, pos)
                size, pos = _read_long(buf, pos)
                if (
                    not 0 < count <= _MAX_BLOCK_RECORDS
                    or size < 0
                    or pos + size + _SYNC_SIZE > len(buf)
                ):
                    raise ValueError(
                        f"block of {count} records, {size} bytes does not fit the file"
                    )
                if buf[pos + size : pos + size + _SYNC_SIZE] != self.sync:
                    raise ValueError("sync marker after the block does not match the header's")
            except (IndexError, ValueError) as exc:
                yield (
                    index,
                    InputError(
                        f"{self.where}: truncated or corrupt Avro block at record {index} ({exc})"
                    ),
                )
                return
            block = buf[pos : pos + size]
            pos += size + _SYNC_SIZE
            if self.codec == "deflate":
                try:
                    block = zlib.decompress(block, -15)
                except zlib.error as exc:
                    yield (
                        index,
                        InputError(
                            f"{self.where}: corrupt deflate block at record {index} ({exc})"
                        ),
                    )
                    index += count
                    continue
            if count == 1 and plan is not None and (record := decode_tail(block, plan)) is not None:
                yield index, record
                index += 1
                continue
            stream = io.BytesIO(block)
            for i in range(count):
                try:
                    record = fastavro.schemaless_reader(stream, self.schema, reader_schema)
                except Exception as exc:  # noqa: BLE001 - fastavro raises many kinds on bad bytes
                    reason = f"{self.where}: record {index + i} does not decode ({type(exc).__name__}: {exc})"
                    for j in range(i, count):
                        yield index + j, InputError(reason if j == i else f"{reason}; lost with it")
                    break
                yield index + i, record
            index += count

    def _fastavro_records(self) -> Iterator[tuple[int, dict | InputError]]:
        index = 0
        try:
            for record in fastavro.reader(io.BytesIO(self.buf)):
                yield index, record
                index += 1
        except Exception as exc:  # noqa: BLE001
            yield (
                index,
                InputError(
                    f"{self.where}: record {index} does not decode ({type(exc).__name__}: {exc})"
                ),
            )


def container_blocks(path: str, *, probe: int = 1 << 16) -> tuple[int, list[tuple[int, int, int]]]:
    """Block layout of a container file on disk, read with seeks (the data is not loaded).

    Returns
    -------
    (header_end, blocks)
        Offset where the first block starts, and (offset, n_records, n_bytes incl. sync)
        per block. Raises InputError when the framing is corrupt.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(probe)
        while True:
            try:
                header = ContainerFile(head, where=path)
                break
            except InputError:
                if len(head) >= size or len(head) >= 1 << 26:
                    raise
                head += handle.read(len(head))
        pos, blocks = header.data_start, []
        while pos < size:
            handle.seek(pos)
            probe_bytes = handle.read(20)
            try:
                count, n = _read_long(probe_bytes, 0)
                nbytes, n = _read_long(probe_bytes, n)
            except (IndexError, ValueError):
                msg = f"{path}: corrupt Avro block framing at byte {pos}"
                raise InputError(msg) from None
            total = n + nbytes + _SYNC_SIZE
            if count <= 0 or nbytes < 0 or pos + total > size:
                msg = f"{path}: corrupt Avro block framing at byte {pos}"
                raise InputError(msg)
            blocks.append((pos, count, total))
            pos += total
    return header.data_start, blocks


def read_container(buf: bytes, *, where: str) -> ContainerFile:
    """Parse the header of an Avro object container file held in memory (see `ContainerFile`)."""
    return ContainerFile(buf, where=where)


# --- Rubin schemas --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _rubin_schema_files() -> dict[int, Path]:
    """Schema id (major * 100 + minor) -> alert .avsc path, for every version lsst-alert-packet ships."""
    from lsst.alert.packet import get_schema_root

    root = Path(get_schema_root())
    found = {}
    for major in sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit()):
        for minor in sorted(p for p in major.iterdir() if p.is_dir() and p.name.isdigit()):
            path = minor / f"lsst.v{major.name}_{minor.name}.alert.avsc"
            if path.is_file():
                found[int(major.name) * 100 + int(minor.name)] = path
    return found


def rubin_schema_ids() -> list[int]:
    """Schema ids of every alert schema version the installed lsst-alert-packet ships."""
    return sorted(_rubin_schema_files())


@cache
def _rubin_projection(schema_id: int, keep: frozenset[str]) -> dict | None:
    from lsst.alert.packet import Schema

    return _project(Schema.from_file(os.fspath(_rubin_schema_files()[schema_id])).definition, keep)


@cache
def rubin_schema(schema_id: int) -> dict:
    """The fastavro-parsed Rubin alert schema for a Confluent schema id (major * 100 + minor).

    Raises
    ------
    InputError
        No shipped schema has that id.
    """
    files = _rubin_schema_files()
    if schema_id not in files:
        major, minor = divmod(schema_id, 100)
        known = ", ".join(f"{i} (v{i // 100}.{i % 100})" for i in sorted(files))
        msg = f"unknown Rubin alert schema id {schema_id} (v{major}.{minor}); lsst-alert-packet ships {known}"
        raise InputError(msg)
    from lsst.alert.packet import Schema

    return fastavro.parse_schema(Schema.from_file(os.fspath(files[schema_id])).definition)


def decode_confluent(
    buf: bytes, *, where: str, keep: frozenset[str] | None = None
) -> tuple[int, dict]:
    """Decode one Confluent wire-format Rubin alert message -> (schema id, record).

    `keep` names the top-level fields to decode (all when None); the rest are skipped.

    Raises
    ------
    InputError
        Wrong magic byte, unknown schema id, truncated or corrupt body, or trailing bytes.
    """
    if len(buf) < 5 or buf[:1] != CONFLUENT_MAGIC:
        msg = f"{where}: not a Confluent wire-format message (needs 0x00 and a 4-byte schema id)"
        raise InputError(msg)
    (schema_id,) = struct.unpack(">I", buf[1:5])
    try:
        schema = rubin_schema(schema_id)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    stream = io.BytesIO(buf)
    stream.seek(5)
    try:
        reader_schema = None if keep is None else _rubin_projection(schema_id, keep)
        record = fastavro.schemaless_reader(stream, schema, reader_schema)
    except Exception as exc:  # noqa: BLE001 - fastavro raises many kinds on bad bytes
        msg = f"{where}: schema {schema_id} body does not decode ({type(exc).__name__}: {exc})"
        raise InputError(msg) from exc
    if stream.tell() != len(buf):
        msg = f"{where}: {len(buf) - stream.tell()} bytes left after the schema {schema_id} record (corrupt message)"
        raise InputError(msg)
    return schema_id, record


def encode_confluent(record: dict, schema_id: int) -> bytes:
    """Encode a Rubin alert record as a Confluent wire-format message with `schema_id`."""
    stream = io.BytesIO()
    stream.write(CONFLUENT_MAGIC + struct.pack(">I", schema_id))
    fastavro.schemaless_writer(stream, rubin_schema(schema_id), record)
    return stream.getvalue()
