"""Fitting the observing-condition correction (`realbogus.model.conditions`) on a labelled simulation."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from scipy.optimize import minimize

from ..errors import ConfigError
from ..evaluation.metrics import roc_auc
from ..model.conditions import (
    ConditionCorrection,
    cloud_depth,
    condition_features,
    reliability_logit,
)
from ..numeric import sigmoid

__all__ = ["fit_correction"]


def fit_correction(
    parts: Iterable[tuple[np.ndarray, np.ndarray]],
    predict: Callable[[np.ndarray], np.ndarray],
    *,
    knee: float = 0.1,
    l2: float = 1e-3,
) -> ConditionCorrection:
    """Fit a, b, s by penalised logistic regression with the network's logit as an offset.

    Parameters
    ----------
    parts : iterable of (labels (N,) in {0, 1}, stamps (N, 3, S, S) float32 in pixel units)
        A labelled simulation with cloudy visits, part by part.
    predict : callable
        The network's reliabilities (N,) for stamps (N, 3, S, S), without any correction.
    knee : float
        Noise ratio below which the correction acts (above it the network is left alone).
    l2 : float
        Ridge penalty on the three coefficients.

    The card's `fitted_on` records the rows, how many the correction touches, and the log-loss
    and ROC AUC on all rows before and after.
    """
    labels, scores, depths, snrs = [], [], [], []
    for y, stamps in parts:
        ratio, snr = condition_features(stamps)
        labels.append(np.asarray(y, dtype=np.float64))
        scores.append(np.asarray(predict(stamps), dtype=np.float32))
        depths.append(cloud_depth(ratio, knee))
        snrs.append(np.log10(snr))
    y, score, depth, log_snr = (
        np.concatenate(a) if a else np.empty(0) for a in (labels, scores, depths, snrs)
    )
    acts = depth > 0
    if not (acts.any() and 0 < y[acts].sum() < acts.sum()):
        msg = (
            f"fitting a condition correction needs Real and Bogus detections with noise ratio below "
            f"the knee {knee:g}; {int(acts.sum())} of {len(y)} rows are below it: simulate cloudy visits"
        )
        raise ConfigError(msg)
    z = reliability_logit(score).astype(np.float64)
    features = np.column_stack([depth, depth * z, depth * log_snr])

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        a = z + features @ w
        p = 1.0 / (1.0 + np.exp(-np.clip(a, -50, 50)))
        return float(np.sum(np.logaddexp(0.0, a) - y * a) + 0.5 * l2 * w @ w), features.T @ (
            p - y
        ) + l2 * w

    result = minimize(loss, np.zeros(3), jac=True, method="L-BFGS-B")
    a, b, s = (float(v) for v in result.x)
    corrected = sigmoid(z + features @ result.x).astype(np.float32)
    fit = {
        "rows": len(y),
        "rows_below_knee": int(acts.sum()),
        "real_below_knee": int(y[acts].sum()),
        "log_loss": [round(_log_loss(y, score), 5), round(_log_loss(y, corrected), 5)],
        "roc_auc": [round(roc_auc(y, score), 5), round(roc_auc(y, corrected), 5)],
        "converged": bool(result.success),
    }
    return ConditionCorrection(
        knee=knee, cloud=a, cloud_logit=b, cloud_template_snr=s, fitted_on=fit
    )


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
