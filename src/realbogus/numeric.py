"""Small numerical definitions used across layers: the robust-sigma factor, logit/sigmoid, cores.

numpy only; nothing here knows about stamps, models or files.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["MAD_TO_SIGMA", "available_cores", "logit", "mad_sigma", "sigmoid"]

#: sigma of a Gaussian per unit of median absolute deviation: 1 / Phi^-1(3/4).
MAD_TO_SIGMA = 1.4826


def mad_sigma(values: np.ndarray, centre: float | None = None) -> float:
    """Robust standard deviation: `MAD_TO_SIGMA` x median |values - centre|.

    `centre` defaults to the median of `values` (1-d, finite, in their own units).
    """
    if centre is None:
        centre = np.median(values)
    return float(MAD_TO_SIGMA * np.median(np.abs(values - centre)))


def logit(p: np.ndarray | float) -> np.ndarray:
    """log(p / (1 - p)) for 0 < p < 1, float64; callers clip p away from 0 and 1 if they must."""
    p = np.asarray(p, dtype=np.float64)
    return np.log(p / (1 - p))


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """1 / (1 + exp(-x)), float64, overflow-free (x is clipped to [-50, 50], where it is 0 or 1
    to 2e-22)."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -50, 50)))


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else `os.cpu_count()`)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
