"""Tests of realbogus.evaluation.efficiency: binomial intervals, efficiency curves, 50 % points, ROC."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import roc_curve

from realbogus.errors import InputError
from realbogus.evaluation import metrics as M
from realbogus.evaluation.efficiency import (
    binomial_interval,
    calibration_intervals,
    efficiency_curve,
    fifty_percent_point,
    group_rates,
    roc_points,
)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (1, 4), (480, 500)])
def test_binomial_interval_is_clopper_pearson(k, n):
    """Equal to scipy's exact binomial interval, with closed ends at 0 and n."""
    lo, hi = binomial_interval([k], [n])
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert lo[0] == pytest.approx(ref.low, abs=1e-12)
    assert hi[0] == pytest.approx(ref.high, abs=1e-12)


def test_binomial_interval_empty_and_bad():
    """n = 0 is NaN; k > n is refused."""
    lo, hi = binomial_interval([0], [0])
    assert math.isnan(lo[0]) and math.isnan(hi[0])
    with pytest.raises(InputError):
        binomial_interval([3], [2])


def test_efficiency_curve_counts_and_fifty_percent_magnitude():
    """A step at 22.5 mag: counts per bin, and the 50 % magnitude between the bracketing bins."""
    mag = np.repeat(np.arange(20.25, 25, 0.5), 100)
    rng = np.random.default_rng(0)
    passed = rng.random(len(mag)) < np.where(mag < 22.5, 0.95, 0.05)
    c = efficiency_curve(mag, passed, np.arange(20, 25.01, 0.5))
    assert c.n.tolist() == [100] * 10
    assert (c.low <= c.fraction).all() and (c.fraction <= c.high).all()
    m50 = fifty_percent_point(c, falling=True)
    assert 22.25 < m50 < 22.75
    assert fifty_percent_point(c, falling=False) is None  # never rises through 0.5


def test_fifty_percent_snr_rising():
    """Completeness rising with SNR crosses 0.5 where it was built to (linear interpolation)."""
    snr = np.array([4.0] * 10 + [6.0] * 10)
    passed = np.array([True] * 2 + [False] * 8 + [True] * 8 + [False] * 2)
    c = efficiency_curve(snr, passed, [3, 5, 7])
    assert c.fraction.tolist() == [0.2, 0.8]
    assert fifty_percent_point(c, falling=False) == pytest.approx(5.0)


def test_roc_points_match_sklearn():
    """The ROC points equal scikit-learn's roc_curve (without its drop_intermediate)."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    s = np.round(np.clip(0.3 * y + 0.7 * rng.random(400), 0, 1), 3)
    fpr, tpr = roc_points(M.purity_completeness(y, s))
    f_ref, t_ref, _ = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, f_ref)
    np.testing.assert_allclose(tpr, t_ref)


def test_calibration_intervals_cover_fraction():
    """Per-bin intervals contain the bin's fraction Real; wider for small bins."""
    rng = np.random.default_rng(4)
    s = rng.random(2000) ** 3
    y = rng.random(2000) < s
    cal = M.calibration(y, s)
    lo, hi = calibration_intervals(cal)
    ok = cal.count > 0
    assert (lo[ok] <= cal.fraction_real[ok]).all() and (cal.fraction_real[ok] <= hi[ok]).all()
    widths = (hi - lo)[ok]
    assert widths[np.argmin(cal.count[ok])] > widths[np.argmax(cal.count[ok])]


def test_group_rates():
    """Purity and completeness per group at the cutoff, with intervals; NaN for no Real."""
    y = np.array([1, 1, 0, 0, 1, 0])
    s = np.array([0.9, 0.2, 0.7, 0.1, 0.8, 0.6])
    g = np.array(["a", "a", "a", "a", "b", "c"])
    rows = {r["group"]: r for r in group_rates(y, s, g, cutoff=0.5)}
    assert rows["a"]["purity"] == 0.5 and rows["a"]["completeness"] == 0.5
    assert rows["b"]["purity"] == 1.0 and rows["b"]["completeness"] == 1.0
    assert math.isnan(rows["c"]["completeness"]) and rows["c"]["purity"] == 0.0
    assert rows["a"]["purity_low"] < 0.5 < rows["a"]["purity_high"]
