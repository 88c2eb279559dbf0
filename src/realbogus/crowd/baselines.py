"""Baseline aggregators with SWAP's inputs and outputs: majority vote and Dawid-Skene.

Both report the same label sets as SWAP. Their trajectories, from which stability is judged, are
the running Real fraction (majority vote) and the running posterior with the final fitted
confusion matrices (Dawid-Skene), in time order.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..numeric import sigmoid
from .core import (
    STABILITY_RULES,
    CrowdLabels,
    PreparedVotes,
    build_labels,
    grouped_cumsum,
    labels_from_trajectory,
    register_aggregator,
)

__all__ = ["majority_vote", "dawid_skene"]


def _check_common(
    stability: str, real_threshold: float, bogus_threshold: float, window: int, min_reference: int
) -> None:
    if stability not in STABILITY_RULES:
        msg = f"stability must be one of {STABILITY_RULES}; got {stability!r}"
        raise ConfigError(msg)
    if not 0 < bogus_threshold < 0.5 < real_threshold < 1:
        msg = f"thresholds must satisfy 0 < bogus_threshold < 0.5 < real_threshold < 1; got {(bogus_threshold, real_threshold)}"
        raise ConfigError(msg)
    if window < 1:
        msg = f"window must be >= 1; got {window}"
        raise ConfigError(msg)
    if min_reference < 0:
        msg = f"min_reference must be >= 0; got {min_reference}"
        raise ConfigError(msg)


def _used(pv: PreparedVotes, min_reference: int) -> tuple[np.ndarray, np.ndarray]:
    n_ref = np.bincount(pv.v, weights=(pv.gold[pv.s] >= 0), minlength=pv.n_volunteers)
    used_vol = n_ref >= min_reference
    return used_vol, used_vol[pv.v]


@register_aggregator("majority")
def majority_vote(
    votes: PreparedVotes,
    *,
    min_reference: int = 0,
    stability: str = "dmtn",
    real_threshold: float = 0.9,
    bogus_threshold: float = 0.1,
    window: int = 3,
) -> CrowdLabels:
    """Majority vote: Pr(Real) = fraction of "Real" votes (0.5 with no votes; ties stay 0.5).

    Parameters
    ----------
    votes : PreparedVotes
        Votes in time order (`core.prepare_votes`); reference labels are not used for labels.
    min_reference : int
        Count only volunteers with at least this many reference classifications (0 = everyone).
    stability, real_threshold, bogus_threshold, window
        Label-set rules, as in `swap.SwapConfig`.

    Returns
    -------
    CrowdLabels
        Volunteer PL, PD are their agreement with the final majority label.
    """
    _check_common(stability, real_threshold, bogus_threshold, window, min_reference)
    pv = votes
    used_vol, used = _used(pv, min_reference)
    keep = np.flatnonzero(used)
    s = pv.s[keep]
    order, sums = grouped_cumsum(s, np.column_stack([pv.y[keep], np.ones(len(keep))]))
    frac = sums[:, 0] / np.maximum(sums[:, 1], 1)
    traj = labels_from_trajectory(
        s[order],
        frac,
        pv.n_subjects,
        prior=0.5,
        real_threshold=real_threshold,
        bogus_threshold=bogus_threshold,
        window=window,
        stability=stability,
    )
    p = traj["p_real"]
    mv = np.where(p > 0.5, 1, np.where(p < 0.5, 0, -1))[pv.s]
    pl, pd_ = _agreement(pv, mv)
    config = {
        "min_reference": min_reference,
        "stability": stability,
        "real_threshold": real_threshold,
        "bogus_threshold": bogus_threshold,
        "window": window,
    }
    return build_labels(
        pv, traj, method="majority", config=config, pl=pl, pd_=pd_, used_volunteer=used_vol
    )


def _agreement(pv: PreparedVotes, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each volunteer's P("Real"|Real), P("Bogus"|Bogus) against per-vote labels (-1 = none); NaN if unseen."""
    n = pv.n_volunteers
    real, bogus = truth == 1, truth == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        pl = np.bincount(pv.v, weights=real & (pv.y == 1), minlength=n) / np.bincount(
            pv.v, weights=real, minlength=n
        )
        pd_ = np.bincount(pv.v, weights=bogus & (pv.y == 0), minlength=n) / np.bincount(
            pv.v, weights=bogus, minlength=n
        )
    return pl, pd_


@register_aggregator("dawid-skene")
def dawid_skene(
    votes: PreparedVotes,
    *,
    clamp_gold: bool = True,
    smoothing: float = 0.01,
    max_iter: int = 100,
    tol: float = 1e-6,
    min_reference: int = 0,
    stability: str = "dmtn",
    real_threshold: float = 0.9,
    bogus_threshold: float = 0.1,
    window: int = 3,
) -> CrowdLabels:
    """Binary Dawid-Skene (1979): EM over a per-volunteer 2x2 confusion matrix and a class prior.

    Parameters
    ----------
    votes : PreparedVotes
        Votes in time order (`core.prepare_votes`) with optional reference labels.
    clamp_gold : bool
        Hold reference subjects at their label during EM (crowd-kit's `true_labels`); their
        reported `p_real` is still computed from the votes.
    smoothing : float
        Pseudo-count added to each confusion cell (>= 0), avoids 0/1 rates.
    max_iter, tol : int, float
        At most `max_iter` EM steps; stop when max |dPr| < tol.
    min_reference, stability, real_threshold, bogus_threshold, window
        As in `majority_vote`.

    Returns
    -------
    CrowdLabels
        Volunteer PL, PD are the fitted confusion rates; the trajectory starts at the fitted
        class prior.
    """
    _check_common(stability, real_threshold, bogus_threshold, window, min_reference)
    if smoothing < 0 or max_iter < 1 or tol <= 0:
        msg = f"need smoothing >= 0, max_iter >= 1, tol > 0; got {smoothing}, {max_iter}, {tol}"
        raise ConfigError(msg)
    pv = votes
    used_vol, used = _used(pv, min_reference)
    keep = np.flatnonzero(used)
    s, v, y = pv.s[keep], pv.v[keep], pv.y[keep].astype(float)
    n_s, n_v = pv.n_subjects, pv.n_volunteers
    n_votes = np.bincount(s, minlength=n_s)
    voted = n_votes > 0
    clamp = (pv.gold >= 0) if clamp_gold else np.zeros(n_s, dtype=bool)
    with np.errstate(invalid="ignore"):
        p = np.where(voted, np.bincount(s, weights=y, minlength=n_s) / np.maximum(n_votes, 1), 0.5)
    p[clamp] = pv.gold[clamp]
    a = smoothing
    for _ in range(max_iter):
        ps = p[s]
        pl = (np.bincount(v, weights=y * ps, minlength=n_v) + a) / (
            np.bincount(v, weights=ps, minlength=n_v) + 2 * a
        )
        pd_ = (np.bincount(v, weights=(1 - y) * (1 - ps), minlength=n_v) + a) / (
            np.bincount(v, weights=1 - ps, minlength=n_v) + 2 * a
        )
        pl, pd_ = _safe(pl), _safe(pd_)
        prior = float(np.clip(p[voted].mean() if voted.any() else 0.5, 1e-6, 1 - 1e-6))
        inc = np.where(y == 1, np.log(pl[v]) - np.log1p(-pd_[v]), np.log1p(-pl[v]) - np.log(pd_[v]))
        logit_prior = np.log(prior) - np.log1p(-prior)
        p_new = sigmoid(logit_prior + np.bincount(s, weights=inc, minlength=n_s))
        p_new[~voted] = 0.5
        p_new[clamp] = pv.gold[clamp]
        delta = np.max(np.abs(p_new - p), initial=0.0)
        p = p_new
        if delta < tol:
            break
    order, sums = grouped_cumsum(s, inc)
    traj = labels_from_trajectory(
        s[order],
        sigmoid(logit_prior + sums),
        n_s,
        prior=prior,
        real_threshold=real_threshold,
        bogus_threshold=bogus_threshold,
        window=window,
        stability=stability,
    )
    config = {
        "clamp_gold": clamp_gold,
        "smoothing": smoothing,
        "max_iter": max_iter,
        "tol": tol,
        "min_reference": min_reference,
        "stability": stability,
        "real_threshold": real_threshold,
        "bogus_threshold": bogus_threshold,
        "window": window,
        "fitted_prior": prior,
    }
    return build_labels(
        pv, traj, method="dawid-skene", config=config, pl=pl, pd_=pd_, used_volunteer=used_vol
    )


def _safe(rate: np.ndarray) -> np.ndarray:
    """Rates for volunteers with no weight (0/0) become 0.5; keep strictly inside (0, 1)."""
    rate = np.where(np.isfinite(rate), rate, 0.5)
    return np.clip(rate, 1e-6, 1 - 1e-6)
