"""Rubin alert records: the diaSource row and the three cutouts, located by their WCS.

Rubin cutouts (schema v7+) are plain FITS files: PRIMARY = image in nJy (`BUNIT`) with a celestial
WCS whose reference point is the source, UNCERT = variance, PSFIMAGE = PSF. Their size varies
(30x30 to ~100x100); near a detector edge the missing pixels are NaN. The source pixel is found
from the WCS (CRPIX/CRVAL/PC or CD, gnomonic) and the diaSource (ra, dec); the header's CUTMINX/
CUTMINY are not used because they disagree with the WCS by one pixel on the real alerts.
Schemas before v7 carry no science cutout: such alerts are rejected with that reason.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ._fits import decode_fits

__all__ = ["RUBIN_CUTOUTS", "RUBIN_FIELDS", "rubin_row", "rubin_cutouts", "wcs_pixel"]

#: Cutout fields in `realbogus.stamps.CHANNELS` order (difference, science, template).
RUBIN_CUTOUTS = ("cutoutDifference", "cutoutScience", "cutoutTemplate")

#: diaSource fields copied to the table (DiaSource names); older schemas' names map onto them.
RUBIN_FIELDS = (
    "diaSourceId", "diaObjectId", "ssObjectId", "visit", "detector", "midpointMjdTai", "band",
    "x", "y", "ra", "dec", "snr", "psfFlux", "psfFluxErr", "apFlux", "apFluxErr", "scienceFlux",
    "scienceFluxErr", "templateFlux", "templateFluxErr", "isNegative", "isDipole", "trailLength",
    "reliability", "reliabilityVersion",
)  # fmt: skip
_ALIASES = {
    "dec": "decl",
    "psfFlux": "psFlux",
    "psfFluxErr": "psFluxErr",
    "midpointMjdTai": "midPointTai",
    "band": "filterName",
}
_DEFAULT_UNIT = "nJy"
_HEADER_KEYS = frozenset(
    {
        "BUNIT",
        "CRPIX1",
        "CRPIX2",
        "CRVAL1",
        "CRVAL2",
        "CDELT1",
        "CDELT2",
        "PC1_1",
        "PC1_2",
        "PC2_1",
        "PC2_2",
        "CD1_1",
        "CD1_2",
        "CD2_1",
        "CD2_2",
    }
)


def rubin_row(record: dict, *, where: str) -> dict:
    """The table row of one Rubin alert: `RUBIN_FIELDS` (None where the schema lacks one)."""
    source = record.get("diaSource")
    if not isinstance(source, dict):
        msg = f"{where}: Rubin alert has no diaSource record"
        raise InputError(msg)
    row = {}
    for name in RUBIN_FIELDS:
        value = source.get(name)
        if value is None and name in _ALIASES:
            value = source.get(_ALIASES[name])
        row[name] = value
    if row["diaSourceId"] is None:
        msg = f"{where}: diaSource has no diaSourceId"
        raise InputError(msg)
    return row


def wcs_pixel(header: dict, ra: float | None, dec: float | None) -> tuple[float, float] | None:
    """0-based (x, y) of sky position (ra, dec) in degrees through the header's gnomonic WCS.

    Returns None when the header has no usable WCS. Without (ra, dec) the reference pixel
    (CRPIX - 1) is returned: Rubin centres each cutout's WCS on its source.
    """
    try:
        crpix1, crpix2 = float(header["CRPIX1"]), float(header["CRPIX2"])
    except (KeyError, TypeError, ValueError):
        return None
    if ra is None or dec is None or not (math.isfinite(ra) and math.isfinite(dec)):
        return crpix1 - 1.0, crpix2 - 1.0
    try:
        ra0, dec0 = math.radians(float(header["CRVAL1"])), math.radians(float(header["CRVAL2"]))
        if "CD1_1" in header:
            cd = np.array(
                [
                    [header["CD1_1"], header.get("CD1_2", 0.0)],
                    [header.get("CD2_1", 0.0), header["CD2_2"]],
                ],
                dtype=float,
            )
        else:
            pc = np.array(
                [
                    [header.get("PC1_1", 1.0), header.get("PC1_2", 0.0)],
                    [header.get("PC2_1", 0.0), header.get("PC2_2", 1.0)],
                ],
                dtype=float,
            )
            cd = pc * np.array(
                [[header.get("CDELT1", 1.0)], [header.get("CDELT2", 1.0)]], dtype=float
            )
        ra1, dec1 = math.radians(ra), math.radians(dec)
        cos_c = math.sin(dec0) * math.sin(dec1) + math.cos(dec0) * math.cos(dec1) * math.cos(
            ra1 - ra0
        )
        if cos_c <= 0:
            return None
        xi = math.cos(dec1) * math.sin(ra1 - ra0) / cos_c
        eta = (
            math.cos(dec0) * math.sin(dec1) - math.sin(dec0) * math.cos(dec1) * math.cos(ra1 - ra0)
        ) / cos_c
        dx, dy = np.linalg.solve(cd, np.degrees([xi, eta]))
    except (KeyError, TypeError, ValueError, np.linalg.LinAlgError):
        return crpix1 - 1.0, crpix2 - 1.0
    return crpix1 - 1.0 + float(dx), crpix2 - 1.0 + float(dy)


def rubin_cutouts(
    record: dict, row: dict, *, where: str
) -> tuple[list[np.ndarray], list[tuple[int, int]], str]:
    """Decode the three cutouts -> (planes in CHANNELS order, (row, col) source pixels, unit).

    Raises
    ------
    InputError
        A cutout is missing (or the schema has none), or its bytes are not a FITS image.
    """
    planes, centres, unit = [], [], None
    for name in RUBIN_CUTOUTS:
        if name not in record:
            msg = f"{where}: this Rubin schema carries no {name}; the model needs all three cutouts"
            raise InputError(msg)
        raw = record[name]
        if not raw:
            msg = f"{where}: {name} is missing (null or empty)"
            raise InputError(msg)
        data, header = decode_fits(raw, where=f"{where} {name}", keys=_HEADER_KEYS)
        position = wcs_pixel(header, row.get("ra"), row.get("dec"))
        if position is None:
            centre = (data.shape[0] // 2, data.shape[1] // 2)
        else:
            centre = (math.floor(position[1] + 0.5), math.floor(position[0] + 0.5))
        planes.append(data)
        centres.append(centre)
        if unit is None and isinstance(header.get("BUNIT"), str) and header["BUNIT"].strip():
            unit = header["BUNIT"].strip()
    return planes, centres, unit or _DEFAULT_UNIT
