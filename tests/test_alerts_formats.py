"""The alert-format registry: the recipe of docs/design.md "Adding an alert format", with a toy survey."""

import io

import fastavro
import numpy as np
import pytest
from astropy.io import fits

from realbogus.alerts import read_alerts, score_alerts
from realbogus.alerts.formats import ALERT_FORMATS, AlertFormat, register_alert_format
from realbogus.alerts.reader import read_fields
from realbogus.errors import ConfigError
from realbogus.inference.scorer import Scorer
from realbogus.model.package import init_package, load_package

SCHEMA = {
    "type": "record",
    "name": "toyAlert",
    "fields": [
        {
            "name": "toyDetection",
            "type": {
                "type": "record",
                "name": "toyDetection",
                "fields": [
                    {"name": "id", "type": "long"},
                    {"name": "ra", "type": "double"},
                    {"name": "dec", "type": "double"},
                    {"name": "snr", "type": "float"},
                ],
            },
        },
        {"name": "history", "type": {"type": "array", "items": "double"}},
        *({"name": name, "type": "bytes"} for name in ("diff", "sci", "tmpl")),
    ],
}


def _toy_row(record: dict, *, where: str) -> dict:
    detection = record["toyDetection"]
    return {
        "diaSourceId": detection["id"],
        "ra": detection["ra"],
        "dec": detection["dec"],
        "snr": detection["snr"],
    }


def _toy_cutouts(record: dict, row: dict, *, where: str):
    planes = [
        fits.getdata(io.BytesIO(record[name])).astype(np.float32)
        for name in ("diff", "sci", "tmpl")
    ]
    return planes, [(p.shape[0] // 2, p.shape[1] // 2) for p in planes], "nJy"


TOY = AlertFormat(
    "toy",
    "toyDetection",
    frozenset({"toyDetection", "diff", "sci", "tmpl"}),
    _toy_row,
    _toy_cutouts,
)


@pytest.fixture
def toy_format():
    register_alert_format(TOY)
    yield TOY
    ALERT_FORMATS.pop("toy")


def _fits_bytes(data: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    fits.PrimaryHDU(data).writeto(buffer)
    return buffer.getvalue()


def test_a_registered_format_is_read_and_scored(toy_format, tmp_path, rng):
    """Toy packets (an Avro container file) decode to rows and stamps and score like any alert."""
    records = []
    for i in range(4):
        planes = rng.normal(0, 10, size=(3, 31, 31)).astype(np.float32)
        planes[0, 15, 15] += 200 * i
        records.append(
            {
                "toyDetection": {"id": 100 + i, "ra": 150.0 + i, "dec": 2.0, "snr": 5.0 + i},
                "history": [1.0, 2.0],
                **{
                    name: _fits_bytes(p)
                    for name, p in zip(("diff", "sci", "tmpl"), planes, strict=True)
                },
            }
        )
    path = tmp_path / "toy.avro"
    with open(path, "wb") as out:
        fastavro.writer(out, SCHEMA, records)
    assert "toyDetection" in read_fields() and "history" not in read_fields()

    batch = read_alerts([path], stamp_size=51, workers=1)
    assert batch.failures == []
    assert list(batch.table["survey"]) == ["toy"] * 4
    assert list(batch.table["diaSourceId"]) == [100, 101, 102, 103]
    assert batch.stamps.data.shape == (4, 3, 51, 51)
    assert batch.stamps.data[3, 0, 25, 25] == pytest.approx(600, abs=60)  # the central source

    package = load_package(init_package(tmp_path / "p"))
    scored = score_alerts(Scorer(package), [path], workers=1)
    assert list(scored.table["diaSourceId"]) == [100, 101, 102, 103]
    assert np.isfinite(scored.table["reliability"]).all()


def test_unknown_records_name_the_registered_formats(tmp_path):
    """A record of no registered format is a failure that lists what is known."""
    path = tmp_path / "other.avro"
    schema = {"type": "record", "name": "other", "fields": [{"name": "a", "type": "long"}]}
    with open(path, "wb") as out:
        fastavro.writer(out, schema, [{"a": 1}])
    batch = read_alerts([path], stamp_size=51, workers=1)
    assert (
        len(batch) == 0 and "rubin (no diaSource), ztf (no candidate)" in batch.failures[0].reason
    )


def test_a_marker_or_survey_is_registered_once():
    with pytest.raises(ConfigError, match="already registered"):
        register_alert_format(
            AlertFormat("rubin", "toyDetection", frozenset(), _toy_row, _toy_cutouts)
        )
