"""The report's reader-first numbers: the verdict in words, efficiency curves, per-origin rates.

Called by :func:`realbogus.evaluation.evaluate.evaluate` with arrays it has already validated; everything
returned is JSON-ready (``metrics.json`` keys ``summary``, ``models.<m>.efficiency`` and
``models.<m>.origin_rates``, documented in docs/metrics.md).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .efficiency import efficiency_curve, fifty_percent_point, group_rates

__all__ = [
    "MAG_ZEROPOINT_NJY",
    "SNR_EDGES",
    "efficiency_entry",
    "magnitudes",
    "model_extras",
    "summary_sentences",
]

#: AB zero point of a flux in nJy: m = 31.4 - 2.5 log10(f / nJy).
MAG_ZEROPOINT_NJY = 31.4
#: Bin edges of the completeness-vs-SNR curve.
SNR_EDGES: tuple[float, ...] = (
    3.0, 4.0, 5.0, 5.5, 6.0, 6.5, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0, 30.0, 50.0, 100.0, 1e4,
)  # fmt: skip


def _floats(table: pd.DataFrame, name: str) -> np.ndarray:
    return (
        pd.to_numeric(table[name], errors="coerce")
        .astype("Float64")
        .to_numpy(dtype=np.float64, na_value=np.nan)
    )


def magnitudes(table: pd.DataFrame) -> tuple[np.ndarray | None, str]:
    """Magnitude per detection and its axis label.

    Parameters
    ----------
    table : DataFrame of N rows

    Returns
    -------
    mag : ndarray of shape (N,) or None
        ``truthMag`` (injected magnitude) where the column exists, otherwise the PSF magnitude
        ``31.4 - 2.5 log10(psfFlux / nJy)`` (NaN for psfFlux <= 0); None without either column.
    label : str
    """
    if "truthMag" in table.columns:
        mag = _floats(table, "truthMag")
        if np.isfinite(mag).any():
            return mag, "injected magnitude truthMag (mag)"
    if "psfFlux" in table.columns:
        flux = np.abs(_floats(table, "psfFlux"))  # negative sources: the size of the change
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = np.where(flux > 0, MAG_ZEROPOINT_NJY - 2.5 * np.log10(flux), np.nan)
        return mag, "PSF magnitude of |psfFlux| (AB mag)"
    return None, ""


def efficiency_entry(
    values: np.ndarray, passed: np.ndarray, edges: np.ndarray, *, falling: bool, label: str
) -> dict | None:
    """JSON-ready completeness curve with its 50 % point, or None without finite values.

    Parameters
    ----------
    values : ndarray of shape (n,)
        Quantity of each Real detection (SNR; magnitude, mag).
    passed : ndarray of shape (n,), bool
        reliability >= cutoff.
    edges : ndarray of shape (n_bins + 1,)
    falling : bool
        Completeness falls along the quantity (magnitude) rather than rising (SNR).
    label : str
        Axis label (with unit).

    Returns
    -------
    dict or None
        ``label, edges, centre, n, k, fraction, low, high, level, fifty`` (fifty: the quantity
        at 50 % completeness, None when the curve does not cross 0.5).
    """
    if not np.isfinite(values).any():
        return None
    c = efficiency_curve(values, passed, edges)
    if c.n.sum() == 0:
        return None
    return {
        "label": label,
        "edges": c.edges,
        "centre": c.centre,
        "n": c.n,
        "k": c.k,
        "fraction": c.fraction,
        "low": c.low,
        "high": c.high,
        "level": c.level,
        "fifty": fifty_percent_point(c, falling=falling),
    }


def _mag_edges(mag: np.ndarray) -> np.ndarray | None:
    m = mag[np.isfinite(mag)]
    if len(m) == 0:
        return None
    lo, hi = np.floor(np.percentile(m, 0.5) * 2) / 2, np.ceil(np.percentile(m, 99.5) * 2) / 2
    step = max(0.5, np.ceil((hi - lo) / 24 * 2) / 2)  # at most ~24 bins of >= 0.5 mag
    return np.arange(lo, hi + step, step) if hi > lo else np.array([lo - 0.5, lo + 0.5])


def model_extras(
    table: pd.DataFrame,
    labels: np.ndarray,
    scores: np.ndarray,
    cutoff: float,
) -> dict:
    """Efficiency curves and per-origin rates of one model at its cutoff.

    Parameters
    ----------
    table : DataFrame of N rows
    labels : ndarray of shape (N,)
        1 Real, 0 Bogus, NaN unknown.
    scores : ndarray of shape (N,)
    cutoff : float

    Returns
    -------
    dict
        ``efficiency``: ``{"snr": entry or None, "magnitude": entry or None}`` over the labelled
        Real detections; ``origin_rates``: :func:`realbogus.efficiency.group_rates` rows (empty
        without an origin column).
    """
    real = labels == 1.0
    passed = scores >= cutoff
    eff: dict[str, dict | None] = {"snr": None, "magnitude": None}
    if "snr" in table.columns:
        snr = _floats(table, "snr")
        eff["snr"] = efficiency_entry(
            snr[real], passed[real], np.asarray(SNR_EDGES), falling=False, label="SNR"
        )
    mag, label = magnitudes(table)
    if mag is not None:
        edges = _mag_edges(mag[real])
        if edges is not None:
            eff["magnitude"] = efficiency_entry(
                mag[real], passed[real], edges, falling=True, label=label
            )
    rates: list[dict] = []
    labelled = ~np.isnan(labels)
    if "origin" in table.columns and labelled.any():
        origin = table["origin"].astype("string").fillna("missing").to_numpy(str)
        rates = group_rates(labels[labelled], scores[labelled], origin[labelled], cutoff=cutoff)
    return {"efficiency": eff, "origin_rates": rates}


def _pct(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.1f} %"


def _iv(intervals: dict | None, key: str) -> str:
    if not intervals or intervals.get(key, {}).get("low") is None:
        return ""
    iv = intervals[key]
    return f" [{_pct(iv['low'])}, {_pct(iv['high'])}]"


def summary_sentences(metrics: dict) -> list[dict]:
    """The verdict per model on OSS-REQ-0353, in words (the report's first screen).

    Parameters
    ----------
    metrics : dict
        metrics.json content built so far (``requirement``, ``bootstrap``, ``models`` with
        their ``populations``).

    Returns
    -------
    list of dict
        One per model: ``model``, ``verdict`` ("meets", "does not meet" or "cannot be tested"),
        ``text`` (the sentence, with the population, the window and its bootstrap support, and
        purity and completeness at the model's cutoff with their intervals).
    """
    req = metrics["requirement"]
    need = (
        f"purity >= {100 * req['min_purity']:g} % and completeness >= "
        f"{100 * req['min_completeness']:g} %"
    )
    level = int(round(100 * metrics["bootstrap"]["level"]))
    n_boot = metrics["bootstrap"]["n_boot"]
    out = []
    for model, entry in metrics["models"].items():
        s = (entry.get("populations") or {}).get("requirement")
        if s is None or s["n_real"] == 0 or s["n_bogus"] == 0:
            why = (
                "the table has no snr column"
                if s is None
                else f"the SNR 6 population holds {s['n_real']} Real and {s['n_bogus']} Bogus "
                "detections"
            )
            out.append(
                {
                    "model": model,
                    "verdict": "cannot be tested",
                    "text": f"{model}: OSS-REQ-0353 ({need} at SNR 6) cannot be tested: {why}.",
                }
            )
            continue
        iv = s.get("intervals")
        win = s.get("window")
        pop = f"{s['n_real']} Real and {s['n_bogus']} Bogus detections with 5.5 <= SNR <= 6.5"
        if win is not None:
            verdict = "meets"
            text = (
                f"{model} MEETS OSS-REQ-0353 ({need} at SNR 6) on {pop}: thresholds from "
                f"{win['low']:.3f} to {win['high']:.3f} give both"
            )
            inside = win["low"] <= s["cutoff"] <= win["high"]
            text += (
                f", its cutoff {s['cutoff']:.3f} among them."
                if inside
                else f"; its cutoff {s['cutoff']:.3f} is outside that range."
            )
        else:
            verdict = "does not meet"
            text = (
                f"{model} DOES NOT MEET OSS-REQ-0353 ({need} at SNR 6) on {pop}: no threshold "
                "gives both."
            )
        if iv and n_boot:
            frac = iv["window_fraction"]["value"]
            text += f" A window exists in {_pct(frac)} of {n_boot} bootstrap resamples."
        text += (
            f" At its cutoff {s['cutoff']:.3f}: purity {_pct(s['purity_at_cutoff'])}"
            f"{_iv(iv, 'purity_at_cutoff')}, completeness {_pct(s['completeness_at_cutoff'])}"
            f"{_iv(iv, 'completeness_at_cutoff')}"
            + (f" ({level} % bootstrap intervals)." if iv else ".")
        )
        out.append({"model": model, "verdict": verdict, "text": text})
    return out
