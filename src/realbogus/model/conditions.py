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
with cloudy visits (`realbogus.training.conditions.fit_correction`), never on the data a model is
evaluated on; `realbogus.workflows.conditions.condition_package` writes a package carrying it.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import ConfigError
from ..numeric import logit, sigmoid
from ..stamps import robust_noise

__all__ = [
    "ConditionCorrection",
    "cloud_depth",
    "condition_features",
    "noise_ratio",
    "reliability_logit",
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
            z = reliability_logit(reliability[acts])
            snr = np.log10(template_snr[acts])
            shift = depth[acts] * (
                self.cloud + self.cloud_logit * z + self.cloud_template_snr * snr
            )
            out[acts] = sigmoid(z + shift).astype(np.float32)
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


def reliability_logit(p: np.ndarray) -> np.ndarray:
    """Logits of reliabilities, which may be exactly 0 or 1 in float32: clipped to 1e-6."""
    return logit(np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6))
