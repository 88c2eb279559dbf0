"""SWAP (Marshall et al. 2016) with the DMTN-337 modifications.

Each volunteer k has PL = P("Real" | Real) and PD = P("Bogus" | Bogus), learned from reference
subjects only. A subject starts at Pr(Real) = `prior`; each vote adds to its log-odds
log[PL / (1 - PD)] ("Real") or log[(1 - PL) / PD] ("Bogus").

DMTN-337 defaults: PL, PD are raw fractions (0.5 for a class the volunteer has not met) clipped
to [0.05, 0.95]; only volunteers with at least one reference classification count; prior 0.5;
online in time order, the subject updated with the volunteer's current PL, PD *before* the
volunteer learns from that classification.

Supervised SWAP's volunteer model depends only on the volunteer's own reference answers, never
on subject posteriors, so the online pass needs no Python loop: each vote's PL, PD are
exclusive running counts per volunteer, and each subject's trajectory is a running sum of
log-likelihood ratios; both are grouped cumulative sums (O(n log n) numpy).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ConfigError, InputError
from ..numeric import logit, sigmoid
from .core import (
    STABILITY_RULES,
    CrowdLabels,
    PreparedVotes,
    build_labels,
    grouped_cumsum,
    labels_from_trajectory,
    register_aggregator,
    scatter,
)

__all__ = ["SwapConfig", "swap", "swap_rates"]

MODES = ("online", "offline")


@dataclass(frozen=True)
class SwapConfig:
    """Options of SWAP (defaults = DMTN-337).

    Attributes
    ----------
    prior : float
        Pr(Real) of a subject before any vote, in (0, 1). DMTN-337 analysis code: 0.5.
    pseudo_count : float
        gamma >= 0: PX = (correct + gamma) / (seen + 2 gamma). 0 = raw fractions (DMTN-337);
        1 = Laplace (Laraia, kSWAP); 2 = Space Warps code.
    clip : tuple of float
        (low, high) bounds for PL and PD; DMTN-337: (0.05, 0.95).
    min_reference : int
        Volunteers with fewer reference classifications (in the whole export) are ignored.
    mode : {"online", "offline"}
        "online": PL, PD from the reference answers given before each vote. "offline": EM over
        all votes (Marshall et al. 2016 sec. 4.4), reference subjects clamped to their labels,
        started from the final reference fractions, Laplace smoothing max(pseudo_count, 1).
    stability : {"dmtn", "analysis-code"}
        Stable-set rule (`core.STABILITY_RULES`).
    real_threshold, bogus_threshold : float
        Pr(Real) thresholds of the label sets (0.9, 0.1).
    window : int
        Number of last classifications over which a stable label must hold (3).
    min_used : int
        Subjects with fewer used classifications get no label set (0 = off; the DMTN-337
        analysis code keeps subjects with > 4, i.e. 5).
    max_iter, tol : int, float
        Offline EM limits: at most `max_iter` steps, stop when max |dPr| < tol.
    """

    prior: float = 0.5
    pseudo_count: float = 0.0
    clip: tuple[float, float] = (0.05, 0.95)
    min_reference: int = 1
    mode: str = "online"
    stability: str = "dmtn"
    real_threshold: float = 0.9
    bogus_threshold: float = 0.1
    window: int = 3
    min_used: int = 0
    max_iter: int = 100
    tol: float = 1e-6

    def __post_init__(self) -> None:
        checks = [
            (0 < self.prior < 1, "prior", "in (0, 1)"),
            (self.pseudo_count >= 0, "pseudo_count", ">= 0"),
            (
                len(self.clip) == 2 and 0 < self.clip[0] <= 0.5 <= self.clip[1] < 1,
                "clip",
                "a pair 0 < low <= 0.5 <= high < 1",
            ),
            (self.min_reference >= 0, "min_reference", ">= 0"),
            (self.mode in MODES, "mode", f"one of {MODES}"),
            (self.stability in STABILITY_RULES, "stability", f"one of {STABILITY_RULES}"),
            (
                0 < self.bogus_threshold < 0.5 < self.real_threshold < 1,
                "thresholds",
                "0 < bogus_threshold < 0.5 < real_threshold < 1",
            ),
            (self.window >= 1, "window", ">= 1"),
            (self.min_used >= 0, "min_used", ">= 0"),
            (self.max_iter >= 1, "max_iter", ">= 1"),
            (self.tol > 0, "tol", "> 0"),
        ]
        for ok, name, allowed in checks:
            if not ok:
                value = (
                    (self.bogus_threshold, self.real_threshold)
                    if name == "thresholds"
                    else getattr(self, name)
                )
                msg = f"SWAP option {name} must be {allowed}; got {value!r}"
                raise ConfigError(msg)
        object.__setattr__(self, "clip", (float(self.clip[0]), float(self.clip[1])))


def swap_rates(
    correct: np.ndarray, seen: np.ndarray, *, pseudo_count: float, clip: tuple[float, float]
) -> np.ndarray:
    """PL or PD from counts: (correct + gamma) / (seen + 2 gamma), 0.5 when undefined, clipped."""
    correct = np.asarray(correct, dtype=float)
    seen = np.asarray(seen, dtype=float)
    den = seen + 2 * pseudo_count
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(den > 0, (correct + pseudo_count) / np.where(den > 0, den, 1.0), 0.5)
    return np.clip(rate, clip[0], clip[1])


def _log_lr(y: np.ndarray, pl: np.ndarray, pd_: np.ndarray) -> np.ndarray:
    """Per-vote log-likelihood ratio: log[PL/(1-PD)] for "Real", log[(1-PL)/PD] for "Bogus"."""
    return np.where(y == 1, np.log(pl) - np.log1p(-pd_), np.log1p(-pl) - np.log(pd_))


@register_aggregator("swap")
def swap(
    votes: PreparedVotes, *, config: SwapConfig | None = None, **options: object
) -> CrowdLabels:
    """Aggregate votes with SWAP (DMTN-337 variant by default).

    Parameters
    ----------
    votes : PreparedVotes
        Votes in time order with reference labels (`core.prepare_votes`).
    config : SwapConfig, optional
        All options; or pass them as keywords (`SwapConfig` fields), not both.

    Returns
    -------
    CrowdLabels
        Per-subject Pr(Real) and label sets; per-volunteer final PL, PD and skill (bits).
    """
    if config is None:
        try:
            config = SwapConfig(**options)  # type: ignore[arg-type]
        except TypeError as exc:
            msg = f"unknown SWAP option: {exc}; valid options are {list(SwapConfig.__dataclass_fields__)}"
            raise ConfigError(msg) from None
    elif options:
        msg = "pass SWAP options either as config= or as keywords, not both"
        raise ConfigError(msg)
    pv = votes
    if len(pv.y) and not (pv.gold >= 0).any():
        msg = (
            f"no reference subjects among the {pv.n_subjects} voted subjects: SWAP learns each "
            "volunteer's skill from reference (gold) subjects and would leave every subject at its "
            "prior; give a reference CSV with --reference (from Python: gold= / reference=), or "
            "aggregate with --method majority or --method dawid-skene"
        )
        raise InputError(msg)
    gold_vote = pv.gold[pv.s]
    ref_real = gold_vote == 1
    ref_bogus = gold_vote == 0
    said_real = pv.y == 1
    counts = np.column_stack(
        [ref_real, ref_real & said_real, ref_bogus, ref_bogus & ~said_real]
    ).astype(float)

    n_ref = np.bincount(pv.v, weights=(gold_vote >= 0), minlength=pv.n_volunteers)
    used_vol = n_ref >= max(config.min_reference, 0)
    used = used_vol[pv.v]
    totals = np.stack(
        [np.bincount(pv.v, weights=counts[:, j], minlength=pv.n_volunteers) for j in range(4)], 1
    )
    final_pl = swap_rates(
        totals[:, 1], totals[:, 0], pseudo_count=config.pseudo_count, clip=config.clip
    )
    final_pd = swap_rates(
        totals[:, 3], totals[:, 2], pseudo_count=config.pseudo_count, clip=config.clip
    )

    if config.mode == "online":
        # reference answers given before each vote (exclusive: the subject is updated first)
        order, sums = grouped_cumsum(pv.v, counts, exclusive=True)
        before = scatter(order, sums)
        pl = swap_rates(
            before[:, 1], before[:, 0], pseudo_count=config.pseudo_count, clip=config.clip
        )
        pd_ = swap_rates(
            before[:, 3], before[:, 2], pseudo_count=config.pseudo_count, clip=config.clip
        )
        vol_pl, vol_pd = final_pl, final_pd
    else:
        vol_pl, vol_pd = _offline_em(pv, used, final_pl, final_pd, config)
        pl, pd_ = vol_pl[pv.v], vol_pd[pv.v]

    inc = _log_lr(pv.y, pl, pd_)
    keep = np.flatnonzero(used)
    order_s, sums = grouped_cumsum(pv.s[keep], inc[keep])
    traj = labels_from_trajectory(
        pv.s[keep][order_s],
        sigmoid(logit(config.prior) + sums),
        pv.n_subjects,
        prior=config.prior,
        real_threshold=config.real_threshold,
        bogus_threshold=config.bogus_threshold,
        window=config.window,
        stability=config.stability,
        min_used=config.min_used,
    )
    cfg = asdict(config)
    cfg["clip"] = list(config.clip)
    return build_labels(
        pv, traj, method="swap", config=cfg, pl=vol_pl, pd_=vol_pd, used_volunteer=used_vol
    )


def _offline_em(
    pv: PreparedVotes, used: np.ndarray, pl: np.ndarray, pd_: np.ndarray, config: SwapConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Offline SWAP: EM over all used votes with the prior fixed and reference subjects clamped."""
    keep = np.flatnonzero(used)
    s, v, y = pv.s[keep], pv.v[keep], pv.y[keep].astype(float)
    gamma = max(config.pseudo_count, 1.0)
    clamp = pv.gold >= 0
    prior_logit = logit(config.prior)
    p_old = None
    for _ in range(config.max_iter):
        inc = _log_lr(y, pl[v], pd_[v])
        p = sigmoid(prior_logit + np.bincount(s, weights=inc, minlength=pv.n_subjects))
        p[clamp] = pv.gold[clamp]
        ps = p[s]
        sum_p = np.bincount(v, weights=ps, minlength=pv.n_volunteers)
        sum_q = np.bincount(v, weights=1 - ps, minlength=pv.n_volunteers)
        real_ok = np.bincount(v, weights=y * ps, minlength=pv.n_volunteers)
        bogus_ok = np.bincount(v, weights=(1 - y) * (1 - ps), minlength=pv.n_volunteers)
        pl = np.clip((real_ok + gamma) / (sum_p + 2 * gamma), *config.clip)
        pd_ = np.clip((bogus_ok + gamma) / (sum_q + 2 * gamma), *config.clip)
        if p_old is not None and np.max(np.abs(p - p_old), initial=0.0) < config.tol:
            break
        p_old = p
    return pl, pd_
