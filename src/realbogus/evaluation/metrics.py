"""Purity, completeness, thresholds, the requirement window, calibration, slices and intervals.

Everything here is built on one counting core, :func:`confusion_at_thresholds`: the (weighted)
numbers of Real and Bogus detections with ``reliability >= t`` at every distinct score ``t``.
Purity (precision), completeness (recall), ROC AUC, the P = C crossing, the requirement window
and the bootstrap replicates all derive from it (style habit 11).

Conventions
-----------
* Labels: 1 = Real (positive), 0 = Bogus. Scores: reliability in [0, 1], higher = more Real.
* A detection *passes* a threshold ``t`` when ``reliability >= t``.
* Thresholds are the distinct observed scores, ascending (as scikit-learn's
  ``precision_recall_curve``, which additionally appends the end point purity 1, completeness 0).
* Undefined ratios are NaN (``null`` in JSON): completeness without Real detections, purity at a
  cut that nothing passes, AUC of a one-class sample. Public functions warn with
  :class:`~realbogus.errors.RealBogusWarning` when they return such a value for a one-class
  input; they never raise for it.
* The requirement (OSS-REQ-0353): purity >= 0.95 and completeness >= 0.90 at SNR 6.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..errors import ConfigError, InputError, RealBogusWarning

__all__ = [
    "REQUIREMENT_PURITY",
    "REQUIREMENT_COMPLETENESS",
    "SNR_BINS",
    "PCCurve",
    "Crossing",
    "Window",
    "Calibration",
    "confusion_at_thresholds",
    "purity_completeness",
    "crossing",
    "requirement_window",
    "rates_at",
    "roc_auc",
    "brier_score",
    "calibration",
    "bootstrap_intervals",
    "summarize",
    "snr_bin_labels",
    "slice_sort_key",
    "slice_summaries",
    "type_table",
]

REQUIREMENT_PURITY = 0.95
REQUIREMENT_COMPLETENESS = 0.90
#: Default SNR bin edges for slices (bins are [lo, hi); the last is open-ended).
SNR_BINS: tuple[float, ...] = (-math.inf, 5.0, 5.5, 6.5, 8.0, 10.0, 15.0, 25.0, 50.0, math.inf)


# --------------------------------------------------------------------------------------------
# Input checks and the counting core
# --------------------------------------------------------------------------------------------


def _check_inputs(
    y_true: npt.ArrayLike,
    y_score: npt.ArrayLike,
    sample_weight: npt.ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1:
        msg = f"labels and scores must be 1-d; got shapes {y.shape} and {s.shape}"
        raise InputError(msg)
    if len(y) != len(s):
        msg = f"labels ({len(y)}) and scores ({len(s)}) differ in length"
        raise InputError(msg)
    if y.dtype != bool:
        try:
            yf = y.astype(np.float64)
        except (TypeError, ValueError) as exc:
            msg = f"labels must be 0 (Bogus) or 1 (Real); got dtype {y.dtype}"
            raise InputError(msg) from exc
        bad = ~np.isin(yf, (0.0, 1.0))
        if bad.any():
            msg = (
                f"labels must be 0 (Bogus) or 1 (Real); got {np.unique(y[bad])[:5].tolist()} "
                "(drop unlabelled rows first)"
            )
            raise InputError(msg)
        y = yf == 1.0
    if not np.isfinite(s).all():
        msg = f"scores must be finite; {int((~np.isfinite(s)).sum())} are NaN or infinite"
        raise InputError(msg)
    if sample_weight is None:
        w = np.ones(len(s))
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != s.shape or not np.isfinite(w).all() or (w < 0).any():
            msg = "sample_weight must be finite, non-negative and shaped like the scores"
            raise InputError(msg)
    return y, s, w


def _sort(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order by descending score (stable): returns (order, sorted scores, sorted labels)."""
    order = np.argsort(-s, kind="mergesort")
    return order, s[order], y[order]


def _counts_sorted(
    s_sorted: np.ndarray, y_sorted: np.ndarray, w_sorted: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The counting core on data sorted by descending score.

    Returns thresholds (descending distinct scores carrying weight), tp, fp: the weight of Real
    and Bogus detections with score >= threshold.
    """
    if len(s_sorted) == 0:
        empty = np.zeros(0)
        return empty, empty, empty
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]
    tp = np.cumsum(w_sorted * y_sorted)[last]
    cw = np.cumsum(w_sorted)[last]
    fp = cw - tp
    keep = np.diff(np.r_[0.0, cw]) > 0  # thresholds whose score group has weight
    return s_sorted[last][keep], tp[keep], fp[keep]


def _weighted_counts(
    y: np.ndarray, s: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Checked inputs -> (thresholds, tp, fp, total Real weight, total Bogus weight)."""
    order, s_sorted, y_sorted = _sort(y, s)
    ws = w[order]
    thr, tp, fp = _counts_sorted(s_sorted, y_sorted.astype(np.float64), ws)
    n_real = float((ws * y_sorted).sum())
    return thr, tp, fp, n_real, float(ws.sum() - n_real)


def confusion_at_thresholds(
    y_true: npt.ArrayLike,
    y_score: npt.ArrayLike,
    *,
    sample_weight: npt.ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real and Bogus counts passing every distinct threshold: the counting core.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        1 = Real, 0 = Bogus (bool, int or float).
    y_score : array-like of shape (n,)
        Reliability scores, finite.
    sample_weight : array-like of shape (n,), optional
        Non-negative weights (e.g. bootstrap multiplicities); default 1.

    Returns
    -------
    thresholds : ndarray of shape (n_thresholds,)
        Distinct scores, **descending**.
    tp : ndarray of shape (n_thresholds,)
        Weight of Real detections with ``score >= thresholds[k]``.
    fp : ndarray of shape (n_thresholds,)
        Weight of Bogus detections with ``score >= thresholds[k]``.
    """
    thr, tp, fp, _, _ = _weighted_counts(*_check_inputs(y_true, y_score, sample_weight))
    return thr, tp, fp


# --------------------------------------------------------------------------------------------
# Curves and derived thresholds
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PCCurve:
    """Purity and completeness at every distinct threshold (ascending).

    Attributes
    ----------
    thresholds : ndarray of shape (n_thresholds,)
        Distinct scores, ascending; a detection passes when ``reliability >= threshold``.
    purity : ndarray of shape (n_thresholds,)
        tp / (tp + fp); never NaN (every threshold is passed by at least its own score group).
    completeness : ndarray of shape (n_thresholds,)
        tp / n_real; NaN when there is no Real detection.
    tp, fp : ndarray of shape (n_thresholds,)
        Weight of Real / Bogus detections passing.
    n_real, n_bogus : float
        Total weight of Real / Bogus detections.
    """

    thresholds: np.ndarray
    purity: np.ndarray
    completeness: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_real: float
    n_bogus: float


@dataclass(frozen=True)
class Crossing:
    """Where purity = completeness: threshold and common value, linearly interpolated."""

    threshold: float
    value: float


@dataclass(frozen=True)
class Window:
    """The thresholds meeting purity >= min_purity and completeness >= min_completeness.

    Attributes
    ----------
    low, high : float
        Smallest and largest observed threshold meeting both limits.
    n_thresholds : int
        Number of distinct thresholds meeting them.
    contiguous : bool
        False when some threshold between low and high fails (purity is not monotonic).
    """

    low: float
    high: float
    n_thresholds: int
    contiguous: bool


def _curve_from_counts(
    thr_desc: np.ndarray, tp: np.ndarray, fp: np.ndarray, n_real: float, n_bogus: float
) -> PCCurve:
    thr, tp, fp = thr_desc[::-1], tp[::-1], fp[::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        purity = tp / (tp + fp)
        completeness = tp / n_real if n_real > 0 else np.full(len(tp), np.nan)
    return PCCurve(thr, purity, completeness, tp, fp, float(n_real), float(n_bogus))


def purity_completeness(
    y_true: npt.ArrayLike,
    y_score: npt.ArrayLike,
    *,
    sample_weight: npt.ArrayLike | None = None,
) -> PCCurve:
    """Purity (precision) and completeness (recall) at every distinct threshold.

    Equal to scikit-learn's ``precision_recall_curve(y_true, y_score)`` without its appended
    end point (purity 1, completeness 0), except that completeness is NaN (with a
    RealBogusWarning) where scikit-learn sets recall to 1 for inputs without Real detections.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        1 = Real, 0 = Bogus.
    y_score : array-like of shape (n,)
        Reliability scores.
    sample_weight : array-like of shape (n,), optional
        Non-negative weights.

    Returns
    -------
    PCCurve
        Arrays of shape (n_thresholds,), thresholds ascending.
    """
    thr, tp, fp, n_real, n_bogus = _weighted_counts(*_check_inputs(y_true, y_score, sample_weight))
    if n_real == 0:
        warnings.warn(
            "no Real detections: completeness is undefined (NaN)", RealBogusWarning, stacklevel=2
        )
    return _curve_from_counts(thr, tp, fp, n_real, n_bogus)


def crossing(curve: PCCurve) -> Crossing | None:
    """The P = C crossing: the first (lowest) threshold where purity reaches completeness.

    Walking up the ascending thresholds, ``d = purity - completeness`` starts <= 0 (completeness
    is 1 at the lowest threshold). At the first threshold ``k`` with ``d[k] >= 0`` the crossing
    is interpolated linearly between thresholds ``k - 1`` and ``k``; both threshold and the common
    value (purity = completeness) are interpolated. If ``d[k] == 0`` exactly, the crossing is
    that threshold and its purity.

    Returns
    -------
    Crossing or None
        None when purity never reaches completeness over the observed thresholds, or the
        curve is empty or has no Real detections.
    """
    d = curve.purity - curve.completeness
    hit = np.flatnonzero(d >= 0)  # NaN compares False
    if len(hit) == 0:
        return None
    k = int(hit[0])
    if d[k] == 0 or k == 0:
        return Crossing(float(curve.thresholds[k]), float(curve.purity[k]))
    f = -d[k - 1] / (d[k] - d[k - 1])
    t = curve.thresholds[k - 1] + f * (curve.thresholds[k] - curve.thresholds[k - 1])
    v = curve.purity[k - 1] + f * (curve.purity[k] - curve.purity[k - 1])
    return Crossing(float(t), float(v))


def requirement_window(
    curve: PCCurve,
    *,
    min_purity: float = REQUIREMENT_PURITY,
    min_completeness: float = REQUIREMENT_COMPLETENESS,
) -> Window | None:
    """The thresholds meeting the requirement, as [low, high] (DMTN-337 section 4.3 style).

    Parameters
    ----------
    curve : PCCurve
    min_purity, min_completeness : float in [0, 1]
        The requirement; OSS-REQ-0353 by default (0.95, 0.90). Comparisons are ``>=``.

    Returns
    -------
    Window or None
        None when no observed threshold meets both limits.
    """
    _check_fraction("min_purity", min_purity)
    _check_fraction("min_completeness", min_completeness)
    ok = (curve.purity >= min_purity) & (curve.completeness >= min_completeness)
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        return None
    lo, hi = int(idx[0]), int(idx[-1])
    return Window(
        low=float(curve.thresholds[lo]),
        high=float(curve.thresholds[hi]),
        n_thresholds=len(idx),
        contiguous=bool(ok[lo : hi + 1].all()),
    )


def rates_at(curve: PCCurve, threshold: float) -> tuple[float, float]:
    """Purity and completeness of the cut ``reliability >= threshold`` (any real threshold).

    Returns
    -------
    purity, completeness : float
        Purity is NaN when nothing passes; completeness is NaN without Real detections.
    """
    k = int(np.searchsorted(curve.thresholds, threshold, side="left"))
    if k == len(curve.thresholds):
        return math.nan, (0.0 if curve.n_real > 0 else math.nan)
    return float(curve.purity[k]), float(curve.completeness[k])


def _check_fraction(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= float(value) <= 1.0):
        msg = f"{name} must be a number in [0, 1]; got {value!r}"
        raise ConfigError(msg)


# --------------------------------------------------------------------------------------------
# Scalar scores and calibration
# --------------------------------------------------------------------------------------------


def _auc_from_counts(tp: np.ndarray, fp: np.ndarray, n_real: float, n_bogus: float) -> float:
    if n_real <= 0 or n_bogus <= 0:
        return math.nan
    tpr = np.r_[0.0, tp] / n_real
    fpr = np.r_[0.0, fp] / n_bogus
    return float(np.trapezoid(tpr, fpr))


def roc_auc(
    y_true: npt.ArrayLike,
    y_score: npt.ArrayLike,
    *,
    sample_weight: npt.ArrayLike | None = None,
) -> float:
    """Area under the ROC curve (ties count one half), from the counting core.

    Returns NaN with a RealBogusWarning when only one class is present.
    """
    _, tp, fp, n_real, n_bogus = _weighted_counts(*_check_inputs(y_true, y_score, sample_weight))
    if n_real == 0 or n_bogus == 0:
        warnings.warn(
            "only one class present: ROC AUC is undefined (NaN)", RealBogusWarning, stacklevel=2
        )
    return _auc_from_counts(tp, fp, n_real, n_bogus)


def brier_score(
    y_true: npt.ArrayLike,
    y_score: npt.ArrayLike,
    *,
    sample_weight: npt.ArrayLike | None = None,
) -> float:
    """Mean squared difference between reliability and label (0 is perfect); NaN if empty."""
    y, s, w = _check_inputs(y_true, y_score, sample_weight)
    total = w.sum()
    if total == 0:
        return math.nan
    return float((w * (s - y) ** 2).sum() / total)


@dataclass(frozen=True)
class Calibration:
    """A reliability diagram with equal-width bins on [0, 1].

    Attributes
    ----------
    edges : ndarray of shape (n_bins + 1,)
        Bin edges; bin i holds ``edges[i] < score <= edges[i+1]`` (the first includes 0), the
        rule of ``sklearn.calibration.calibration_curve``.
    count : ndarray of shape (n_bins,)
        Weight of detections per bin.
    mean_score : ndarray of shape (n_bins,)
        Mean reliability per bin; NaN for empty bins.
    fraction_real : ndarray of shape (n_bins,)
        Fraction of Real detections per bin; NaN for empty bins.
    ece : float
        Expected calibration error: sum over bins of count/total * |fraction_real - mean_score|.
    """

    edges: np.ndarray
    count: np.ndarray
    mean_score: np.ndarray
    fraction_real: np.ndarray
    ece: float


def _calibration_arrays(
    bin_idx: np.ndarray, y: np.ndarray, s: np.ndarray, w: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    return _calibration_from_sums(
        np.bincount(bin_idx, weights=w, minlength=n_bins),
        np.bincount(bin_idx, weights=w * s, minlength=n_bins),
        np.bincount(bin_idx, weights=w * y, minlength=n_bins),
    )


def _calibration_from_sums(
    count: np.ndarray, sum_s: np.ndarray, sum_y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Per-bin weight, score sum and Real weight -> (count, mean score, fraction Real, ECE)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_s = np.where(count > 0, sum_s / count, np.nan)
        frac = np.where(count > 0, sum_y / count, np.nan)
    total = count.sum()
    nonempty = count > 0
    ece = (
        float((count[nonempty] * np.abs(frac[nonempty] - mean_s[nonempty])).sum() / total)
        if total > 0
        else math.nan
    )
    return count, mean_s, frac, ece


def _bin_index(s: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # Same rule as sklearn.calibration.calibration_curve(strategy="uniform").
    return np.searchsorted(edges[1:-1], s, side="left")


def calibration(
    y_true: npt.ArrayLike,
    y_score: npt.ArrayLike,
    *,
    n_bins: int = 10,
    sample_weight: npt.ArrayLike | None = None,
) -> Calibration:
    """Reliability diagram and expected calibration error (ECE).

    Parameters
    ----------
    y_true : array-like of shape (n,)
    y_score : array-like of shape (n,)
        Reliability in [0, 1].
    n_bins : int
        Number of equal-width bins on [0, 1].

    Returns
    -------
    Calibration
        Non-empty bins agree with ``sklearn.calibration.calibration_curve(strategy="uniform")``.
    """
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        msg = f"n_bins must be a positive integer; got {n_bins!r}"
        raise ConfigError(msg)
    y, s, w = _check_inputs(y_true, y_score, sample_weight)
    if len(s) and (s.min() < 0 or s.max() > 1):
        msg = f"calibration needs scores in [0, 1]; got range [{s.min()}, {s.max()}]"
        raise InputError(msg)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    count, mean_s, frac, ece = _calibration_arrays(
        _bin_index(s, edges), y.astype(np.float64), s, w, n_bins
    )
    return Calibration(edges, count, mean_s, frac, ece)


# --------------------------------------------------------------------------------------------
# Summaries and bootstrap intervals
# --------------------------------------------------------------------------------------------

#: Statistics that get bootstrap intervals (keys of ``summarize(...)["intervals"]``).
_STATS = (
    "auc",
    "brier",
    "ece",
    "purity_at_cutoff",
    "completeness_at_cutoff",
    "crossing_threshold",
    "crossing_value",
    "window_low",
    "window_high",
)


@dataclass(frozen=True)
class _Groups:
    """Rows sorted by descending score and grouped by distinct score, computed once per sample.

    A bootstrap replicate is then a vector of row multiplicities in sorted order; every statistic
    follows from two cumulative sums and per-group sums (O(n) + O(n_groups) per replicate).
    """

    inverse: np.ndarray  # (n,) sorted position of each row
    y_sorted: np.ndarray  # (n,) float labels in sorted order
    last: np.ndarray  # (G,) last sorted position of each distinct score
    scores: np.ndarray  # (G,) distinct scores, descending
    bins: np.ndarray  # (G,) calibration bin of each distinct score
    n_bins: int


def _groups(y: np.ndarray, s: np.ndarray, n_bins: int) -> _Groups:
    order, s_sorted, y_sorted = _sort(y, s)
    inverse = np.empty(len(s), np.int64)
    inverse[order] = np.arange(len(s))
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s) - 1] if len(s) else np.zeros(0, int)
    scores = s_sorted[last]
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return _Groups(
        inverse,
        y_sorted.astype(np.float64),
        last,
        scores,
        _bin_index(np.clip(scores, 0.0, 1.0), edges),
        n_bins,
    )


def _stats_groups(
    g: _Groups,
    w_sorted: np.ndarray,
    *,
    cutoff: float,
    min_purity: float,
    min_completeness: float,
) -> dict[str, float]:
    """Every interval statistic of the sample weighted by `w_sorted` (multiplicities)."""
    ctp = np.cumsum(w_sorted * g.y_sorted)[g.last]
    cw = np.cumsum(w_sorted)[g.last]
    gw = np.diff(cw, prepend=0.0)  # weight of each distinct score
    gy = np.diff(ctp, prepend=0.0)  # Real weight of each distinct score
    keep = gw > 0
    thr, tp, fp = g.scores[keep], ctp[keep], (cw - ctp)[keep]
    total = float(cw[-1]) if len(cw) else 0.0
    n_real = float(ctp[-1]) if len(ctp) else 0.0
    n_bogus = total - n_real
    curve = _curve_from_counts(thr, tp, fp, n_real, n_bogus)
    cross = crossing(curve)
    win = requirement_window(curve, min_purity=min_purity, min_completeness=min_completeness)
    p_cut, c_cut = rates_at(curve, cutoff)
    *_, ece = _calibration_from_sums(
        np.bincount(g.bins, weights=gw, minlength=g.n_bins),
        np.bincount(g.bins, weights=gw * g.scores, minlength=g.n_bins),
        np.bincount(g.bins, weights=gy, minlength=g.n_bins),
    )
    sq = gy * (g.scores - 1.0) ** 2 + (gw - gy) * g.scores**2
    return {
        "auc": _auc_from_counts(tp, fp, n_real, n_bogus),
        "brier": float(sq.sum() / total) if total else math.nan,
        "ece": ece,
        "purity_at_cutoff": p_cut,
        "completeness_at_cutoff": c_cut,
        "crossing_threshold": cross.threshold if cross else math.nan,
        "crossing_value": cross.value if cross else math.nan,
        "window_low": win.low if win else math.nan,
        "window_high": win.high if win else math.nan,
    }


def bootstrap_intervals(
    y_true: npt.ArrayLike,
    y_score: npt.ArrayLike,
    *,
    cutoff: float = 0.5,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
    min_purity: float = REQUIREMENT_PURITY,
    min_completeness: float = REQUIREMENT_COMPLETENESS,
    n_bins: int = 10,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, dict[str, float | int]]:
    """Percentile bootstrap intervals of the summary statistics.

    Each replicate resamples the n detections with replacement; replicate ``i`` draws from
    ``np.random.default_rng([seed, i])``, so results depend only on (seed, i). The data are sorted
    once and each replicate is a vector of multiplicities fed to the counting core, which is
    exactly equivalent to recomputing on the resampled rows.

    Parameters
    ----------
    y_true, y_score : array-like of shape (n,)
    cutoff : float
        Threshold for purity/completeness at the cutoff.
    n_boot : int
        Number of replicates (>= 1).
    seed : int
    level : float in (0, 1)
        Interval coverage; the interval is the [(1-level)/2, (1+level)/2] percentiles.

    Returns
    -------
    dict
        For each statistic in ``auc, brier, ece, purity_at_cutoff, completeness_at_cutoff,
        crossing_threshold, crossing_value, window_low, window_high``: ``{"low", "high",
        "n_defined"}`` (low/high NaN when no replicate defines the statistic), plus
        ``"window_fraction": {"value": fraction of replicates with a requirement window}``.
    """
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        msg = f"n_boot must be a positive integer; got {n_boot!r}"
        raise ConfigError(msg)
    if not (0.0 < level < 1.0):
        msg = f"level must be in (0, 1); got {level!r}"
        raise ConfigError(msg)
    y, s, _ = _check_inputs(y_true, y_score)
    n = len(s)
    if n == 0:
        msg = "cannot bootstrap an empty sample"
        raise InputError(msg)
    g = _groups(y, s, n_bins)
    values = {k: np.full(n_boot, np.nan) for k in _STATS}
    for i in range(n_boot):
        rng = np.random.default_rng([seed, i])
        # multiplicity of each row, in sorted order: the same draws as y[idx], s[idx]
        w = np.bincount(g.inverse[rng.integers(0, n, n)], minlength=n).astype(np.float64)
        stats = _stats_groups(
            g, w, cutoff=cutoff, min_purity=min_purity, min_completeness=min_completeness
        )
        for k, v in stats.items():
            values[k][i] = v
        if progress is not None:
            progress(i + 1, n_boot)
    q = [50.0 * (1 - level), 50.0 * (1 + level)]
    out: dict[str, dict[str, float | int]] = {}
    for k, arr in values.items():
        ok = arr[np.isfinite(arr)]
        lo, hi = np.percentile(ok, q) if len(ok) else (math.nan, math.nan)
        out[k] = {"low": float(lo), "high": float(hi), "n_defined": len(ok)}
    out["window_fraction"] = {"value": float(np.isfinite(values["window_low"]).mean())}
    return out


def _one_class_message(name: str, n_real: int, n_bogus: int, crossed: bool, window: bool) -> str:
    """One statement per one-class sample that says exactly what is and is not defined."""
    head = f"{name}: one-class sample ({n_real} Real, {n_bogus} Bogus): AUC is undefined"
    if n_real == 0:
        return head + "; completeness is undefined, and so are the P = C crossing and the window"
    defined = [w for w, ok in (("the P = C crossing", crossed), ("the window", window)) if ok]
    absent = [w for w, ok in (("the P = C crossing", crossed), ("the window", window)) if not ok]
    text = head + "; purity is 1 at every threshold, so"
    if defined:
        text += f" {' and '.join(defined)} only reflect completeness"
    if absent:
        text += ("; " if defined else " ") + f"{' and '.join(absent)} not reached"
    return text


def summarize(
    y_true: npt.ArrayLike,
    y_score: npt.ArrayLike,
    *,
    cutoff: float = 0.5,
    min_purity: float = REQUIREMENT_PURITY,
    min_completeness: float = REQUIREMENT_COMPLETENESS,
    n_bins: int = 10,
    n_boot: int = 0,
    seed: int = 0,
    level: float = 0.95,
    name: str = "sample",
) -> dict:
    """All headline numbers for one sample, JSON-ready (documented in docs/metrics.md).

    Parameters
    ----------
    y_true, y_score : array-like of shape (n,)
    cutoff : float
        The model's reliability cutoff.
    n_boot : int
        Bootstrap replicates for intervals; 0 = no intervals (``"intervals": null``).
    name : str
        Used in the one-class warning.

    Returns
    -------
    dict
        Keys ``n, n_real, n_bogus, auc, brier, ece, cutoff, purity_at_cutoff,
        completeness_at_cutoff, crossing, window, intervals``. ``crossing`` is
        ``{"threshold", "value"}`` or None; ``window`` is ``{"low", "high", "n_thresholds",
        "contiguous"}`` or None. Undefined numbers are NaN.
    """
    _check_fraction("cutoff", cutoff)
    y, s, w = _check_inputs(y_true, y_score)
    n_real = int(y.sum())
    n_bogus = int(len(y) - n_real)
    if n_real == 0 and n_bogus == 0:
        warnings.warn(
            f"{name}: empty sample: every number is undefined (NaN/None)",
            RealBogusWarning,
            stacklevel=2,
        )
    order, s_sorted, y_sorted = _sort(y, s)
    y_sorted = y_sorted.astype(np.float64)
    thr, tp, fp = _counts_sorted(s_sorted, y_sorted, w[order])
    curve = _curve_from_counts(thr, tp, fp, n_real, n_bogus)
    cross = crossing(curve)
    win = requirement_window(curve, min_purity=min_purity, min_completeness=min_completeness)
    if (n_real == 0) != (n_bogus == 0):
        warnings.warn(
            _one_class_message(name, n_real, n_bogus, cross is not None, win is not None),
            RealBogusWarning,
            stacklevel=2,
        )
    p_cut, c_cut = rates_at(curve, cutoff)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    *_, ece = _calibration_arrays(
        _bin_index(np.clip(s, 0.0, 1.0), edges), y.astype(np.float64), s, w, n_bins
    )
    out = {
        "n": len(y),
        "n_real": n_real,
        "n_bogus": n_bogus,
        "auc": _auc_from_counts(tp, fp, n_real, n_bogus),
        "brier": float(((s - y) ** 2).mean()) if len(s) else math.nan,
        "ece": ece,
        "cutoff": float(cutoff),
        "purity_at_cutoff": p_cut,
        "completeness_at_cutoff": c_cut,
        "crossing": None if cross is None else {"threshold": cross.threshold, "value": cross.value},
        "window": None
        if win is None
        else {
            "low": win.low,
            "high": win.high,
            "n_thresholds": win.n_thresholds,
            "contiguous": win.contiguous,
        },
        "intervals": None,
    }
    if n_boot and len(y):
        out["intervals"] = bootstrap_intervals(
            y,
            s,
            cutoff=cutoff,
            n_boot=n_boot,
            seed=seed,
            level=level,
            min_purity=min_purity,
            min_completeness=min_completeness,
            n_bins=n_bins,
        )
    return out


# --------------------------------------------------------------------------------------------
# Slices and the per-type table
# --------------------------------------------------------------------------------------------


def snr_bin_labels(snr: npt.ArrayLike, edges: tuple[float, ...] = SNR_BINS) -> np.ndarray:
    """Label each SNR with its bin ``"[lo, hi)"`` (NaN SNR -> ``"missing"``).

    Parameters
    ----------
    snr : array-like of shape (n,)
    edges : increasing sequence of floats (may start at -inf and end at inf)

    Returns
    -------
    ndarray of str, shape (n,)
    """
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or len(e) < 2 or not (np.diff(e) > 0).all():
        msg = f"SNR bin edges must be strictly increasing with at least two; got {edges!r}"
        raise ConfigError(msg)
    x = np.asarray(snr, dtype=np.float64)
    names = np.array(
        [f"[{_fmt(lo)}, {_fmt(hi)})" for lo, hi in zip(e[:-1], e[1:], strict=True)] + ["missing"]
    )
    idx = np.searchsorted(e, x, side="right") - 1
    idx = np.where(np.isnan(x) | (idx < 0) | (idx >= len(e) - 1), len(names) - 1, idx)
    return names[idx]


def slice_sort_key(key: str) -> tuple:
    """Sort key for slice names: numeric intervals ``"[lo, hi)"`` by their bounds, then text.

    ``"[5, 5.5)" < "[5.5, 6.5)" < "[10, 15)" < "[50, inf)"``, and ``"missing"`` last; other keys
    (origins, kinds) sort as text after the intervals.
    """
    if key.startswith("[") and key.endswith(")") and ", " in key:
        try:
            lo, hi = (float(v) for v in key[1:-1].split(", "))
        except ValueError:
            pass
        else:
            return (0, lo, hi, "")
    return (2, 0.0, 0.0, key) if key == "missing" else (1, 0.0, 0.0, key)


def _fmt(v: float) -> str:
    return "inf" if v == math.inf else "-inf" if v == -math.inf else f"{v:g}"


def _group_key(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "missing"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value)


def slice_summaries(
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    groups: npt.ArrayLike,
    *,
    by: str,
    cutoff: float = 0.5,
    min_purity: float = REQUIREMENT_PURITY,
    min_completeness: float = REQUIREMENT_COMPLETENESS,
    n_bins: int = 10,
    n_boot: int = 0,
    seed: int = 0,
) -> dict[str, dict]:
    """:func:`summarize` per group (origin, truthKind, flux sign, SNR bin, ...).

    Parameters
    ----------
    labels, scores : array-like of shape (n,)
    groups : array-like of shape (n,)
        Group value per detection; booleans become ``"true"``/``"false"``, missing values
        ``"missing"``.
    by : str
        The grouping's name (for warnings).

    Returns
    -------
    dict
        ``{group key: summary}``, keys in :func:`slice_sort_key` order (SNR bins numeric). One-class groups warn (RealBogusWarning) and get
        NaN/None for the undefined numbers.
    """
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    keys = np.array([_group_key(g) for g in np.asarray(groups, dtype=object)], dtype=object)
    if len(keys) != len(y):
        msg = f"groups ({len(keys)}) and labels ({len(y)}) differ in length"
        raise InputError(msg)
    out = {}
    for key in sorted(set(keys.tolist()), key=slice_sort_key):
        m = keys == key
        out[key] = summarize(
            y[m],
            s[m],
            cutoff=cutoff,
            min_purity=min_purity,
            min_completeness=min_completeness,
            n_bins=n_bins,
            n_boot=n_boot,
            seed=seed,
            name=f"slice {by}={key}",
        )
    return out


def type_table(
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    types: npt.ArrayLike,
    *,
    cutoff: float = 0.5,
) -> list[dict]:
    """True-positive / false-negative fractions per type at a cutoff (DMTN-337 Table 5).

    Parameters
    ----------
    labels, scores, types : array-like of shape (n,)
    cutoff : float
        A detection passes when ``reliability >= cutoff``.

    Returns
    -------
    list of dict, one per type (sorted)
        ``type, n_real, true_positives, false_negatives, true_positive_fraction,
        false_negative_fraction, n_bogus, false_positives, false_positive_fraction``; fractions
        are NaN where their denominator is 0.
    """
    _check_fraction("cutoff", cutoff)
    y, s, _ = _check_inputs(labels, scores)
    keys = np.array([_group_key(t) for t in np.asarray(types, dtype=object)], dtype=object)
    if len(keys) != len(y):
        msg = f"types ({len(keys)}) and labels ({len(y)}) differ in length"
        raise InputError(msg)
    rows = []
    passes = s >= cutoff
    for key in sorted(set(keys.tolist())):
        m = keys == key
        real, bogus = m & y, m & ~y
        n_real, n_bogus = int(real.sum()), int(bogus.sum())
        tp, fp = int((real & passes).sum()), int((bogus & passes).sum())
        rows.append(
            {
                "type": key,
                "n_real": n_real,
                "true_positives": tp,
                "false_negatives": n_real - tp,
                "true_positive_fraction": tp / n_real if n_real else math.nan,
                "false_negative_fraction": (n_real - tp) / n_real if n_real else math.nan,
                "n_bogus": n_bogus,
                "false_positives": fp,
                "false_positive_fraction": fp / n_bogus if n_bogus else math.nan,
            }
        )
    return rows
