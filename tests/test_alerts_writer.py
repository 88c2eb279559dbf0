"""Writing alerts back: our reliability filled in, every other field unchanged (round trip)."""

from __future__ import annotations

import fastavro
import numpy as np
import pandas as pd
import pytest

from realbogus.alerts import read_alerts, rewrite_alert_bytes, write_alerts
from realbogus.alerts._avro import decode_confluent, read_container
from realbogus.alerts.writer import SIDE_TABLE
from realbogus.errors import ConfigError


def _records(buf: bytes) -> list[dict]:
    if buf[:1] == b"\x00":
        return [decode_confluent(buf, where="x")[1]]
    return [r for _, r in read_container(buf, where="x").records()]


def _same(a: object, b: object) -> bool:
    """Deep equality with NaN equal to NaN and types compared too."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and a != a:
        return b != b
    return a == b


def _fake_scores(batch, seed: int = 0) -> pd.DataFrame:
    """A score table as score_alerts makes it, with seeded reliabilities (no model needed)."""
    rng = np.random.default_rng([seed, len(batch)])
    return pd.DataFrame(
        {
            "file": batch.table.file.to_numpy(str),
            "index": batch.table["index"].to_numpy(int),
            "reliability": rng.random(len(batch)).astype(np.float32),
            "reliabilityVersion": "test-v1",
        }
    )


@pytest.fixture(scope="module")
def sample(shared_data, tmp_path_factory):
    """40 ZTF files (all 15 edge ones among them) and all Rubin messages, plus a 6-record container."""
    ztf = pd.read_csv(shared_data / "ztf" / "alerts.csv")
    picked = list(ztf[~ztf.full63].avro_file) + list(ztf[ztf.full63].avro_file[:25])
    files = [shared_data / f for f in picked] + sorted(
        (shared_data / "rubin" / "alerts").glob("*.msg")
    )
    multi = tmp_path_factory.mktemp("multi") / "six.avro"
    with open(files[0], "rb") as fh:
        reader = fastavro.reader(fh)
        schema, first = reader.writer_schema, next(reader)
    with open(files[1], "rb") as fh:
        second = next(fastavro.reader(fh))
    with open(multi, "wb") as fh:
        fastavro.writer(fh, schema, [first, second] * 3, codec="deflate", sync_interval=1000)
    return files + [multi]


def test_round_trip_keeps_the_survey_score_and_adds_ours(sample, tmp_path):
    """Decode the written packets and the originals (the official schemas): Rubin messages are
    unchanged, the survey's own reliability included (their schema has no field for ours), ZTF
    container files only gain our two top-level fields; the side table records every score and
    the model that wrote it."""
    batch = read_alerts(sample, stamp_size=51, workers=1)
    assert batch.failures == [] and len(batch) == 40 + 126 + 6
    scores = _fake_scores(batch)
    written, failures = write_alerts(scores, tmp_path / "out")
    assert failures == [] and len(written) == len(sample)
    by_file = scores.groupby("file")
    n_checked = 0
    for src, out in zip(
        sample,
        sorted(written, key=lambda p: [str(s.name) for s in sample].index(p.name)),
        strict=True,
    ):
        old, new = _records(src.read_bytes()), _records(out.read_bytes())
        assert out.name == src.name and len(old) == len(new)
        assert (out.read_bytes()[:1] == b"\x00") == (
            src.read_bytes()[:1] == b"\x00"
        )  # same framing
        expected = by_file.get_group(str(src)).set_index("index")
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            score = float(expected.reliability[i])
            if "diaSource" in a:
                pass  # the survey's reliability stays; ours is in the side table
            else:
                assert b.pop("reliability") == pytest.approx(score, abs=1e-7)
                assert b.pop("reliabilityVersion") == "test-v1"
            assert _same(a, b)  # every other field, nested records and cutout bytes included
            n_checked += 1
    assert n_checked == len(batch)
    side = pd.read_parquet(tmp_path / "out" / SIDE_TABLE)
    assert len(side) == len(batch) and set(side.reliabilityVersion) == {"test-v1"}
    assert side.in_packet.sum() == 40 + 6  # the ZTF container files carry it; Rubin's cannot
    mine = scores.set_index(["file", "index"]).reliability
    np.testing.assert_allclose(
        side.reliability, [mine[(f, i)] for f, i in zip(side.source, side["index"], strict=True)]
    )


def test_written_alerts_read_back_to_the_same_stamps(sample, tmp_path):
    """Reading the written files gives the same table values and identical stamps."""
    batch = read_alerts(sample, stamp_size=51, workers=1)
    written, _ = write_alerts(_fake_scores(batch), tmp_path / "out")
    again = read_alerts(written, stamp_size=51, workers=1)
    np.testing.assert_array_equal(again.stamps.data, batch.stamps.data)
    keep = [
        c for c in batch.table.columns if c not in ("file", "reliability", "reliabilityVersion")
    ]
    pd.testing.assert_frame_equal(again.table[keep], batch.table[keep])


def test_unscored_records_pass_unchanged_and_existing_output_is_refused(sample, tmp_path):
    """Records without a score keep their fields (ZTF ones get null); outputs are never clobbered silently."""
    container = sample[-1]
    data, failures = rewrite_alert_bytes(
        container.read_bytes(), {2: (0.25, "v")}, where=str(container)
    )
    assert failures == []
    old, new = _records(container.read_bytes()), _records(data)
    assert [r["reliability"] for r in new] == [None, None, 0.25, None, None, None]
    batch = read_alerts(sample[:2], stamp_size=51, workers=1)
    write_alerts(_fake_scores(batch), tmp_path / "out")
    with pytest.raises(ConfigError, match="exist"):
        write_alerts(_fake_scores(batch), tmp_path / "out")
    with pytest.raises(ConfigError, match="lack column"):
        write_alerts(pd.DataFrame({"file": []}), tmp_path / "other")
    assert old[0]["candid"] == new[0]["candid"]
