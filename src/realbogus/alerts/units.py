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

ZTF detects negative candidates (`isdiffpos` 'f') on the inverted difference and cuts their
difference stamp from it, so the candidate is positive there (measured on the real alerts: the
centre of every 'f' difference cutout is positive while science - template is negative for 93 %
of them). Our models, like Rubin's DiaSources, take difference = science - template; for surveys
in `DIFFERENCE_INVERTED_WHEN_NEGATIVE` the difference of negative candidates is negated.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..stamps import Stamps
from .reader import AlertBatch, AlertFailure

__all__ = [
    "DIFFERENCE_INVERTED_WHEN_NEGATIVE",
    "NJY_AB_ZEROPOINT",
    "SKY_IN_CUTOUTS",
    "SKY_RING",
    "stamp_sky",
    "unit_factors",
    "to_units",
]

#: AB magnitude of 1 nJy (3631 Jy at magnitude 0).
NJY_AB_ZEROPOINT = 31.4
#: Surveys whose science and template cutouts are not background-subtracted.
SKY_IN_CUTOUTS = frozenset({"ztf"})
#: Width of the stamp border the sky is measured in, pixels.
SKY_RING = 4
#: Surveys whose difference cutout of a negative candidate is template - science.
DIFFERENCE_INVERTED_WHEN_NEGATIVE = frozenset({"ztf"})


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
    n = len(planes)
    pixels = np.concatenate(
        [  # the border by slices: rows above and below, columns left and right
            planes[:, :ring].reshape(n, -1),
            planes[:, -ring:].reshape(n, -1),
            planes[:, ring:-ring, :ring].reshape(n, -1),
            planes[:, ring:-ring, -ring:].reshape(n, -1),
        ],
        axis=1,
    )
    valid = pixels != 0
    counts = valid.sum(axis=1)
    sky = np.zeros(n, np.float32)
    full = counts == pixels.shape[1]
    if full.any():  # the usual case
        sky[full] = np.median(pixels[full], axis=1)
    part = np.flatnonzero(~full & (counts > 0))  # a padded row or column, flagged pixels
    if len(part):  # invalid pixels sorted to the end, the median of the first `count`
        ordered = np.sort(np.where(valid[part], pixels[part], np.inf), axis=1)
        c = counts[part][:, None]
        low, high = (np.take_along_axis(ordered, k, axis=1)[:, 0] for k in ((c - 1) // 2, c // 2))
        sky[part] = (low.astype(np.float64) + high) / 2
    return sky


def unit_factors(table, expected: str | None) -> tuple[np.ndarray, list[str | None]]:
    """Per alert: the factor that takes its stamps to `expected` units (None: keep each alert's
    own units, factor 1), or NaN with the reason.

    Returns
    -------
    factors : ndarray of shape (n_alerts,), float64
        Multiply the stamps by this; NaN where no conversion is known.
    reasons : list of str or None
        Why an alert cannot be converted (None where it can).
    """
    n = len(table)
    units = table["stampUnits"].astype(str).to_numpy() if n else np.zeros(0, str)
    zp = (
        table["magzpsci"].to_numpy(dtype=float, na_value=np.nan)
        if "magzpsci" in table
        else np.full(n, np.nan)
    )
    factors = np.full(n, np.nan)
    reasons: list[str | None] = [None] * n
    for i, unit in enumerate(units):
        if expected is None or unit == expected:
            factors[i] = 1.0
        elif unit == "DN" and expected == "nJy" and np.isfinite(zp[i]) and 10 < zp[i] < 40:
            factors[i] = 10.0 ** (0.4 * (NJY_AB_ZEROPOINT - zp[i]))
        elif unit == "DN" and expected == "nJy":
            reasons[i] = (
                f"stamps are in DN and the alert has no usable magzpsci ({zp[i]}) to convert them to nJy"
            )
        else:
            reasons[i] = f"stamps are in {unit} and there is no conversion to {expected}"
    return factors, reasons


def to_units(
    batch: AlertBatch, expected: str | None, version: str, *, in_place: bool = False
) -> tuple[AlertBatch, list[AlertFailure]]:
    """Convert a batch's stamps to `expected` units; alerts that cannot be converted become failures.

    The survey's conventions are applied whatever the units: the sky of `SKY_IN_CUTOUTS`
    surveys is taken off and their inverted differences are turned to science - template. With
    `expected` None (a model whose card records no pixel units) each alert keeps its own units
    (factor 1), but never its sky or an inverted difference: a model trained on
    background-subtracted science - template stamps would otherwise score them as they came.

    `in_place` converts the batch's own stamp array when every alert is kept (no copy: for a
    batch the caller owns, as a decoding worker's in `score_alerts`); otherwise the batch is
    left as it was.

    The returned table gets `unitFactor`, the factor applied to each alert's stamps,
    `skySubtracted`, the sky taken off its science stamp (in `expected` units; 0 for none), and
    `differenceNegated`, whether the difference was turned to science - template.
    """
    if not len(batch):
        return batch, []
    factors, reasons = unit_factors(batch.table, expected)
    keep = np.isfinite(factors)
    failures = [
        AlertFailure(
            str(file),
            int(index),
            f"{reason}; model {version} expects {expected}",
            int(source_id),
            "unconvertible",
        )
        for file, index, source_id, reason in zip(
            batch.table["file"],
            batch.table["index"],
            batch.table["diaSourceId"],
            reasons,
            strict=True,
        )
        if reason is not None
    ]
    if keep.all():
        data = batch.stamps.data if in_place else batch.stamps.data.copy()
    else:
        data = batch.stamps.data[keep]
    if not np.all(factors[keep] == 1.0):
        data *= factors[keep].astype(np.float32)[:, None, None, None]
    table = batch.table[keep].reset_index(drop=True)
    sky = np.zeros((len(table), 2), np.float32)
    with_sky = table["survey"].astype(str).isin(SKY_IN_CUTOUTS).to_numpy()
    if with_sky.any():
        rows = slice(None) if with_sky.all() else np.flatnonzero(with_sky)
        planes = data[rows, 1:]  # a view when every alert has sky (a ZTF batch)
        sky[rows] = np.stack([stamp_sky(planes[:, 0]), stamp_sky(planes[:, 1])], axis=1)
        np.subtract(planes, sky[rows][:, :, None, None], out=planes, where=planes != 0)
        data[rows, 1:] = planes
    negated = table["survey"].astype(str).isin(DIFFERENCE_INVERTED_WHEN_NEGATIVE).to_numpy()
    if negated.any():
        if "isNegative" not in table:
            msg = "alert table has no isNegative column, needed to orient ZTF difference stamps"
            raise InputError(msg)
        negated = negated & table["isNegative"].fillna(False).to_numpy(bool)
        data[negated, 0] *= -1
    stamps = Stamps(data, batch.stamps.valid_fraction[keep], batch.stamps.edge[keep])
    # (per-channel validity does not survive alert decoding: alerts carry valid_fraction only)
    table["unitFactor"] = factors[keep]
    table["skySubtracted"] = sky[:, 0]
    table["differenceNegated"] = negated
    return AlertBatch(table, stamps, batch.failures), failures
