"""Efficiency curves, binomial intervals, ROC points and per-group rates at a cutoff.

Pure functions (numpy, scipy) for the report's curves; nothing here draws. Intervals are
Clopper-Pearson ("exact") binomial intervals: for k successes in n trials at coverage `level`,
``[Beta((1-level)/2; k, n-k+1), Beta((1+level)/2; k+1, n-k)]`` with the closed ends 0 and 1
at k = 0 and k = n.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import beta

from ..errors import ConfigError, InputError
from .metrics import Calibration, PCCurve

__all__ = [
    "EfficiencyCurve",
    "binomial_interval",
    "calibration_intervals",
    "efficiency_curve",
    "fifty_percent_point",
    "group_rates",
    "roc_points",
]


def binomial_interval(
    k: npt.ArrayLike, n: npt.ArrayLike, *, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Clopper-Pearson interval of a binomial fraction k / n.

    Parameters
    ----------
    k, n : array-like of the same shape, counts (k <= n)
        Successes and trials; n = 0 gives NaN.
    level : float in (0, 1)
        Coverage.

    Returns
    -------
    low, high : ndarray of the input shape, float64
    """
    if not 0 < level < 1:
        msg = f"level must be in (0, 1); got {level!r}"
        raise ConfigError(msg)
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if k.shape != n.shape or (k < 0).any() or (k > n).any():
        msg = f"need 0 <= k <= n with equal shapes; got shapes {k.shape} and {n.shape}"
        raise InputError(msg)
    a = (1 - level) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, beta.ppf(a, k, n - k + 1), 0.0)
        high = np.where(k < n, beta.ppf(1 - a, k + 1, n - k), 1.0)
    empty = n == 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


@dataclass(frozen=True)
class EfficiencyCurve:
    """Fraction of detections passing a cut, per bin of a quantity, with binomial intervals.

    Attributes
    ----------
    edges : ndarray of shape (n_bins + 1,)
        Bin edges of the quantity (bins are [lo, hi); the last is closed).
    centre : ndarray of shape (n_bins,)
        Median of the quantity in each bin (NaN for empty bins).
    n, k : ndarray of shape (n_bins,), int64
        Detections in the bin, and those passing.
    fraction, low, high : ndarray of shape (n_bins,)
        k / n and its Clopper-Pearson interval (NaN where n = 0).
    level : float
        Interval coverage.
    """

    edges: np.ndarray
    centre: np.ndarray
    n: np.ndarray
    k: np.ndarray
    fraction: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: float


def efficiency_curve(
    values: npt.ArrayLike,
    passed: npt.ArrayLike,
    edges: npt.ArrayLike,
    *,
    level: float = 0.95,
) -> EfficiencyCurve:
    """Completeness (fraction passing) against a binned quantity (magnitude, SNR).

    Parameters
    ----------
    values : array-like of shape (n,)
        The quantity per detection (e.g. magnitude, mag; SNR); non-finite and out-of-range
        values are left out.
    passed : array-like of shape (n,), bool
        Whether each detection passes the cut (reliability >= cutoff).
    edges : array-like of shape (n_bins + 1,), increasing
    level : float
        Interval coverage.

    Returns
    -------
    EfficiencyCurve
    """
    x = np.asarray(values, dtype=np.float64)
    ok = np.asarray(passed, dtype=bool)
    e = np.asarray(edges, dtype=np.float64)
    if x.shape != ok.shape or x.ndim != 1:
        msg = f"values and passed must be 1-d of equal length; got {x.shape} and {ok.shape}"
        raise InputError(msg)
    if e.ndim != 1 or len(e) < 2 or not (np.diff(e) > 0).all():
        msg = f"edges must be strictly increasing with at least two; got {e.tolist()}"
        raise ConfigError(msg)
    keep = np.isfinite(x) & (x >= e[0]) & (x <= e[-1])
    idx = np.clip(np.searchsorted(e, x[keep], side="right") - 1, 0, len(e) - 2)
    nb = len(e) - 1
    n = np.bincount(idx, minlength=nb).astype(np.int64)
    k = np.bincount(idx, weights=ok[keep], minlength=nb).round().astype(np.int64)
    centre = np.full(nb, np.nan)
    xs = x[keep]
    for b in np.flatnonzero(n):
        centre[b] = float(np.median(xs[idx == b]))
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(n > 0, k / np.maximum(n, 1), np.nan)
    low, high = binomial_interval(k, n, level=level)
    return EfficiencyCurve(e, centre, n, k, frac, low, high, float(level))


def fifty_percent_point(curve: EfficiencyCurve, *, falling: bool) -> float | None:
    """Where the efficiency crosses 50 %, linearly interpolated between bin centres.

    Parameters
    ----------
    curve : EfficiencyCurve
    falling : bool
        True for a quantity along which completeness falls (magnitude: the first bin, from
        bright to faint, whose fraction drops below 0.5 after one at or above it); False for one
        along which it rises (SNR: the first bin at or above 0.5 after one below it).

    Returns
    -------
    float or None
        The quantity at 50 % completeness; None when the curve does not cross 0.5.
    """
    good = np.flatnonzero(curve.n > 0)
    x, f = curve.centre[good], curve.fraction[good]
    for a, b in zip(range(len(x) - 1), range(1, len(x)), strict=True):
        crosses = (f[a] >= 0.5 > f[b]) if falling else (f[a] < 0.5 <= f[b])
        if crosses:
            t = (0.5 - f[a]) / (f[b] - f[a])
            return float(x[a] + t * (x[b] - x[a]))
    return None


def roc_points(curve: PCCurve) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve from a purity/completeness curve.

    Parameters
    ----------
    curve : PCCurve
        Thresholds ascending.

    Returns
    -------
    fpr, tpr : ndarray of shape (n_thresholds + 1,)
        False- and true-positive rates, from the highest threshold to the lowest, starting at
        (0, 0) (nothing passes). NaN where a class is absent.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = curve.tp[::-1] / curve.n_real if curve.n_real > 0 else np.full(len(curve.tp), np.nan)
        fpr = (
            curve.fp[::-1] / curve.n_bogus if curve.n_bogus > 0 else np.full(len(curve.fp), np.nan)
        )
    return np.r_[0.0, fpr], np.r_[0.0, tpr]


def calibration_intervals(
    cal: Calibration, *, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Binomial interval of the fraction Real in each calibration bin.

    Parameters
    ----------
    cal : Calibration
        Unweighted (counts are detection numbers).

    Returns
    -------
    low, high : ndarray of shape (n_bins,)
        NaN for empty bins.
    """
    n = np.round(np.asarray(cal.count, dtype=np.float64))
    frac = np.nan_to_num(np.asarray(cal.fraction_real, dtype=np.float64))
    k = np.clip(np.round(frac * n), 0, n)
    return binomial_interval(k, n, level=level)


def group_rates(
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    groups: npt.ArrayLike,
    *,
    cutoff: float,
    level: float = 0.95,
) -> list[dict]:
    """Purity and completeness at a cutoff per group (origin), with binomial intervals.

    Parameters
    ----------
    labels : array-like of shape (n,)
        1 Real, 0 Bogus (labelled rows only).
    scores : array-like of shape (n,)
    groups : array-like of shape (n,)
        Group key per detection (str).
    cutoff : float
    level : float

    Returns
    -------
    list of dict, one per group (sorted by key)
        ``group, n_real, n_bogus, n_passing, purity, purity_low, purity_high, completeness,
        completeness_low, completeness_high``; NaN where the denominator is 0.
    """
    y = np.asarray(labels) == 1
    s = np.asarray(scores, dtype=np.float64)
    g = np.asarray(groups, dtype=object).astype(str)
    if not (len(y) == len(s) == len(g)):
        msg = f"labels, scores and groups differ in length: {len(y)}, {len(s)}, {len(g)}"
        raise InputError(msg)
    passes = s >= cutoff
    rows = []
    for key in sorted(set(g.tolist())):
        m = g == key
        n_real, n_pass = int((m & y).sum()), int((m & passes).sum())
        tp = int((m & y & passes).sum())
        p_lo, p_hi = binomial_interval([tp], [n_pass], level=level)
        c_lo, c_hi = binomial_interval([tp], [n_real], level=level)
        rows.append(
            {
                "group": key,
                "n_real": n_real,
                "n_bogus": int((m & ~y).sum()),
                "n_passing": n_pass,
                "purity": tp / n_pass if n_pass else math.nan,
                "purity_low": float(p_lo[0]),
                "purity_high": float(p_hi[0]),
                "completeness": tp / n_real if n_real else math.nan,
                "completeness_low": float(c_lo[0]),
                "completeness_high": float(c_hi[0]),
            }
        )
    return rows
