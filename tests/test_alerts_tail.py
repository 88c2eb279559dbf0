"""The ZTF fast path: cutouts found by their bytes must equal a full fastavro decode, or fall back."""

from __future__ import annotations

import io
import json
import zlib

import fastavro
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realbogus.alerts import _fits, read_alerts
from realbogus.alerts._avro import _projection, _read_long, read_container
from realbogus.alerts._tail import TAIL_CUTOUTS, _varint, decode_tail, tail_plan
from realbogus.alerts.reader import BLANK_LIMIT, READ_FIELDS, blank_to_nan
from realbogus.errors import InputError
from realbogus.stamps import fit_stamp, resize_stamps


def _single_block(buf: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(header up to the first block, record bytes, sync marker, schema text) of a one-record file."""
    container = read_container(buf, where="x")
    count, pos = _read_long(buf, container.data_start)
    size, pos = _read_long(buf, pos)
    assert count == 1 and pos + size + 16 == len(buf)
    return (
        buf[: container.data_start],
        buf[pos : pos + size],
        container.sync,
        container.metadata["avro.schema"],
    )


def _reframe(header: bytes, body: bytes, sync: bytes) -> bytes:
    """A container file holding `body` as its one record (a valid block around any bytes)."""
    return header + _varint(1) + _varint(len(body)) + body + sync


def _full(body: bytes, schema_json: bytes) -> dict:
    """The reference: fastavro decodes the whole record, projected to what the reader keeps."""
    writer = fastavro.parse_schema(json.loads(schema_json))
    return fastavro.schemaless_reader(
        io.BytesIO(body), writer, _projection(schema_json, READ_FIELDS)
    )


@pytest.fixture(scope="module")
def ztf_packets(shared_data) -> list[tuple[str, bytes]]:
    return [
        (p.name, p.read_bytes()) for p in sorted((shared_data / "ztf" / "alerts").glob("*.avro"))
    ]


#: One real alert per kind of cutout encoding: ZTF v4.02 ([null, cutout]), ZTF v3.1 ([cutout, null],
#: plain fileName), Fink ([cutout, null] with nullable fields), Fink with broker fields after the cutouts.
SAMPLES = [
    "2475433850015015022.avro",
    "1060135832015015002.avro",
    "2481114533915015002.avro",
    "1034527953215010006.avro",
]


@pytest.fixture(scope="module", params=SAMPLES)
def sample(request, ztf_packets) -> tuple[bytes, bytes, bytes, bytes]:
    return _single_block(dict(ztf_packets)[request.param])


def test_fast_path_equals_full_decode_on_every_real_ztf_alert(ztf_packets):
    """All 611 real files take the fast path and give the full decode's candidate and cutouts."""
    for name, buf in ztf_packets:
        _, body, _, schema_json = _single_block(buf)
        plan = tail_plan(schema_json, READ_FIELDS)
        assert plan is not None, name
        fast = decode_tail(body, plan)
        assert fast is not None, name
        full = _full(body, schema_json)
        assert fast.keys() == full.keys(), name
        assert fast == full, name
        for cutout in TAIL_CUTOUTS:
            assert fast[cutout]["stampData"][:3] == b"\x1f\x8b\x08"


def test_container_records_use_the_fast_path(ztf_packets, monkeypatch):
    """ContainerFile.records goes through decode_tail for single-record ZTF blocks."""
    calls = []
    from realbogus.alerts import _avro

    def spy(block, plan):
        calls.append(len(block))
        return decode_tail(block, plan)

    monkeypatch.setattr(_avro, "decode_tail", spy)
    name, buf = ztf_packets[0]
    [(index, record)] = list(read_container(buf, where=name).records(READ_FIELDS))
    assert index == 0 and calls and record == _full(_single_block(buf)[1], _single_block(buf)[3])


def _damaged(body: bytes, how: str) -> bytes:
    """`body` with one kind of damage in its cutouts."""
    tail = body.find(b"\x1f\x8b\x08")
    if how == "truncated":
        return body[:-1]
    if how == "extended":
        return body + b"\x00"
    if how == "length":  # the last stampData's length prefix one larger
        return body[: tail - 2] + bytes([body[tail - 2] + 2]) + body[tail - 1 :]
    if how == "magic":  # the first stampData no longer gzip
        return body[:tail] + b"\x00" + body[tail + 1 :]
    raise ValueError(how)


@pytest.mark.parametrize("how", ["truncated", "extended", "length", "magic"])
def test_damaged_tails_fall_back_or_fail_cleanly(sample, how, tmp_path):
    """Damage in the cutouts: the fast path declines, and the reader reports or decodes as before."""
    header, body, sync, schema_json = sample
    bad = _damaged(body, how)
    assert decode_tail(bad, tail_plan(schema_json, READ_FIELDS)) is None
    path = tmp_path / f"{how}.avro"
    path.write_bytes(_reframe(header, bad, sync))
    batch = read_alerts(path, stamp_size=63, workers=1)
    assert len(batch) + len(batch.failures) == 1
    if batch.failures:
        assert batch.failures[0].file == str(path) and batch.failures[0].reason


def test_null_cutout_falls_back_to_the_full_decoder(sample):
    """A null cutout is not the fast path's: the full decode reports it as missing."""
    header, body, sync, schema_json = sample
    record = _full(body, schema_json)
    writer = fastavro.parse_schema(json.loads(schema_json))
    full = fastavro.schemaless_reader(io.BytesIO(body), writer)
    full["cutoutTemplate"] = None
    out = io.BytesIO()
    fastavro.schemaless_writer(out, writer, full)
    assert decode_tail(out.getvalue(), tail_plan(schema_json, READ_FIELDS)) is None
    batch = read_alerts(_reframe(header, out.getvalue(), sync), stamp_size=63, workers=1)
    assert len(batch) == 0 and "cutoutTemplate is missing" in batch.failures[0].reason
    assert record["cutoutTemplate"] is not None


def test_schemas_without_adjacent_cutouts_have_no_plan():
    """No plan unless the three cutouts are adjacent records of (fileName, stampData)."""
    cutout = {
        "type": "record",
        "name": "cutout",
        "fields": [{"name": "fileName", "type": "string"}, {"name": "stampData", "type": "bytes"}],
    }
    fields = [
        {"name": "candid", "type": "long"},
        {"name": "cutoutScience", "type": cutout},
        {"name": "cutoutTemplate", "type": "cutout"},
        {"name": "cutoutDifference", "type": "cutout"},
    ]
    ok = json.dumps({"type": "record", "name": "alert", "fields": fields}).encode()
    assert tail_plan(ok, READ_FIELDS) is not None
    apart = fields[:2] + [{"name": "x", "type": "int"}] + fields[2:]
    assert (
        tail_plan(
            json.dumps({"type": "record", "name": "alert", "fields": apart}).encode(), READ_FIELDS
        )
        is None
    )
    other = [*fields[:3], {"name": "cutoutDifference", "type": "bytes"}]
    assert (
        tail_plan(
            json.dumps({"type": "record", "name": "alert", "fields": other}).encode(), READ_FIELDS
        )
        is None
    )
    assert tail_plan(ok, frozenset({"candid"})) is None  # cutouts not wanted


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_fuzz_fast_path_agrees_with_full_decode(data, sample):
    """Random damage in the cutouts, framed as a valid block: the fast path gives the full decode or declines.

    The history before the cutouts is not decoded by the fast path, so where the damage is in
    the first cutout's fileName, next to the history's end, the fast path may still read the
    (intact) stamps that the full decoder rejects; it never returns other stamps.
    """
    header, body, sync, schema_json = sample
    plan = tail_plan(schema_json, READ_FIELDS)
    intact = _full(body, schema_json)
    name = intact[plan.cutouts[0]]["fileName"].encode()
    start = body.find(_varint(len(name)) + name) - len(
        plan.heads[0]
    )  # the first cutout's first byte
    name_end = start + len(plan.heads[0]) + len(_varint(len(name))) + len(name)
    near = data.draw(st.booleans())
    pos = data.draw(
        st.integers(start + 1, name_end + 8 if near else len(body))
    )  # not at `start`: that is the history's end
    junk = data.draw(st.binary(min_size=0, max_size=8))
    cut = data.draw(st.integers(0, 8))
    bad = body[:pos] + junk + body[pos + cut :]
    fast = decode_tail(bad, plan)
    if fast is not None:
        try:
            full = _full(bad, schema_json)
        except Exception:  # noqa: BLE001 - the full decoder rejects the damaged history end
            assert pos <= name_end
            assert all(fast[c]["stampData"] == intact[c]["stampData"] for c in TAIL_CUTOUTS)
        else:
            assert fast == full
    batch = read_alerts(_reframe(header, bad, sync), stamp_size=51, workers=1)
    assert len(batch) + len(batch.failures) == 1


def test_gunzip_matches_zlib_and_falls_back_without_isal(ztf_packets, monkeypatch):
    """The ISA-L inflater gives zlib's bytes; without it zlib serves; corrupt data is an InputError."""
    _, body, _, schema_json = _single_block(ztf_packets[0][1])
    stamp = _full(body, schema_json)["cutoutScience"]["stampData"]
    fast = _fits.gunzip(stamp)
    assert fast == zlib.decompress(stamp, 31)
    monkeypatch.setattr(_fits, "_inflate_lib", zlib)
    monkeypatch.setattr(_fits, "_INFLATE_ERRORS", (zlib.error,))
    assert _fits.gunzip(stamp) == fast
    with pytest.raises(InputError, match="corrupt gzip"):
        _fits.gunzip(stamp[:-4] + b"\x00\x00\x00\x00")


def test_resize_stamps_blank_limit_equals_blank_to_nan_then_fit(rng):
    """blank_limit gives what blank_to_nan + fit_stamp gave, for every dtype and geometry."""
    triplets, centres = [], []
    for dtype, shape in [
        (">f4", (63, 63)),
        ("<f8", (41, 63)),
        ("<f4", (30, 30)),
        (">i2", (63, 50)),
    ]:
        planes = [rng.normal(scale=100, size=shape).astype(dtype) for _ in range(3)]
        if planes[0].dtype.kind == "f":
            planes[0][3, :5] = np.nan
            planes[1][4, 4] = -3.4e38
            planes[2][5, 5] = 1.00000001e30 if planes[2].dtype.itemsize == 8 else 2e30
        triplets.append(planes)
        centres.append([(min(31, shape[0] - 3), min(31, shape[1] - 3))] * 3)
    for size in (21, 51, 63, 71):
        got = resize_stamps(triplets, size, centres=np.asarray(centres), blank_limit=BLANK_LIMIT)
        for i, planes in enumerate(triplets):
            n_valid = 0
            for c, plane in enumerate(planes):
                want, valid = fit_stamp(blank_to_nan(plane), size, centre=centres[i][c])
                np.testing.assert_array_equal(got.data[i, c], want)
                n_valid += valid
            assert got.valid_fraction[i] == np.float32(n_valid / (3 * size * size))
