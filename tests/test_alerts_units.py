"""Stamp units of alert packets: ZTF DN -> nJy with magzpsci, and the template's zero point."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from realbogus.alerts import read_alerts
from realbogus.alerts.units import SKY_RING, stamp_sky, to_units, unit_factors


def test_unit_factors_cover_every_case():
    table = pd.DataFrame(
        {
            "stampUnits": ["nJy", "DN", "DN", "DN", "ADU"],
            "magzpsci": pd.array([None, 26.4, None, -999.0, 26.0], dtype="Float64"),
        }
    )
    factors, reasons = unit_factors(table, "nJy")
    assert factors[0] == 1.0 and reasons[0] is None
    # 1 DN at zero point 26.4 is 10**(0.4 * 5) = 100 nJy.
    assert factors[1] == pytest.approx(100.0, rel=1e-12) and reasons[1] is None
    assert np.isnan(factors[2:]).all()
    assert "no usable magzpsci" in reasons[2] and "no usable magzpsci" in reasons[3]
    assert reasons[4] == "stamps are in ADU and there is no conversion to nJy"
    same, none = unit_factors(table, "ADU")
    assert same[4] == 1.0 and none[4] is None and np.isnan(same[:4]).all()


def test_ztf_template_shares_the_science_zero_point(shared_data):
    """The conversion's premise: ZTF's template cutout is gain-matched to the science cutout.

    Flux of bright template pixels (> 10 sigma, away from the candidate) in the science over
    the template: median within 3 % of 1 on the real alerts.
    """
    files = sorted((shared_data / "ztf" / "alerts").glob("*.avro"))[::4]
    batch = read_alerts(files, stamp_size=63, workers=1)
    ratios = []
    for diff_sci_tmpl, shape in zip(batch.stamps.data, batch.table.cutoutShape, strict=True):
        if shape != "63x63":
            continue
        science, template = (plane - np.median(plane) for plane in diff_sci_tmpl[1:])
        away = np.ones(science.shape, bool)
        away[25:38, 25:38] = False
        sigma = 1.4826 * np.median(np.abs(template[away]))
        bright = away & (template > 10 * sigma)
        if bright.sum() >= 10:
            ratios.append(science[bright].sum() / template[bright].sum())
    assert len(ratios) > 80
    assert abs(np.median(ratios) - 1) < 0.03


def test_stamp_sky_is_the_median_of_the_valid_border_pixels(rng):
    """Full borders, borders with a padded row or flagged pixels, and empty borders."""
    planes = rng.normal(1000, 30, size=(60, 63, 63)).astype(np.float32)
    planes[10:20, :, 0] = 0  # a padded column
    planes[20:30, 5:30, :9] = 0  # a flagged block
    planes[30:35, :2] = 0
    planes[35:40, :, :] = 0  # nothing valid
    planes[40:45, :2, :7] = 0
    sky = stamp_sky(planes)
    border = np.ones((63, 63), bool)
    border[SKY_RING:-SKY_RING, SKY_RING:-SKY_RING] = False
    for plane, value in zip(planes, sky, strict=True):
        pixels = plane[border]
        pixels = pixels[pixels != 0]
        expected = np.median(pixels) if pixels.size else 0.0
        assert value == pytest.approx(expected, rel=1e-6)
    assert (sky[35:40] == 0).all() and sky.dtype == np.float32


def test_ztf_negative_candidates_get_difference_science_minus_template(shared_data):
    """ZTF cuts a negative candidate's difference from the inverted image; after `to_units` the
    difference's centre has the sign of science - template, as for positive candidates."""
    batch = read_alerts(
        sorted((shared_data / "ztf" / "alerts").glob("*.avro")), stamp_size=63, workers=1
    )
    before = batch.stamps.data[:, 0].copy()
    converted, _ = to_units(batch, "nJy", "test")
    centre = np.s_[:, 30:33, 30:33]
    for stamps, flipped in ((batch.stamps.data, False), (converted.stamps.data, True)):
        table = converted.table if flipped else batch.table
        negative = table["isNegative"].fillna(False).to_numpy(bool)
        diff = stamps[:, 0][centre].sum(axis=(1, 2))
        change = (stamps[:, 1] - stamps[:, 2])[centre].sum(axis=(1, 2))
        agree = np.sign(diff[negative]) == np.sign(change[negative])
        assert negative.sum() > 150
        assert agree.mean() > 0.9 if flipped else agree.mean() < 0.1
    assert (converted.table["differenceNegated"] == converted.table["isNegative"]).all()
    np.testing.assert_array_equal(
        batch.stamps.data[:, 0], before
    )  # not in place: the batch is left as it was


def test_without_pixel_units_the_survey_conventions_still_apply(shared_data):
    """A model that records no pixel units (trained on mixed units) gets ZTF stamps in their own
    DN, but with the sky taken off and negative candidates' differences turned, as in nJy: the
    two differ by the unit factor alone. (Before, such a model scored the raw cutouts.)"""
    batch = read_alerts(
        sorted((shared_data / "ztf" / "alerts").glob("*.avro"))[:60], stamp_size=63, workers=1
    )
    native, failures = to_units(batch, None, "test")
    njy, _ = to_units(batch, "nJy", "test")
    assert not failures and len(native) == len(batch)
    assert (native.table["unitFactor"] == 1.0).all()
    assert (native.table["differenceNegated"] == native.table["isNegative"].fillna(False)).all()
    assert (native.table["skySubtracted"] > 0).mean() > 0.9
    factor = njy.table["unitFactor"].to_numpy(np.float32)[:, None, None, None]
    np.testing.assert_allclose(native.stamps.data * factor, njy.stamps.data, rtol=1e-4, atol=1e-2)
    factors, reasons = unit_factors(batch.table, None)
    assert (factors == 1.0).all() and all(r is None for r in reasons)
