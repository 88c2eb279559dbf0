"""Fast decoding of ZTF alert records: the leading fields and the cutouts, skipping the history.

A ZTF alert record holds `candidate`, then up to ~30 previous candidates (`prv_candidates`, and
`fp_hists` from v4), then the three gzip FITS cutouts (brokers may append fields after them).
Avro records carry no field offsets, so a decoder steps through the whole history to reach the
cutouts: most of the decoding time. For a record that fills its container block:

* the fields up to the last one wanted before the history are decoded by fastavro with a
  truncated writer schema (Avro decoding is sequential, so it stops there);
* the cutouts are found by their bytes. Each is ``[union index] [fileName: varint length,
  UTF-8] [union index] [stampData: varint length, bytes]`` and ZTF's stampData is gzip
  (``1f 8b 08``). At the first gzip magic after the leading fields that is preceded by a length
  prefix, the cutouts are parsed forward (second and third, then any trailing fields with
  fastavro) and must end exactly at the record's end; the first cutout's fileName is the one
  length-prefixed string that ends at its stampData's union byte (and follows the history's
  closing 0x00 byte where the schema fixes one). Every step must have exactly one solution;
  otherwise the caller decodes the record in full with fastavro.

The history itself is never decoded, so that it ends where the first cutout starts is the one
thing not checked.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import lru_cache

import fastavro
import numpy as np

__all__ = ["TAIL_CUTOUTS", "TailPlan", "decode_tail", "tail_plan"]

#: Trailing record fields that the fast path locates from the end (in any order).
TAIL_CUTOUTS = frozenset({"cutoutScience", "cutoutTemplate", "cutoutDifference"})
_GZIP = b"\x1f\x8b\x08"
_MAX_VARINT = 5  # bytes of a length prefix: up to 2**34, more than any cutout
_MAX_NAME = 8191  # longest fileName searched for (a 1- or 2-byte length prefix)


@dataclass(frozen=True)
class TailPlan:
    """How to decode records of one writer schema: prefix schema and the cutouts' fixed bytes.

    Attributes
    ----------
    prefix : dict
        fastavro-parsed writer schema truncated after the last wanted leading field.
    keep : frozenset of str
        Leading and trailing fields to return (the prefix and trailer may hold others).
    cutouts : tuple of str
        The three cutout fields, in record order (they must be adjacent).
    heads : tuple of bytes
        Per cutout, the union-index bytes before its fileName length (b"" when not unions).
    data_marks : tuple of bytes
        Per cutout, the union-index byte before its stampData length (b"" when not a union).
    gap : bool
        Fields (the history) lie between the prefix and the first cutout.
    zero_before : bool
        The field just before the first cutout always ends with a 0x00 byte.
    trailer : dict or None
        fastavro-parsed writer schema of the fields after the cutouts (brokers add some).
    """

    prefix: dict
    keep: frozenset[str]
    cutouts: tuple[str, ...]
    heads: tuple[bytes, ...]
    data_marks: tuple[bytes, ...]
    gap: bool
    zero_before: bool
    trailer: dict | None


def _branch(t: object) -> tuple[object, bytes] | None:
    """(type, union-index byte) of the non-null branch of `t` (b"" when `t` is not a union)."""
    if not isinstance(t, list):
        return t, b""
    if len(t) != 2 or "null" not in t:
        return None
    index = 1 - t.index("null")
    return t[index], bytes([index * 2])  # zig-zag of 0 or 1


def _primitive(t: object) -> str | None:
    """The primitive type name of `t`, also in {"type": ...} form (None when a logical type)."""
    if isinstance(t, dict):
        return t["type"] if isinstance(t.get("type"), str) and "logicalType" not in t else None
    return t if isinstance(t, str) else None


def _cutout_bytes(t: object) -> tuple[bytes, bytes] | None:
    """(union bytes before fileName, union byte before stampData) for a cutout-like type."""
    found = _branch(t)
    if found is None or not isinstance(found[0], dict) or found[0].get("type") != "record":
        return None
    record, outer = found
    fields = record.get("fields", [])
    if [f.get("name") for f in fields] != ["fileName", "stampData"]:
        return None
    name, data = _branch(fields[0]["type"]), _branch(fields[1]["type"])
    if (
        name is None
        or data is None
        or _primitive(name[0]) != "string"
        or _primitive(data[0]) != "bytes"
    ):
        return None
    return outer + name[1], data[1]


def _ends_with_zero(t: object) -> bool:
    """Whether every encoding of `t` ends with a 0x00 byte (arrays, maps, null first in a union)."""
    if isinstance(t, dict) and t.get("type") in ("array", "map"):
        return True
    if isinstance(t, list):
        return all((b == "null" and i == 0) or _ends_with_zero(b) for i, b in enumerate(t))
    return False


def _cutout_span(names: list[str]) -> int | None:
    """Index of the first of the three adjacent cutout fields, or None."""
    for i in range(len(names) - 2):
        if set(names[i : i + 3]) == TAIL_CUTOUTS:
            return i
    return None


@lru_cache(maxsize=64)
def tail_plan(schema_json: bytes, keep: frozenset[str]) -> TailPlan | None:
    """The fast-path plan for a writer schema, or None when its records do not suit it.

    The record must hold the three cutouts as adjacent fields, `keep` must include them, and
    no wanted field may lie between the leading fields and the cutouts.
    """
    try:
        schema = json.loads(schema_json)
        parsed = fastavro.parse_schema(schema)
        expanded = fastavro.parse_schema(schema, expand=True)
    except Exception:  # noqa: BLE001 - the full decoder reports bad schemas
        return None
    if (
        not isinstance(expanded, dict)
        or expanded.get("type") != "record"
        or not TAIL_CUTOUTS <= keep
    ):
        return None
    fields = expanded["fields"]
    names = [f["name"] for f in fields]
    first = _cutout_span(names)
    if first is None:
        return None
    marks = [_cutout_bytes(f["type"]) for f in fields[first : first + 3]]
    if any(m is None for m in marks):
        return None
    wanted = [i for i, n in enumerate(names[:first]) if n in keep]
    end = wanted[-1] + 1 if wanted else 0
    if any(n in keep for n in names[end:first]):
        return None
    try:
        prefix = fastavro.parse_schema(dict(schema, fields=schema["fields"][:end]))
    except Exception:  # noqa: BLE001
        return None
    rest = parsed["fields"][first + 3 :]
    return TailPlan(
        prefix=prefix,
        keep=frozenset(names[:end] + names[first + 3 :]) & keep,
        cutouts=tuple(names[first : first + 3]),
        heads=tuple(m[0] for m in marks),
        data_marks=tuple(m[1] for m in marks),
        gap=end < first,
        zero_before=end < first and _ends_with_zero(fields[first - 1]["type"]),
        trailer=dict(parsed, fields=rest) if rest else None,  # named types resolve through `parsed`
    )


def _varint(n: int) -> bytes:
    """Avro's zig-zag varint encoding of a non-negative int."""
    n <<= 1
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Zig-zag varint at `pos` -> (value, next position)."""
    value = 0
    for shift in range(0, 7 * _MAX_VARINT, 7):
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), pos
    raise ValueError("varint too long")


def _length_prefixes(buf: bytes, lo: int, p: int) -> list[tuple[int, int]]:
    """(start, value) of every canonical varint in [lo, p) that ends right before `p`."""
    out = []
    for k in range(1, _MAX_VARINT + 1):
        v = p - k
        if v < lo or (buf[v] >= 0x80) != (k > 1):  # continuation bit on all but the last byte
            break
        value, _ = _read_varint(buf, v)
        if value > 0 and _varint(value) == buf[v:p]:
            out.append((v, value))
    return out


def _parse_cutout(buf: bytes, pos: int, head: bytes, mark: bytes) -> tuple[str, int] | None:
    """Parse a cutout's encoding forward from `pos` up to its stampData length prefix.

    Returns (fileName, position of the stampData length prefix) or None when it does not parse.
    """
    if buf[pos : pos + len(head)] != head:
        return None
    try:
        n, pos = _read_varint(buf, pos + len(head))
    except (IndexError, ValueError):
        return None
    if n < 0 or pos + n + len(mark) > len(buf) or buf[pos + n : pos + n + len(mark)] != mark:
        return None
    try:
        name = buf[pos : pos + n].decode()
    except UnicodeDecodeError:
        return None
    return name, pos + n + len(mark)


_N1 = np.arange(0, 64)
_B1 = (2 * _N1).astype(np.uint8)
_N2 = np.arange(64, _MAX_NAME + 1)
_B2_LOW = ((2 * _N2) & 0x7F | 0x80).astype(np.uint8)
_B2_HIGH = ((2 * _N2) >> 7).astype(np.uint8)


def _name_lengths(buf: bytes, lo: int, q: int) -> list[int]:
    """Lengths n <= `_MAX_NAME` whose 1- or 2-byte varint ends n bytes before `q`, at or after `lo`."""
    back = np.frombuffer(buf, np.uint8, count=q - lo, offset=lo)[::-1]  # back[i] = buf[q - 1 - i]
    m1 = min(len(_N1), len(back))
    found = _N1[:m1][back[:m1] == _B1[:m1]].tolist()
    m2 = max(0, min(len(_N2), len(back) - 1 - len(_N1)))
    if m2:
        hit = (back[65 : 65 + m2] == _B2_LOW[:m2]) & (back[64 : 64 + m2] == _B2_HIGH[:m2])
        found += _N2[:m2][hit].tolist()
    return found


def _first_cutout(buf: bytes, lo: int, q: int, plan: TailPlan) -> tuple[int, str] | None:
    """(start, fileName) of the first cutout whose fileName ends at `q`; None unless unique."""
    head, found = plan.heads[0], []
    for n in _name_lengths(buf, lo, q):
        start = q - n - len(_varint(n)) - len(head)
        if start < lo or buf[start : start + len(head)] != head:
            continue
        if not plan.gap and start != lo:
            continue
        if plan.zero_before and (start - 1 < lo or buf[start - 1] != 0):
            continue
        try:
            found.append((start, buf[q - n : q].decode()))
        except UnicodeDecodeError:
            continue
    return found[0] if len(found) == 1 else None


def _stamp(buf: bytes, v: int) -> tuple[int, int] | None:
    """(start, end) of the gzip stampData whose length prefix is at `v`, if it fits the record."""
    length, start = _read_varint(buf, v)
    if length <= 0 or start + length > len(buf) or buf[start : start + len(_GZIP)] != _GZIP:
        return None
    return start, start + length


def _chain(buf: bytes, end: int, plan: TailPlan) -> tuple[list[tuple[str, int, int]], dict] | None:
    """Cutouts 2.. and the trailer parsed forward from `end` (the first stampData's end).

    Returns ([(fileName, data start, data end)], trailing fields), None unless they fill the record.
    """
    out = []
    for head, mark in zip(plan.heads[1:], plan.data_marks[1:], strict=True):
        parsed = _parse_cutout(buf, end, head, mark)
        stamp = parsed and _stamp(buf, parsed[1])
        if not stamp:
            return None
        out.append((parsed[0], *stamp))
        end = stamp[1]
    if plan.trailer is None:
        return (out, {}) if end == len(buf) else None
    stream = io.BytesIO(buf)
    stream.seek(end)
    try:
        trailing = fastavro.schemaless_reader(stream, plan.trailer, None)
    except Exception:  # noqa: BLE001 - not a trailer here
        return None
    return (out, trailing) if stream.tell() == len(buf) else None


def _chains_from(
    buf: bytes, lo: int, p: int, plan: TailPlan
) -> list[tuple[list[tuple[str, int, int]], dict]]:
    """Every exact chain of all cutouts (and trailing fields) whose first stampData starts at `p`."""
    mark, found = plan.data_marks[0], []
    for v, length in _length_prefixes(buf, lo, p):
        q = v - len(mark)
        if buf[q:v] != mark or p + length > len(buf):
            continue
        rest = _chain(buf, p + length, plan)
        first = rest and _first_cutout(buf, lo, q, plan)
        if first:
            found.append(([(first[1], p, p + length), *rest[0]], rest[1]))
    return found


def _locate(buf: bytes, lo: int, plan: TailPlan) -> tuple[list[tuple[str, int, int]], dict] | None:
    """([(fileName, data start, data end)] per cutout, trailing fields); None unless one exact chain.

    The first gzip magic after the leading fields that starts an exact chain wins; gzip data
    further on (inside the cutouts) is not searched.
    """
    p = buf.find(_GZIP, lo)
    while p != -1:
        chains = _chains_from(buf, lo, p, plan)
        if chains:
            return chains[0] if len(chains) == 1 else None
        p = buf.find(_GZIP, p + 1)
    return None


def decode_tail(block: bytes, plan: TailPlan) -> dict | None:
    """Decode one record that fills `block`: wanted leading fields and the cutouts.

    Returns the record (the `plan.keep` fields and the cutouts as {fileName, stampData}), or
    None when anything does not validate; the caller then decodes the record in full.
    """
    stream = io.BytesIO(block)
    try:
        leading = fastavro.schemaless_reader(stream, plan.prefix, None)
        located = _locate(block, stream.tell(), plan)
    except Exception:  # noqa: BLE001 - any oddity: the full decoder decides
        return None
    if located is None:
        return None
    record = {k: v for k, v in leading.items() if k in plan.keep}
    for name, (file_name, start, end) in zip(plan.cutouts, located[0], strict=True):
        record[name] = {"fileName": file_name, "stampData": block[start:end]}
    record.update((k, v) for k, v in located[1].items() if k in plan.keep)
    return record
