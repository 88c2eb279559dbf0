"""Observing-condition correction: what one stamp cannot tell the network.

Under thick, patchy cloud one zero point mis-scales every star of an exposure, so the difference
image holds a PSF-shaped residual at each star. In one stamp such a residual is a variable star;
what tells them apart is the exposure's condition, and the stamps carry it: a science exposure
far shallower than its template makes the template's noise a small fraction of the difference's
(`noise_ratio` r). The correction moves the network's logit z by

    z' = z + c (a + b z + s log10 t),   c = max(0, log10(knee / r))

with t the template's signal-to-noise in the central 5x5 pixels (a star under the candidate).
It is zero wherever r >= knee: there the scores are the network's, bit for bit, and so is the
card's cutoff. The three coefficients are fitted by logistic regression on a labelled simulation
with cloudy visits (`fit_correction`), never on the data a model is evaluated on.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy.optimize import minimize

from .errors import ConfigError
from .stamps import robust_noise

__all__ = [
    "ConditionCorrection",
    "cloud_depth",
    "condition_features",
    "condition_package",
    "fit_correction",
    "noise_ratio",
]

#: Half side of the central box whose template flux says "on a star".
_CENTRE = 2
_MIN_RATIO = 1e-3  # the deepest correction: c <= log10(knee / 1e-3)
_MIN_PIXELS = 16  # valid pixels a plane's noise needs to be measured at all
_BLOCK = 4096  # stamps per noise computation


class ConditionCorrection(BaseModel):
    """The card's `conditions`: a fitted correction of the network's logit (module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    knee: float = Field(gt=0.0, le=1.0, description="noise ratio below which the correction acts")
    cloud: float = Field(description="a: shift of the logit per decade below the knee")
    cloud_logit: float = Field(
        description="b: change of the logit's slope per decade below the knee"
    )
    cloud_template_snr: float = Field(
        description="s: per decade below the knee and decade of template S/N"
    )
    fitted_on: dict = Field(
        default_factory=dict, description="the simulation it was fitted on, and the fit"
    )

    @field_validator("cloud", "cloud_logit", "cloud_template_snr")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            msg = f"condition coefficients must be finite; got {value}"
            raise ValueError(msg)
        return value

    def apply(self, reliability: np.ndarray, stamps: np.ndarray) -> np.ndarray:
        """Corrected reliabilities (N,) float32 for the network's `reliability` (N,) on `stamps`
        (N, 3, S, S) in pixel units; unchanged where the noise ratio is at or above the knee."""
        ratio, template_snr = condition_features(stamps)
        return self.apply_features(reliability, ratio, template_snr)

    def apply_features(
        self, reliability: np.ndarray, ratio: np.ndarray, template_snr: np.ndarray
    ) -> np.ndarray:
        """`apply` given the features of `condition_features`, all of shape (N,)."""
        reliability = np.asarray(reliability, dtype=np.float32)
        depth = cloud_depth(ratio, self.knee)
        acts = depth > 0
        out = reliability.copy()
        if acts.any():
            z = _logit(reliability[acts])
            snr = np.log10(template_snr[acts])
            shift = depth[acts] * (
                self.cloud + self.cloud_logit * z + self.cloud_template_snr * snr
            )
            out[acts] = _sigmoid(z + shift)
        return out


def condition_features(stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The condition read from stamps (N, 3, S, S) in [difference, science, template] order.

    Returns
    -------
    ratio : ndarray (N,), float64
        Template noise over difference noise (`stamps.robust_noise`, as the `asinh-noise`
        preprocessing measures the difference's). NaN where either plane has too few valid pixels.
    template_snr : ndarray (N,), float64, >= 1
        Sum of the central 5x5 template pixels over its noise (5 x the template's pixel noise),
        floored at 1 (no source, or below the noise).
    """
    stamps = np.asarray(stamps)
    if stamps.ndim != 4 or stamps.shape[1] != 3:
        msg = f"stamps must have shape (N, 3, S, S); got {stamps.shape}"
        raise ConfigError(msg)
    difference, template = np.empty(len(stamps), np.float32), np.empty(len(stamps), np.float32)
    n_difference, n_template = np.empty(len(stamps), np.int64), np.empty(len(stamps), np.int64)
    for start in range(0, len(stamps), _BLOCK):  # bounds the temporaries
        rows = slice(start, start + _BLOCK)
        difference[rows], n_difference[rows] = robust_noise(stamps[rows, 0])
        template[rows], n_template[rows] = robust_noise(stamps[rows, 2])
    measurable = (
        (n_difference >= _MIN_PIXELS)
        & (n_template >= _MIN_PIXELS)
        & (difference > 0)
        & (template > 0)
    )
    c = stamps.shape[-1] // 2
    centre = stamps[:, 2, c - _CENTRE : c + _CENTRE + 1, c - _CENTRE : c + _CENTRE + 1].sum(
        axis=(1, 2), dtype=np.float64
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(measurable, template / difference, np.nan)
        snr = np.where(measurable, centre / ((2 * _CENTRE + 1) * template.astype(np.float64)), 1.0)
    return ratio.astype(np.float64), np.where(np.isfinite(snr), np.maximum(snr, 1.0), 1.0)


def noise_ratio(stamps: np.ndarray) -> np.ndarray:
    """Template noise over difference noise of stamps (N, 3, S, S): (N,), NaN where unmeasurable."""
    return condition_features(stamps)[0]


def cloud_depth(ratio: np.ndarray, knee: float) -> np.ndarray:
    """c = max(0, log10(knee / ratio)) (N,); 0 where the ratio is NaN (nothing to go on)."""
    ratio = np.asarray(ratio, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        depth = np.log10(knee / np.maximum(ratio, _MIN_RATIO))
    return np.where(np.isfinite(depth), np.maximum(depth, 0.0), 0.0)


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
    from .metrics import roc_auc

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
    z = _logit(score).astype(np.float64)
    features = np.column_stack([depth, depth * z, depth * log_snr])

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        a = z + features @ w
        p = 1.0 / (1.0 + np.exp(-np.clip(a, -50, 50)))
        return float(np.sum(np.logaddexp(0.0, a) - y * a) + 0.5 * l2 * w @ w), features.T @ (
            p - y
        ) + l2 * w

    result = minimize(loss, np.zeros(3), jac=True, method="L-BFGS-B")
    a, b, s = (float(v) for v in result.x)
    corrected = _sigmoid(z + features @ result.x)
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


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(a, -50, 50)))).astype(np.float32)


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def condition_package(
    model: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    version: str,
    knee: float = 0.1,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a new package: `model`'s network and cutoff with a correction fitted on dataset `data`.

    `data` is a labelled simulation with cloudy visits (label 1 Real, 0 Bogus; other rows are
    skipped). The new card's `parent` is `model`'s version. A model that already has a correction
    is refused: fit on its parent, whose scores the correction is for.
    """
    from .dataset import open_dataset
    from .package import ModelCard, load_package, save_package
    from .scoring import Scorer

    package = load_package(model)
    if package.card.conditions is not None:
        msg = f"{package.version} already has a condition correction; fit one on its parent {package.card.parent}"
        raise ConfigError(msg)
    dataset = open_dataset(data)
    if dataset.stamp_size != package.card.stamp_size:
        msg = f"{data}: stamps are {dataset.stamp_size} px but {package.version} takes {package.card.stamp_size} px"
        raise ConfigError(msg)
    scorer = Scorer(package)
    total, done = len(dataset), 0

    def labelled_parts() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        nonlocal done
        for table, stamps in dataset.iter_parts():
            if "label" not in table:
                msg = f"{data} has no label column: a correction is fitted on labelled (simulated) detections"
                raise ConfigError(msg)
            labels = table["label"].to_numpy(dtype=float, na_value=np.nan)
            keep = np.isin(labels, (0.0, 1.0))
            yield labels[keep], stamps.data[keep]
            done += len(table)
            if progress is not None:
                progress(done, total)

    correction = fit_correction(labelled_parts(), scorer.predict, knee=knee)
    fitted_on = {
        "dataset": str(data),
        "content_hash": dataset.manifest.get("content_hash"),
        **correction.fitted_on,
    }
    card = ModelCard(
        **{
            **package.card.model_dump(exclude={"created"}),
            "version": version,
            "parent": package.version,
            "conditions": {**correction.model_dump(), "fitted_on": fitted_on},
            # The network's own metrics stay on the parent's card; this card gets its own evaluations.
            "metrics": {
                "cutoff_choice": f"{package.version}'s: scores at noise ratio >= {knee:g} are its scores"
            },
            "description": (
                f"{package.version}'s network and cutoff, its scores corrected for observing conditions "
                f"(noise ratio below {knee:g}) as fitted on {Path(data).name}. {package.card.description}"
            ).strip(),
        }
    )
    return save_package(out, package.model, card, overwrite=overwrite)
