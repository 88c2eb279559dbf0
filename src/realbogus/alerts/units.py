"""Bringing alert stamps into the pixel units a model's card expects.

Rubin cutouts are in nJy, as our models. ZTF cutouts are in DN of the science exposure; the
candidate's `magzpsci` is the AB magnitude of 1 DN, so 1 DN = 10**(0.4 * (31.4 - magzpsci)) nJy.
ZTF's template cutout is the reference image resampled *and gain-matched* to the science image
(measured on the real alerts: science/template flux of the stars in a stamp has median 1.007,
interquartile range 0.96-1.05, uncorrelated with `magzpsci`), and the difference is in science
units too, so one factor serves all three planes.

ZTF's science and template cutouts also keep the sky (~20,000 nJy a pixel, median over the real
alerts), where Rubin's calexps and our simulated images are background-subtracted: for surveys
in `SKY_IN_CUTOUTS` the sky, the median of the valid pixels in a `SKY_RING`-pixel border of
the science and template stamps, is subtracted (the difference has none).
"""

from __future__ import annotations

import numpy as np

from ..stamps import Stamps
from .reader import AlertBatch, AlertFailure

__all__ = ["NJY_AB_ZEROPOINT", "SKY_IN_CUTOUTS", "SKY_RING", "stamp_sky", "unit_factors", "to_units"]

#: AB magnitude of 1 nJy (3631 Jy at magnitude 0).
NJY_AB_ZEROPOINT = 31.4
#: Surveys whose science and template cutouts are not background-subtracted.
SKY_IN_CUTOUTS = frozenset({"ztf"})
#: Width of the stamp border the sky is measured in, pixels.
SKY_RING = 4


def stamp_sky(planes: np.ndarray, ring: int = SKY_RING) -> np.ndarray:
    """Sky of stamps: median of the non-zero pixels in a `ring`-pixel border.

    Parameters
    ----------
    planes : ndarray of shape (n, S, S)
        Stamps whose invalid (NaN, off-image, padded) pixels are 0, as `realbogus.stamps.Stamps`.

    Returns
    -------
    ndarray of shape (n,), float32
        0 where the border has no valid pixel.
    """
    n, size = len(planes), planes.shape[-1]
    border = np.ones((size, size), bool)
    border[ring:-ring, ring:-ring] = False
    pixels = planes[:, border]
    pixels = np.where(pixels != 0, pixels, np.nan)
    sky = np.full(n, np.nan, np.float32)
    has = ~np.isnan(pixels).all(axis=1)
    sky[has] = np.nanmedian(pixels[has], axis=1)
    return np.nan_to_num(sky, nan=0.0)


def unit_factors(table, expected: str) -> tuple[np.ndarray, list[str | None]]:
    """Per alert: the factor that takes its stamps to `expected` units, or NaN with the reason.

    Returns
    -------
    factors : ndarray of shape (n_alerts,), float64
        Multiply the stamps by this; NaN where no conversion is known.
    reasons : list of str or None
        Why an alert cannot be converted (None where it can).
    """
    n = len(table)
    units = table["stampUnits"].astype(str).to_numpy() if n else np.zeros(0, str)
    zp = table["magzpsci"].to_numpy(dtype=float, na_value=np.nan) if "magzpsci" in table else np.full(n, np.nan)
    factors = np.full(n, np.nan)
    reasons: list[str | None] = [None] * n
    for i, unit in enumerate(units):
        if unit == expected:
            factors[i] = 1.0
        elif unit == "DN" and expected == "nJy" and np.isfinite(zp[i]) and 10 < zp[i] < 40:
            factors[i] = 10.0 ** (0.4 * (NJY_AB_ZEROPOINT - zp[i]))
        elif unit == "DN" and expected == "nJy":
            reasons[i] = f"stamps are in DN and the alert has no usable magzpsci ({zp[i]}) to convert them to nJy"
        else:
            reasons[i] = f"stamps are in {unit} and there is no conversion to {expected}"
    return factors, reasons


def to_units(batch: AlertBatch, expected: str, version: str) -> tuple[AlertBatch, list[AlertFailure]]:
    """Convert a batch's stamps to `expected` units; alerts that cannot be converted become failures.

    The returned table gets `unitFactor`, the factor applied to each alert's stamps, and
    `skySubtracted`, the sky taken off its science stamp (in `expected` units; 0 for none).
    """
    if not len(batch):
        return batch, []
    factors, reasons = unit_factors(batch.table, expected)
    keep = np.isfinite(factors)
    failures = [
        AlertFailure(str(file), int(index), f"{reason}; model {version} expects {expected}")
        for file, index, reason in zip(batch.table["file"], batch.table["index"], reasons, strict=True)
        if reason is not None
    ]
    data = batch.stamps.data[keep]
    if not np.all(factors[keep] == 1.0):
        data = data * factors[keep].astype(np.float32)[:, None, None, None]
    table = batch.table[keep].reset_index(drop=True)
    sky = np.zeros((len(table), 2), np.float32)
    with_sky = np.flatnonzero(table["survey"].astype(str).isin(SKY_IN_CUTOUTS).to_numpy())
    if len(with_sky):
        planes = data[with_sky, 1:]
        sky[with_sky] = stamp_sky(planes.reshape(-1, *planes.shape[-2:])).reshape(-1, 2)
        data[with_sky, 1:] = np.where(planes != 0, planes - sky[with_sky][:, :, None, None], 0)
    stamps = Stamps(data, batch.stamps.valid_fraction[keep], batch.stamps.edge[keep])
    table["unitFactor"] = factors[keep]
    table["skySubtracted"] = sky[:, 0]
    return AlertBatch(table, stamps, batch.failures), failures
