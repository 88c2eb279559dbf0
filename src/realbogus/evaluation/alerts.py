"""Our scores on real alert packets beside the survey's own: the numbers of the report's alerts section.

:class:`AlertRun` holds real alert packets scored by several models
(`realbogus.workflows.alerts.score_alert_folder` makes it); :func:`compare_with_survey` turns one model's score table into JSON-ready numbers:
the survey's score (Rubin ``reliability``, else ZTF ``drb``, else ``rb``), our ROC AUC against the
survey's label at its own cut (0.5), the Spearman rank correlation, the four agreement counts at
the two cuts, recall of known asteroids (Rubin ``ssObjectId`` > 0; ZTF ``0 <= ssdistnr <= 2``
arcsec) at our cutoff and at the survey's, score quantiles per stamp condition, and the rows
where the two disagree most.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .efficiency import binomial_interval
from .metrics import roc_auc

__all__ = [
    "SURVEY_CUT",
    "SURVEY_SCORES",
    "AlertRun",
    "asteroid_mask",
    "compare_with_survey",
    "stamp_conditions",
    "survey_score_column",
]

#: Score-table columns holding the survey's own score, in order of preference.
SURVEY_SCORES = ("surveyReliability", "drb", "rb")
#: The survey's own cut on its score (Rubin reliability and ZTF drb/rb: 0.5).
SURVEY_CUT = 0.5
#: A ZTF alert is a known asteroid when ssdistnr is within this many arcsec.
ASTEROID_ARCSEC = 2.0


@dataclass(frozen=True)
class AlertRun:
    """Alert packets scored by several models.

    Attributes
    ----------
    source : str
        The folder (or file) read.
    tables : dict model -> DataFrame of N rows
        Each model's score table (`realbogus.alerts.score`), the same alerts in the same order.
    cutoffs : dict model -> float
        Each model's card cutoff.
    stamps : ndarray of shape (N, 3, S, S), float32
        The decoded stamps of those alerts (survey units), for the galleries.
    n_failed : int
        Packets that could not be decoded or scored.
    """

    source: str
    tables: dict[str, pd.DataFrame]
    cutoffs: dict[str, float]
    stamps: np.ndarray
    n_failed: int


def _floats(table: pd.DataFrame, name: str) -> np.ndarray:
    if name not in table.columns:
        return np.full(len(table), np.nan)
    return (
        pd.to_numeric(table[name], errors="coerce")
        .astype("Float64")
        .to_numpy(dtype=np.float64, na_value=np.nan)
    )


def survey_score_column(table: pd.DataFrame) -> str | None:
    """The first of :data:`SURVEY_SCORES` with a finite value, or None."""
    for name in SURVEY_SCORES:
        if np.isfinite(_floats(table, name)).any():
            return name
    return None


def asteroid_mask(table: pd.DataFrame) -> np.ndarray:
    """Known asteroids: Rubin ``ssObjectId`` > 0, or ZTF ``0 <= ssdistnr <= 2`` arcsec.

    Returns
    -------
    ndarray of shape (N,), bool
    """
    mask = np.zeros(len(table), dtype=bool)
    if "ssObjectId" in table.columns:
        ss = pd.to_numeric(table["ssObjectId"], errors="coerce").fillna(0).to_numpy()
        mask |= ss > 0
    d = _floats(table, "ssdistnr")
    mask |= (d >= 0) & (d <= ASTEROID_ARCSEC)
    return mask


def stamp_conditions(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Alerts by stamp condition (masks of shape (N,), disjoint, covering every alert).

    ``edge``: the cutout runs off the image (the ``edge`` flag); ``NaN or masked pixels``: some
    pixels are NaN, blank or masked (``valid_fraction`` < 1; the reader zeroes them, so NaN and
    masked pixels are one condition); ``whole``: every pixel valid.
    """
    edge = table["edge"].astype("boolean").fillna(False).to_numpy(bool)
    valid = _floats(table, "valid_fraction")
    partial = ~edge & (valid < 1.0)
    return {"edge": edge, "NaN or masked pixels": partial, "whole": ~edge & ~partial}


def _recall(mask: np.ndarray, passes: np.ndarray) -> dict:
    n, k = int(mask.sum()), int((mask & passes).sum())
    lo, hi = binomial_interval([k], [n])
    return {
        "n": n,
        "passing": k,
        "recall": k / n if n else math.nan,
        "low": float(lo[0]),
        "high": float(hi[0]),
    }


def compare_with_survey(table: pd.DataFrame, cutoff: float, *, n_disagreements: int = 8) -> dict:
    """Our score beside the survey's on one model's score table (JSON-ready).

    Parameters
    ----------
    table : DataFrame of N rows
        A score table of `realbogus.alerts.score` (``reliability``, ``edge``,
        ``valid_fraction``, and the survey's columns).
    cutoff : float
        Our model's cutoff.
    n_disagreements : int
        Rows listed per disagreement direction.

    Returns
    -------
    dict
        ``n``, ``survey``, ``survey_score`` (column or None), ``survey_cut``, ``n_with_survey_score``,
        ``auc`` (ours against survey score >= cut), ``spearman``, ``agreement`` ({``both_pass``,
        ``ours_only``, ``theirs_only``, ``neither``}), ``asteroids`` ({``ours``, ``theirs``}: n,
        passing, recall, low, high), ``conditions`` ({condition: n, ours_median, ours_q10,
        ours_q90, ours_passing, theirs_passing}), ``disagreements`` ({``ours_high_theirs_low``,
        ``ours_low_theirs_high``}: row indices, largest difference first).
    """
    ours = _floats(table, "reliability")
    col = survey_score_column(table)
    theirs = _floats(table, col) if col else np.full(len(table), np.nan)
    has = np.isfinite(theirs)
    passes = ours >= cutoff
    theirs_pass = has & (theirs >= SURVEY_CUT)
    survey = (
        str(table["survey"].dropna().iloc[0])
        if "survey" in table and table["survey"].notna().any()
        else None
    )
    label = theirs_pass[has].astype(int)
    two_class = 0 < label.sum() < has.sum()
    auc = roc_auc(label, ours[has]) if two_class else math.nan
    rho = float(spearmanr(ours[has], theirs[has]).statistic) if has.sum() > 2 else math.nan
    asteroid = asteroid_mask(table)
    conditions = {}
    for name, mask in stamp_conditions(table).items():
        q = np.percentile(ours[mask], [10, 50, 90]) if mask.any() else [math.nan] * 3
        conditions[name] = {
            "n": int(mask.sum()),
            "ours_q10": float(q[0]),
            "ours_median": float(q[1]),
            "ours_q90": float(q[2]),
            "ours_passing": float(passes[mask].mean()) if mask.any() else math.nan,
            "theirs_passing": float(theirs_pass[mask & has].mean())
            if (mask & has).any()
            else math.nan,
        }
    diff = np.where(has, ours - theirs, 0.0)
    high = np.flatnonzero(has & passes & ~theirs_pass)
    low = np.flatnonzero(has & ~passes & theirs_pass)
    return {
        "n": len(table),
        "survey": survey,
        "survey_score": col,
        "survey_cut": SURVEY_CUT,
        "n_with_survey_score": int(has.sum()),
        "cutoff": float(cutoff),
        "auc": auc,
        "spearman": rho,
        "agreement": {
            "both_pass": int((has & passes & theirs_pass).sum()),
            "ours_only": int(len(high)),
            "theirs_only": int(len(low)),
            "neither": int((has & ~passes & ~theirs_pass).sum()),
        },
        "asteroids": {
            "ours": _recall(asteroid, passes),
            "theirs": _recall(asteroid & has, theirs_pass),
        },
        "conditions": conditions,
        "disagreements": {
            "ours_high_theirs_low": high[np.argsort(-diff[high], kind="stable")][
                :n_disagreements
            ].tolist(),
            "ours_low_theirs_high": low[np.argsort(diff[low], kind="stable")][
                :n_disagreements
            ].tolist(),
        },
    }
