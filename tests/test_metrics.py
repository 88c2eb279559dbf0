"""Tests of realbogus.evaluation.metrics: against scikit-learn, slow loops and hand-made cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, precision_recall_curve, roc_auc_score

from realbogus.errors import ConfigError, InputError, RealBogusWarning
from realbogus.evaluation import metrics as M


def _data(rng: np.random.Generator, n: int = 500, *, ties: bool = False):
    y = rng.random(n) < 0.4
    s = np.clip(0.3 * y + rng.normal(0.4, 0.2, n), 0, 1)
    if ties:
        s = np.round(s, 1)  # heavy ties
    return y.astype(int), s


# ---------------------------------------------------------------- the counting core ----------


@pytest.mark.parametrize("ties", [False, True])
def test_curve_equals_sklearn_precision_recall_curve(rng, ties):
    """Purity, completeness and thresholds equal sklearn's, minus its appended end point."""
    y, s = _data(rng, ties=ties)
    precision, recall, thresholds = precision_recall_curve(y, s)
    curve = M.purity_completeness(y, s)
    np.testing.assert_array_equal(curve.thresholds, thresholds)
    np.testing.assert_allclose(curve.purity, precision[:-1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(curve.completeness, recall[:-1], rtol=0, atol=1e-15)
    assert (precision[-1], recall[-1]) == (1.0, 0.0)
    assert curve.n_real == y.sum() and curve.n_bogus == len(y) - y.sum()


def test_counts_equal_a_plain_loop(rng):
    """tp/fp at every threshold equal a brute-force count of score >= t."""
    y, s = _data(rng, n=200, ties=True)
    thr, tp, fp = M.confusion_at_thresholds(y, s)
    assert (np.diff(thr) < 0).all()
    np.testing.assert_array_equal(thr, np.unique(s)[::-1])
    for t, a, b in zip(thr, tp, fp, strict=True):
        assert a == sum(1 for yi, si in zip(y, s, strict=True) if si >= t and yi == 1)
        assert b == sum(1 for yi, si in zip(y, s, strict=True) if si >= t and yi == 0)


def test_auc_brier_equal_sklearn_and_slow_pairwise(rng):
    """ROC AUC equals sklearn and the pairwise (Mann-Whitney, ties 1/2) definition."""
    y, s = _data(rng, n=300, ties=True)
    auc = M.roc_auc(y, s)
    assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    pos, neg = s[y == 1], s[y == 0]
    slow = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
    assert auc == pytest.approx(slow, abs=1e-12)
    assert M.brier_score(y, s) == pytest.approx(brier_score_loss(y, s), abs=1e-15)


def test_calibration_equals_sklearn_and_ece_by_hand(rng):
    """Non-empty bins match calibration_curve(uniform); ECE is the weighted gap."""
    y, s = _data(rng, n=400)
    s[:5] = [0.0, 0.1, 0.3, 0.7, 1.0]  # edge values
    cal = M.calibration(y, s, n_bins=10)
    prob_true, prob_pred = calibration_curve(y, s, n_bins=10, strategy="uniform")
    nonempty = cal.count > 0
    np.testing.assert_allclose(cal.fraction_real[nonempty], prob_true, atol=1e-12)
    np.testing.assert_allclose(cal.mean_score[nonempty], prob_pred, atol=1e-12)
    assert cal.count.sum() == len(y)
    ece = sum(
        c / len(y) * abs(f - m)
        for c, f, m in zip(cal.count, cal.fraction_real, cal.mean_score, strict=True)
        if c > 0
    )
    assert cal.ece == pytest.approx(ece)
    perfect = M.calibration([0, 1, 1, 0], [0.0, 1.0, 1.0, 0.0])
    assert perfect.ece == 0.0
    assert np.isnan(perfect.mean_score[3])  # empty bin


# ---------------------------------------------------------------- hand-made cases ------------


def test_ties_share_one_threshold():
    """Tied scores form one threshold; purity there mixes both classes."""
    curve = M.purity_completeness([1, 0, 1, 1], [0.5, 0.5, 0.5, 0.9])
    np.testing.assert_array_equal(curve.thresholds, [0.5, 0.9])
    np.testing.assert_allclose(curve.purity, [0.75, 1.0])
    np.testing.assert_allclose(curve.completeness, [1.0, 1 / 3])


def test_crossing_hand_made_interpolated():
    """P - C goes from -0.5 to +1/6 between 0.2 and 0.6: interpolate threshold and value."""
    y = [0, 1, 0, 1]
    s = [0.1, 0.2, 0.4, 0.6]
    curve = M.purity_completeness(y, s)
    # thresholds 0.1, 0.2, 0.4, 0.6: P = .5, 2/3, .5, 1 ; C = 1, 1, .5, .5
    np.testing.assert_allclose(curve.purity, [0.5, 2 / 3, 0.5, 1.0])
    np.testing.assert_allclose(curve.completeness, [1, 1, 0.5, 0.5])
    c = M.crossing(curve)
    # d = -.5, -1/3, 0 -> exact crossing at 0.4 with value 0.5
    assert c == M.Crossing(threshold=0.4, value=0.5)
    curve2 = M.purity_completeness([0, 1, 1, 0, 1], [0.1, 0.2, 0.3, 0.4, 0.8])
    # P = 3/5, 3/4, 2/3, 1/2, 1 ; C = 1, 1, 2/3, 1/3, 1/3: d = -.4, -.25, 0 -> crossing at 0.3
    assert M.crossing(curve2) == M.Crossing(0.3, pytest.approx(2 / 3))
    curve3 = M.purity_completeness([0, 1, 0, 1], [0.1, 0.2, 0.5, 0.7])
    # P = .5, 2/3, .5, 1 ; C = 1, 1, .5, .5 ; d = -.5, -1/3, 0 at 0.5
    assert M.crossing(curve3).threshold == 0.5
    curve4 = M.purity_completeness([0, 1, 1, 0, 1], [0.0, 0.2, 0.4, 0.6, 1.0])
    # P = .6, .75, 2/3, .5, 1 ; C = 1, 1, 2/3, 1/3, 1/3: d = -.4, -.25, 0 -> 0.4, 2/3
    c4 = M.crossing(curve4)
    assert c4.threshold == 0.4 and c4.value == pytest.approx(2 / 3)


def test_crossing_strictly_between_thresholds():
    """d = -0.25 at t=0.2 and +0.5 at t=0.8: crossing 1/3 of the way, value interpolated."""
    y = [0, 1, 1, 0, 1]
    s = [0.1, 0.2, 0.2, 0.5, 0.8]
    curve = M.purity_completeness(y, s)
    # thr .1 .2 .5 .8: P = .6, .75, .5, 1 ; C = 1, 1, 1/3, 1/3 ; d = -.4, -.25, 1/6, 2/3
    f = 0.25 / (0.25 + 1 / 6)
    c = M.crossing(curve)
    assert c.threshold == pytest.approx(0.2 + f * 0.3)
    assert c.value == pytest.approx(0.75 + f * (0.5 - 0.75))


def test_no_crossing_and_one_class():
    """Purity never reaching completeness, or no Real, gives None."""
    # Real all at the lowest score: P < C everywhere except... P=1/2,C=1 then P=0,C=0 (d=0!)
    curve = M.purity_completeness([1, 0], [0.1, 0.9])
    c = M.crossing(curve)
    assert c == M.Crossing(0.9, 0.0)  # P = C = 0 at 0.9: a legitimate (bad) crossing
    with pytest.warns(RealBogusWarning, match="no Real"):
        none_real = M.purity_completeness([0, 0], [0.1, 0.9])
    assert M.crossing(none_real) is None
    assert M.requirement_window(none_real) is None
    empty = M.purity_completeness(np.array([1, 1, 0]), np.array([0.5, 0.5, 0.5]))
    # one threshold: P = 2/3 < C = 1 -> no crossing
    assert M.crossing(empty) is None


def test_window_hand_made():
    """20 Real at 0.6..0.99, 1 Bogus at 0.55 and 1 at 0.7: window = thresholds with P>=.95,C>=.9."""
    real = np.round(np.linspace(0.60, 0.98, 20), 2)
    y = np.r_[np.ones(20), 0, 0].astype(int)
    s = np.r_[real, 0.55, 0.70]
    curve = M.purity_completeness(y, s)
    w = M.requirement_window(curve)
    brute = [
        t for t in np.unique(s) if (y[s >= t].mean() >= 0.95) and (y[s >= t].sum() / 20 >= 0.90)
    ]
    assert w is not None
    assert (w.low, w.high) == (min(brute), max(brute))
    assert w.n_thresholds == len(brute)
    assert w.contiguous
    # at 0.56 and up: P = 20/21 = 0.952 with C = 1 -> low is the lowest Real score
    assert w.low == 0.60
    # at 0.62: 19 Real + the Bogus at 0.70 pass, P = 19/20 = 0.95 (inside); at 0.64 P = 18/19
    assert w.high == real[1]


def test_window_exact_limits_count():
    """Purity exactly 0.95 and completeness exactly 0.90 are inside (>=)."""
    # 19 Real + 1 Bogus above 0.5 (P = .95), 2 more Real below at 0.1 (C = 19/21 < .9) ...
    y = np.r_[np.ones(18), 0, np.ones(2)].astype(int)  # 20 Real
    s = np.r_[np.full(18, 0.8), 0.8, np.full(2, 0.2)]
    curve = M.purity_completeness(y, s)
    # t=0.2: P=20/21, C=1 ; t=0.8: P=18/19=.947, C=.9
    assert M.requirement_window(curve) == M.Window(0.2, 0.2, 1, True)
    y2 = np.r_[np.ones(19), 0, np.ones(1)].astype(int)
    s2 = np.r_[np.full(19, 0.8), 0.8, 0.2]
    curve2 = M.purity_completeness(y2, s2)
    # t=0.8: P = 19/20 = 0.95 exactly, C = 19/20 = .95 -> inside
    assert M.requirement_window(curve2) == M.Window(0.2, 0.8, 2, True)


def test_no_window_cases():
    """Too many Bogus everywhere, or too few Real left where purity is met: None."""
    y = [1, 0, 1, 0, 1, 0]
    s = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    assert M.requirement_window(M.purity_completeness(y, s)) is None
    # purity 1 only at the very top, where completeness is 1/3
    assert M.requirement_window(M.purity_completeness([1, 1, 1, 0], [0.9, 0.2, 0.2, 0.5])) is None


def test_window_not_contiguous():
    """Purity dips below 0.95 between two passing thresholds: contiguous False."""
    y = np.r_[np.ones(40), 0, 0].astype(int)
    s = np.r_[np.linspace(0.1, 0.9, 40), 0.05, 0.3]
    curve = M.purity_completeness(y, s)
    w = M.requirement_window(curve, min_purity=0.975, min_completeness=0.5)
    ok = (curve.purity >= 0.975) & (curve.completeness >= 0.5)
    assert w.low == curve.thresholds[ok][0] and w.high == curve.thresholds[ok][-1]
    assert w.contiguous == bool(ok[np.argmax(ok) : len(ok) - np.argmax(ok[::-1])].all())
    assert not w.contiguous


def test_rates_at_any_threshold():
    """Cut between observed scores behaves like the next observed score; above all: nothing."""
    curve = M.purity_completeness([0, 1, 0, 1], [0.1, 0.2, 0.4, 0.6])
    assert M.rates_at(curve, 0.3) == (0.5, 0.5)
    assert M.rates_at(curve, 0.2) == pytest.approx((2 / 3, 1.0))
    p, c = M.rates_at(curve, 0.7)
    assert math.isnan(p) and c == 0.0


def test_bad_inputs_raise_our_errors():
    """Unknown labels, NaN scores, shape mismatches and bad options are clear errors."""
    with pytest.raises(InputError, match="labels must be 0"):
        M.purity_completeness([0, 2], [0.1, 0.2])
    with pytest.raises(InputError, match="labels must be 0"):
        M.purity_completeness([0, np.nan], [0.1, 0.2])
    with pytest.raises(InputError, match="finite"):
        M.roc_auc([0, 1], [0.1, np.nan])
    with pytest.raises(InputError, match="differ in length"):
        M.brier_score([0, 1], [0.1])
    with pytest.raises(ConfigError, match="min_purity"):
        M.requirement_window(M.purity_completeness([0, 1], [0.1, 0.2]), min_purity=95)
    with pytest.raises(ConfigError, match="n_boot"):
        M.bootstrap_intervals([0, 1], [0.1, 0.2], n_boot=0)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        M.calibration([0, 1], [0.1, 1.2])


# ---------------------------------------------------------------- bootstrap -----------------


def test_bootstrap_weights_equal_resampled_rows(rng):
    """A multiplicity-weighted replicate equals the statistics of the repeated rows."""
    y, s = _data(rng, n=120, ties=True)
    n = len(y)
    w = np.bincount(np.random.default_rng([7, 3]).integers(0, n, n), minlength=n)
    g = M._groups(y.astype(bool), s, 10)
    stats = M._stats_groups(
        g,
        w[np.argsort(-s, kind="mergesort")].astype(float),
        cutoff=0.5,
        min_purity=0.6,
        min_completeness=0.5,
    )
    yr, sr = np.repeat(y, w), np.repeat(s, w)
    ref = M.summarize(yr, sr, cutoff=0.5, min_purity=0.6, min_completeness=0.5)
    assert stats["auc"] == pytest.approx(ref["auc"])
    assert stats["brier"] == pytest.approx(ref["brier"])
    assert stats["ece"] == pytest.approx(ref["ece"])
    assert stats["purity_at_cutoff"] == pytest.approx(ref["purity_at_cutoff"])
    assert stats["completeness_at_cutoff"] == pytest.approx(ref["completeness_at_cutoff"])
    assert stats["crossing_threshold"] == pytest.approx(ref["crossing"]["threshold"])
    assert stats["crossing_value"] == pytest.approx(ref["crossing"]["value"])
    assert ref["window"] is not None
    assert stats["window_low"] == ref["window"]["low"]
    assert stats["window_high"] == ref["window"]["high"]


def test_bootstrap_equals_slow_resampling_reference(rng):
    """Intervals equal those of explicitly resampled rows (same draws), recomputed one by one."""
    y, s = _data(rng, n=150, ties=True)
    n, n_boot = len(y), 25
    got = M.bootstrap_intervals(
        y, s, n_boot=n_boot, seed=4, cutoff=0.4, min_purity=0.6, min_completeness=0.5
    )
    slow = {k: [] for k in ("auc", "brier", "purity_at_cutoff", "window_low", "crossing_value")}
    for i in range(n_boot):
        idx = np.random.default_rng([4, i]).integers(0, n, n)
        ref = M.summarize(y[idx], s[idx], cutoff=0.4, min_purity=0.6, min_completeness=0.5)
        slow["auc"].append(ref["auc"])
        slow["brier"].append(ref["brier"])
        slow["purity_at_cutoff"].append(ref["purity_at_cutoff"])
        slow["window_low"].append(ref["window"]["low"] if ref["window"] else np.nan)
        slow["crossing_value"].append(ref["crossing"]["value"] if ref["crossing"] else np.nan)
    for key, values in slow.items():
        v = np.asarray(values, float)
        v = v[np.isfinite(v)]
        lo, hi = np.percentile(v, [2.5, 97.5])
        assert got[key]["n_defined"] == len(v), key
        assert got[key]["low"] == pytest.approx(lo, abs=1e-12), key
        assert got[key]["high"] == pytest.approx(hi, abs=1e-12), key


def test_bootstrap_seeded_and_covers_point_estimate(rng):
    """Same seed -> same intervals; intervals bracket the point AUC; other seed differs."""
    y, s = _data(rng, n=300)
    a = M.bootstrap_intervals(y, s, n_boot=50, seed=1)
    b = M.bootstrap_intervals(y, s, n_boot=50, seed=1)
    c = M.bootstrap_intervals(y, s, n_boot=50, seed=2)
    assert a == b
    assert a != c
    auc = M.roc_auc(y, s)
    assert a["auc"]["low"] < auc < a["auc"]["high"]
    assert a["auc"]["n_defined"] == 50
    assert 0.0 <= a["window_fraction"]["value"] <= 1.0


def test_bootstrap_progress_callback(rng):
    """The progress callback sees (done, total) for each replicate."""
    y, s = _data(rng, n=50)
    seen = []
    M.bootstrap_intervals(y, s, n_boot=4, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


# ---------------------------------------------------------------- summaries and slices ------


def test_summarize_one_class_warns_and_defines(rng):
    """A one-class sample warns once and returns NaN/None for undefined numbers."""
    with pytest.warns(RealBogusWarning, match="one-class"):
        out = M.summarize(np.ones(10, int), rng.random(10), cutoff=0.5, n_boot=5)
    assert math.isnan(out["auc"]) and out["n_bogus"] == 0
    assert out["purity_at_cutoff"] == 1.0 or math.isnan(out["purity_at_cutoff"])
    assert out["intervals"]["auc"]["n_defined"] == 0
    with pytest.warns(RealBogusWarning, match="completeness is undefined"):
        out0 = M.summarize(np.zeros(10, int), rng.random(10))
    assert math.isnan(out0["completeness_at_cutoff"]) and out0["window"] is None


def test_slices_match_direct_summaries(rng):
    """Each slice equals summarize() on its rows; one-class slices warn but do not fail."""
    y, s = _data(rng, n=300)
    origin = np.where(np.arange(300) < 20, "injection", np.where(np.arange(300) % 2, "ss", "gaia"))
    y[:20] = 1  # injections are all Real
    with pytest.warns(RealBogusWarning, match="origin=injection"):
        out = M.slice_summaries(y, s, origin, by="origin", cutoff=0.5)
    assert list(out) == ["gaia", "injection", "ss"]
    m = origin == "ss"
    assert out["ss"] == M.summarize(y[m], s[m], cutoff=0.5)
    assert math.isnan(out["injection"]["auc"])
    assert out["injection"]["completeness_at_cutoff"] == np.mean(s[:20] >= 0.5)


def test_slice_keys_for_booleans_and_missing(rng):
    """Flux sign slices are keyed true/false; missing groups are 'missing'."""
    _, s = _data(rng, n=40)
    y = np.array([1, 0, 1, 0, 0, 1, 0, 1] * 5)
    groups = np.array([True, False, None, np.nan] * 10, dtype=object)
    out = M.slice_summaries(y, s, groups, by="isNegative")
    assert set(out) == {"true", "false", "missing"}
    assert out["missing"]["n"] == 20


def test_snr_bin_labels():
    """Bins are [lo, hi); edges land in the upper bin; NaN is 'missing'."""
    lab = M.snr_bin_labels([4.9, 5.0, 5.5, 6.49, 6.5, 100.0, np.nan])
    assert lab.tolist() == [
        "[-inf, 5)",
        "[5, 5.5)",
        "[5.5, 6.5)",
        "[5.5, 6.5)",
        "[6.5, 8)",
        "[50, inf)",
        "missing",
    ]
    with pytest.raises(ConfigError, match="increasing"):
        M.snr_bin_labels([1.0], edges=(5.0, 1.0))


def test_type_table_hand_made():
    """TP/FN per type like DMTN-337 Table 5, counted by hand."""
    y = [1, 1, 1, 1, 0, 1, 0]
    s = [0.9, 0.4, 0.6, 0.1, 0.7, 0.5, 0.2]
    kind = ["ss", "ss", "ss", "variable", "artifact", "transient", "artifact"]
    rows = {r["type"]: r for r in M.type_table(y, s, kind, cutoff=0.5)}
    assert rows["ss"]["true_positives"] == 2 and rows["ss"]["false_negatives"] == 1
    assert rows["ss"]["true_positive_fraction"] == pytest.approx(2 / 3)
    assert rows["variable"]["false_negative_fraction"] == 1.0
    assert rows["transient"]["true_positive_fraction"] == 1.0  # 0.5 >= cutoff passes
    assert math.isnan(rows["artifact"]["true_positive_fraction"])
    assert rows["artifact"]["false_positive_fraction"] == 0.5


def test_no_warnings_on_two_class_data(rng):
    """Ordinary two-class data produce no warnings at all."""
    y, s = _data(rng, n=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        M.summarize(y, s, n_boot=3)


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 8)), min_size=1, max_size=40),
    min_purity=st.sampled_from([0.5, 0.8, 0.95]),
    min_completeness=st.sampled_from([0.5, 0.9]),
)
def test_window_and_crossing_against_brute_force(pairs, min_purity, min_completeness):
    """Any small sample with heavy ties: window = brute-force scan; crossing brackets P = C."""
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs]) / 8.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RealBogusWarning)
        curve = M.purity_completeness(y, s)
    ok = []
    for t in sorted(set(s.tolist())):
        passing = s >= t
        purity = y[passing].mean()
        completeness = y[passing].sum() / y.sum() if y.sum() else np.nan
        ok.append((t, purity >= min_purity and completeness >= min_completeness))
    good = [t for t, fine in ok if fine]
    win = M.requirement_window(curve, min_purity=min_purity, min_completeness=min_completeness)
    if not good:
        assert win is None
    else:
        assert (win.low, win.high, win.n_thresholds) == (min(good), max(good), len(good))
    cross = M.crossing(curve)
    if cross is not None:
        d = curve.purity - curve.completeness
        k = int(np.flatnonzero(d >= 0)[0])
        assert (curve.thresholds[k - 1] if k else curve.thresholds[0]) <= cross.threshold
        assert cross.threshold <= curve.thresholds[k]
        lo, hi = sorted([curve.purity[max(k - 1, 0)], curve.purity[k]])
        assert lo - 1e-12 <= cross.value <= hi + 1e-12
    else:
        assert not (curve.purity - curve.completeness >= 0).any()


def test_snr_bin_slices_against_plain_loop(rng):
    """Purity and completeness at the cutoff per SNR bin equal a plain Python loop."""
    y, s = _data(rng, n=400)
    snr = rng.uniform(3, 30, 400)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RealBogusWarning)
        out = M.slice_summaries(y, s, M.snr_bin_labels(snr), by="snr_bin", cutoff=0.55)
    edges = M.SNR_BINS
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        rows = [(yi, si) for yi, si, xi in zip(y, s, snr, strict=True) if lo <= xi < hi]
        key = f"[{M._fmt(lo)}, {M._fmt(hi)})"
        if not rows:
            assert key not in out
            continue
        tp = sum(1 for yi, si in rows if yi == 1 and si >= 0.55)
        fp = sum(1 for yi, si in rows if yi == 0 and si >= 0.55)
        n_real = sum(1 for yi, _ in rows if yi == 1)
        got = out[key]
        assert got["n"] == len(rows)
        if tp + fp:
            assert got["purity_at_cutoff"] == pytest.approx(tp / (tp + fp))
        if n_real:
            assert got["completeness_at_cutoff"] == pytest.approx(tp / n_real)


@pytest.mark.slow
def test_bootstrap_auc_interval_coverage():
    """Over 200 simulated samples the 95 % AUC interval covers the true AUC about 95 % of the time.

    Binormal scores pushed through a sigmoid: the true AUC is Phi(a / (sigma * sqrt(2))).
    """
    from scipy.stats import norm

    a, sigma, n, trials = 2.0, 1.5, 300, 200
    truth = norm.cdf(a / (sigma * np.sqrt(2)))
    covered = 0
    for k in range(trials):
        rng = np.random.default_rng([99, k])
        y = rng.random(n) < 0.5
        s = 1 / (1 + np.exp(-(a * y + rng.normal(0, sigma, n))))
        iv = M.bootstrap_intervals(y, s, n_boot=200, seed=k)["auc"]
        covered += iv["low"] <= truth <= iv["high"]
    assert 0.89 <= covered / trials <= 0.99, covered / trials


def test_slices_sort_snr_bins_numerically(rng):
    """SNR-bin slices come in numeric order, 'missing' last (not '[10, 15)' before '[5, 5.5)')."""
    y, s = _data(rng, n=400)
    snr = np.r_[rng.uniform(4, 80, 399), np.nan]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RealBogusWarning)
        out = M.slice_summaries(y, s, M.snr_bin_labels(snr), by="snr_bin")
    keys = list(out)
    assert keys[-1] == "missing"
    lows = [float(k[1:].split(",")[0]) for k in keys[:-1]]
    assert (
        lows == sorted(lows)
        and "[10, 15)" in keys
        and keys.index("[5, 5.5)") < keys.index("[10, 15)")
    )
    assert sorted(["b", "[50, inf)", "a", "[5.5, 6.5)"], key=M.slice_sort_key) == [
        "[5.5, 6.5)",
        "[50, inf)",
        "a",
        "b",
    ]


def test_one_class_real_message_agrees_with_the_numbers(rng):
    """All-Real slices: the warning says the crossing/window are defined when they are."""
    s = rng.random(50)
    with pytest.warns(RealBogusWarning) as caught:
        out = M.summarize(np.ones(50, int), s, name="slice origin=injection")
    text = str(caught[0].message)
    assert out["crossing"] is not None and out["window"] is not None
    assert "AUC is undefined" in text and "only reflect completeness" in text
    assert "crossing and window are undefined" not in text
