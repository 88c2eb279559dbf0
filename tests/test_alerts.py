"""Reading Rubin and ZTF alert packets: real data, every framing, bad packets, fuzzing."""

from __future__ import annotations

import math
import re
import struct
import warnings

import fastavro
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from hypothesis import given, settings
from hypothesis import strategies as st

from realbogus.alerts import AlertFailure, decode_fits, read_alerts, rubin_schema_ids
from realbogus.alerts._avro import decode_confluent, encode_confluent, rubin_schema
from realbogus.alerts.reader import decode_alert_bytes, expand_sources
from realbogus.alerts.rubin import wcs_pixel
from realbogus.alerts.ztf import ztf_centre
from realbogus.errors import ConfigError, InputError


def _first_record(path) -> dict:
    with open(path, "rb") as handle:
        return next(fastavro.reader(handle))


@pytest.fixture(scope="module")
def real(shared_data):
    """All real alerts decoded once, in this process, to 51-pixel stamps."""
    return read_alerts(
        [shared_data / "ztf" / "alerts", shared_data / "rubin" / "alerts"], stamp_size=51, workers=1
    )


@pytest.fixture(scope="module")
def rubin_msg(shared_data) -> bytes:
    return (shared_data / "rubin" / "alerts" / "169298433320943633.msg").read_bytes()


@pytest.fixture(scope="module")
def ztf_file(shared_data) -> bytes:
    return (shared_data / "ztf" / "alerts" / "2475433850015015022.avro").read_bytes()


def test_every_real_alert_file_is_read(real, shared_data):
    """All 611 ZTF and 126 Rubin files decode: none rejected, ids and survey scores as in the CSVs."""
    assert real.failures == []
    assert len(real) == 737 and real.stamps.data.shape == (737, 3, 51, 51)
    ztf = pd.read_csv(shared_data / "ztf" / "alerts.csv")
    rubin = pd.read_csv(shared_data / "rubin" / "alerts.csv")
    t = real.table.set_index("diaSourceId")
    z = t[t.survey == "ztf"]
    assert sorted(z.index) == sorted(ztf.candid)
    ztf = ztf.set_index("candid").loc[z.index]
    np.testing.assert_allclose(z.rb.to_numpy(float), ztf.rb.to_numpy(float), rtol=1e-6)
    np.testing.assert_allclose(
        z.drb.to_numpy(float, na_value=np.nan), ztf.drb.to_numpy(float), rtol=1e-6
    )
    assert (z.isNegative.to_numpy(bool) == ztf.isdiffpos.isin(["f", "0"]).to_numpy()).all()
    assert (z.objectId.to_numpy(str) == ztf.objectId.to_numpy(str)).all()
    assert set(z.stampUnits) == {"DN"}
    r = t[t.survey == "rubin"]
    rubin = rubin.set_index("diaSourceId").loc[r.index]
    np.testing.assert_allclose(
        r.reliability.to_numpy(float), rubin.reliability.to_numpy(float), rtol=1e-6
    )
    assert (r.schema.astype(int).to_numpy() == rubin.schema_id.to_numpy()).all()
    assert set(r.stampUnits) == {"nJy"}
    assert (r.cutoutShape.to_numpy(str) == [f"{s}x{s}" for s in rubin.cut_size]).all()


def test_stamps_are_finite_and_account_for_nans(real):
    """Stamps are finite; alerts with NaN pixels or small cutouts have valid_fraction < 1."""
    assert np.isfinite(real.stamps.data).all()
    vf = real.stamps.valid_fraction
    assert ((vf > 0) & (vf <= 1)).all()
    rubin = (real.table.survey == "rubin").to_numpy()
    # Rubin cutouts (30..93 px) into 51 px: most are smaller, so padded and flagged edge.
    small = real.table.cutoutShape.isin(["30x30", "31x31"]).to_numpy()
    assert real.stamps.edge[rubin & small].all()
    assert (vf[rubin & small] <= (31 * 31) / (51 * 51) + 1e-6).all()


def test_ztf_edge_centres_match_ccd_geometry(shared_data):
    """The source row/col of every truncated ZTF stamp is consistent with a 63-px box on a 3072x3080 CCD."""
    ztf = pd.read_csv(shared_data / "ztf" / "alerts.csv")
    edge = ztf[~ztf.full63]
    assert len(edge) == 15
    for _, row in edge.iterrows():
        h, w = (int(v) for v in row.stamp_shape.split("x"))
        rec = _first_record(shared_data / row.avro_file)
        xpos, ypos = rec["candidate"]["xpos"], rec["candidate"]["ypos"]
        r, c = ztf_centre((h, w), xpos, ypos)
        for length, pos, idx, n_ccd in ((h, ypos, r, 3080), (w, xpos, c, 3072)):
            centre = math.floor(pos + 0.5)
            start = centre - idx  # 1-based first pixel of the stamp
            assert start >= 1 and start + length - 1 <= n_ccd
            assert start == max(1, centre - 31) and start + length - 1 == min(n_ccd, centre + 31)


def test_ztf_edge_stamp_places_source_at_centre(shared_data):
    """A 41x63 stamp cut at the bottom edge lands with its source pixel at (25, 25) of 51."""
    path = shared_data / "ztf" / "alerts" / "396522680015040001.avro"
    batch = read_alerts(path, stamp_size=51, workers=1)
    rec = _first_record(path)
    raw, _ = decode_fits(rec["cutoutDifference"]["stampData"])
    assert raw.shape == (41, 63)
    r, c = ztf_centre(raw.shape, rec["candidate"]["xpos"], rec["candidate"]["ypos"])
    assert (r, c) == (9, 31)
    value = raw[r, c]
    assert batch.stamps.data[0, 0, 25, 25] == (value if np.isfinite(value) else 0)
    assert batch.stamps.edge[0]


def test_rubin_centre_matches_astropy_wcs(shared_data):
    """Our gnomonic source pixel equals astropy's WCS (as TAN) to 1e-6 px on real headers, also off-reference."""
    for path in sorted((shared_data / "rubin" / "alerts").glob("*.msg"))[:20]:
        _, rec = decode_confluent(path.read_bytes(), where=str(path))
        _, header = decode_fits(rec["cutoutDifference"])
        hdr = fits.Header(
            {
                k: v
                for k, v in header.items()
                if k
                in (
                    "CRPIX1",
                    "CRPIX2",
                    "CRVAL1",
                    "CRVAL2",
                    "PC1_1",
                    "PC1_2",
                    "PC2_1",
                    "PC2_2",
                    "CDELT1",
                    "CDELT2",
                )
            }
        )
        hdr["CTYPE1"], hdr["CTYPE2"] = "RA---TAN", "DEC--TAN"
        wcs = WCS(hdr)
        ra, dec = rec["diaSource"]["ra"] + 3e-4, rec["diaSource"]["dec"] - 2e-4  # ~1 arcsec away
        ours = wcs_pixel(header, ra, dec)
        theirs = wcs.world_to_pixel_values(ra, dec)
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_rubin_stamp_centre_holds_the_peak(shared_data):
    """On bright Rubin alerts the difference peak sits within 2 px of the stamp centre (WCS, not CUTMINX)."""
    batch = read_alerts(shared_data / "rubin" / "alerts", stamp_size=51, workers=1)
    offsets = []
    negative = batch.table.isNegative.fillna(False).to_numpy(bool)
    for i in np.flatnonzero(batch.table.snr.to_numpy(float) > 30):
        d = batch.stamps.data[i, 0] * (-1 if negative[i] else 1)
        r, c = np.unravel_index(np.argmax(d[20:31, 20:31]), (11, 11))
        offsets.append(max(abs(r - 5), abs(c - 5)))
    assert len(offsets) >= 10
    assert np.median(offsets) <= 1


def test_workers_and_chunks_do_not_change_results(shared_data, real):
    """Two processes and small chunks give exactly the in-process result, in the same order."""
    sources = [shared_data / "ztf" / "alerts", shared_data / "rubin" / "alerts"]
    other = read_alerts(sources, stamp_size=51, workers=2, chunk_size=50)
    pd.testing.assert_frame_equal(other.table, real.table)
    np.testing.assert_array_equal(other.stamps.data, real.stamps.data)
    np.testing.assert_array_equal(other.stamps.valid_fraction, real.stamps.valid_fraction)


def test_messages_as_bytes_and_container_with_many_records(shared_data, tmp_path, rubin_msg):
    """Kafka payloads in memory, and one container file with many ZTF records, read like files."""
    paths = sorted((shared_data / "ztf" / "alerts").glob("*.avro"))[:5]
    with open(paths[0], "rb") as fh:
        reader = fastavro.reader(fh)
        schema = reader.writer_schema
    records = [_first_record(paths[0])] * 7
    multi = tmp_path / "many.avro"
    with open(multi, "wb") as fh:
        fastavro.writer(fh, schema, records, sync_interval=2000)  # several blocks
    batch = read_alerts([rubin_msg, multi.read_bytes(), multi], stamp_size=63, workers=1)
    assert batch.failures == []
    assert list(batch.table.file) == ["message[0]"] + ["message[1]"] * 7 + [str(multi)] * 7
    assert list(batch.table["index"]) == [0, *range(7), *range(7)]
    assert batch.stamps.data.shape == (15, 3, 63, 63)
    np.testing.assert_array_equal(batch.stamps.data[1], batch.stamps.data[8])


def test_every_shipped_rubin_schema_round_trips():
    """Every schema version lsst-alert-packet ships loads; a minimal message encodes and decodes."""
    ids = rubin_schema_ids()
    assert {701, 704, 900, 1000} <= set(ids) and len(ids) >= 10
    for schema_id in ids:
        schema = rubin_schema(schema_id)
        assert schema["type"] == "record"


def _bad_packets(rubin_msg: bytes, ztf_file: bytes) -> dict[str, tuple[bytes, str]]:
    _, record = decode_confluent(rubin_msg, where="x")
    no_cutout = dict(record, cutoutScience=None)
    not_fits = dict(record, cutoutTemplate=b"this is not FITS" * 200)
    return {
        "truncated": (rubin_msg[: len(rubin_msg) // 2], "does not decode"),
        "unknown-schema": (
            b"\x00" + struct.pack(">I", 9999) + rubin_msg[5:],
            "unknown Rubin alert schema id 9999",
        ),
        "missing-cutout": (encode_confluent(no_cutout, 900), "cutoutScience is missing"),
        "non-fits": (encode_confluent(not_fits, 900), "cutoutTemplate.*not a.*FITS"),
        "trailing": (rubin_msg + b"\x00\x01", "bytes left"),
        "not-avro": (b"hello world", "neither an Avro container"),
        "ztf-truncated": (ztf_file[: len(ztf_file) - 5000], "truncated or corrupt Avro block"),
        "ztf-header": (ztf_file[:30], "corrupt Avro container header|no writer schema"),
    }


def test_bad_packets_are_reported_and_the_batch_goes_on(tmp_path, rubin_msg, ztf_file):
    """Each kind of bad packet becomes a failure with its file and reason; good ones still decode."""
    bad = _bad_packets(rubin_msg, ztf_file)
    for name, (data, _) in bad.items():
        (tmp_path / f"{name}.msg").write_bytes(data)
    (tmp_path / "good.msg").write_bytes(rubin_msg)
    (tmp_path / "good_ztf.avro").write_bytes(ztf_file)
    (tmp_path / "notes.txt").write_text("ignored: not an alert suffix")
    batch = read_alerts(tmp_path, stamp_size=51, workers=2, chunk_size=2)
    assert sorted(batch.table.file.map(lambda f: f.rsplit("/", 1)[1])) == [
        "good.msg",
        "good_ztf.avro",
    ]
    reasons = {f.file.rsplit("/", 1)[1].removesuffix(".msg"): f for f in batch.failures}
    assert set(reasons) == set(bad)
    for name, (_, pattern) in bad.items():
        failure = reasons[name]
        assert isinstance(failure, AlertFailure)
        assert re.search(pattern, failure.reason), (name, failure.reason)
        assert failure.reason.startswith(str(tmp_path)), failure.reason  # names the file


def test_older_rubin_schema_without_science_cutout_is_rejected(rubin_msg):
    """A v6.0 packet (no cutoutScience in the schema) is rejected with that reason."""
    _, record = decode_confluent(rubin_msg, where="x")
    schema = rubin_schema(600)
    src = record["diaSource"]
    fields = {f["name"]: f for f in schema["fields"]}
    ds_fields = fields["diaSource"]["type"]["fields"]
    diasource = {f["name"]: src.get(f["name"], f.get("default")) for f in ds_fields}
    for f in ds_fields:
        if diasource[f["name"]] is None and f["type"] in ("long", "int", "float", "double"):
            diasource[f["name"]] = 0
        elif diasource[f["name"]] is None and f["type"] == "string":
            diasource[f["name"]] = "r"
    alert = {f: None for f in fields}
    alert.update(
        alertId=1,
        diaSource=diasource,
        prvDiaSources=None,
        cutoutDifference=record["cutoutDifference"],
        cutoutTemplate=record["cutoutTemplate"],
    )
    msg = encode_confluent(alert, 600)
    batch = read_alerts(msg, stamp_size=51, workers=1)
    assert len(batch) == 0
    assert "carries no cutoutScience" in batch.failures[0].reason


def test_options_are_validated(shared_data):
    """Bad options fail up front with the parameter named; missing paths are errors."""
    with pytest.raises(ConfigError, match="stamp_size"):
        read_alerts(shared_data / "rubin" / "alerts", stamp_size=0)
    with pytest.raises(ConfigError, match="workers"):
        read_alerts(shared_data / "rubin" / "alerts", stamp_size=51, workers=-1)
    with pytest.raises(InputError, match="no such file"):
        expand_sources(shared_data / "does-not-exist")
    empty = read_alerts([], stamp_size=51)
    assert len(empty) == 0 and empty.stamps.data.shape == (0, 3, 51, 51)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_fuzz_packet_decoders_raise_only_input_error(data, rubin_msg, ztf_file):
    """Random bytes and randomly damaged real packets never raise anything but InputError."""
    base = data.draw(st.sampled_from([rubin_msg, ztf_file, b""]))
    kind = data.draw(st.sampled_from(["random", "cut", "flip", "splice"]))
    if kind == "random":
        buf = data.draw(st.binary(max_size=2000))
    elif kind == "cut":
        buf = base[: data.draw(st.integers(0, len(base)))]
    else:
        pos = data.draw(st.integers(0, max(0, len(base) - 1)))
        junk = data.draw(st.binary(min_size=1, max_size=64))
        buf = base[:pos] + junk + base[pos + (len(junk) if kind == "flip" else 0) :]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            for _, record, _ in decode_alert_bytes(buf, where="fuzz"):
                if isinstance(record, InputError):
                    continue
                batch = read_alerts(buf, stamp_size=51, workers=1)
                assert len(batch) + len(batch.failures) >= 1
                break
        except InputError:
            pass


def test_ztf_blank_template_pixels_are_invalid(shared_data):
    """ZTF's -3.4e38 template blanks become 0 and leave valid_fraction, so scores stay finite."""
    path = shared_data / "ztf" / "alerts" / "2475433850015015000.avro"
    batch = read_alerts(path, stamp_size=63, workers=1)
    rec = _first_record(path)
    template, _ = decode_fits(rec["cutoutTemplate"]["stampData"])
    n_blank = int((np.abs(template) > 1e30).sum())
    assert n_blank == 2149
    assert np.abs(batch.stamps.data).max() < 1e6
    n_nan = sum(
        int(np.isnan(decode_fits(rec[k]["stampData"])[0]).sum())
        for k in ("cutoutDifference", "cutoutScience", "cutoutTemplate")
    )
    assert batch.stamps.valid_fraction[0] == pytest.approx(1 - (n_blank + n_nan) / (3 * 63 * 63))


def test_large_container_files_are_split_across_workers(
    shared_data, tmp_path, monkeypatch, rubin_msg
):
    """A container file over SPLIT_BYTES is decoded in block slices by several workers, same result."""
    from realbogus.alerts import reader

    paths = sorted((shared_data / "ztf" / "alerts").glob("*.avro"))[:4]
    with open(paths[0], "rb") as fh:
        schema = fastavro.reader(fh).writer_schema
    records = [_first_record(p) for p in paths if _first_record(p).get("candidate")] * 5
    big = tmp_path / "big.avro"
    with open(big, "wb") as fh:
        fastavro.writer(fh, schema, records, sync_interval=50_000)  # about one record per block
    _, record = decode_confluent(rubin_msg, where="x")
    rubin_file = tmp_path / "rubin.avro"
    with open(rubin_file, "wb") as fh:
        fastavro.writer(fh, rubin_schema(900), [record] * 3)
    single = read_alerts([big, rubin_file], stamp_size=51, workers=1)
    monkeypatch.setattr(reader, "SPLIT_BYTES", 1000)
    items = reader._split_large([str(big)], 3)
    assert len(items) > 3 and all(isinstance(i, reader._Slice) for i in items)
    assert sum(i.n_records for i in items) == len(records)
    split = read_alerts([big, rubin_file], stamp_size=51, workers=2, chunk_size=3)
    assert single.failures == [] and split.failures == []
    assert list(split.table["index"]) == [*range(len(records)), 0, 1, 2]
    assert list(split.table.survey) == ["ztf"] * len(records) + ["rubin"] * 3
    pd.testing.assert_frame_equal(split.table, single.table)
    np.testing.assert_array_equal(split.stamps.data, single.stamps.data)


@pytest.mark.parametrize("root", ["tmp", "missing"])
def test_stamps_handed_over_by_file_or_pipe_are_the_same(
    shared_data, real, tmp_path, monkeypatch, root
):
    """Workers' stamps come back through a memory-backed file (or the pipe without one): same
    result as in-process, and no stamp file is left behind."""
    from realbogus.alerts import reader

    handoff = tmp_path / "handoff"
    handoff.mkdir()
    monkeypatch.setattr(
        reader, "HANDOFF_ROOT", str(handoff if root == "tmp" else tmp_path / "missing")
    )
    other = read_alerts(
        [shared_data / "ztf" / "alerts", shared_data / "rubin" / "alerts"],
        stamp_size=51,
        workers=2,
        chunk_size=100,
    )
    pd.testing.assert_frame_equal(other.table, real.table)
    np.testing.assert_array_equal(other.stamps.data, real.stamps.data)
    np.testing.assert_array_equal(other.stamps.edge, real.stamps.edge)
    assert list(handoff.iterdir()) == []


def test_stamp_file_that_cannot_be_written_goes_through_the_pipe(shared_data, tmp_path):
    """A worker that cannot write its stamp file returns the stamps themselves."""
    from realbogus.alerts.reader import _decode_chunk_handoff, _received
    from realbogus.stamps import Stamps

    files = [str(p) for p in sorted((shared_data / "ztf" / "alerts").glob("*.avro"))[:3]]
    table, stamps, failures = _decode_chunk_handoff(files, 63, str(tmp_path / "gone"))
    assert isinstance(stamps, Stamps) and len(table) == 3 and failures == []
    table, handed, _ = _decode_chunk_handoff(files, 63, str(tmp_path))
    received = _received(handed)
    np.testing.assert_array_equal(received.data, stamps.data)
    assert received.data.flags.writeable and list(tmp_path.iterdir()) == []
