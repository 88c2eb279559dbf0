"""ZTF alert records: the candidate row and the three gzip FITS cutouts.

ZTF cuts 63x63 stamps centred on the candidate's pixel (round(xpos), round(ypos), 1-based) of a
3072 x 3080 readout-channel image; at the image edge the stamp is truncated instead of padded,
so a 41x63 stamp may hold the source on its 10th row. The source pixel is recovered from
xpos/ypos: the stamp starts at max(1, c - 31) along each axis. Pixels are in DN; NaN marks
masked or off-chip pixels. Accepts ZTF's schemas (v1.8 to v4.02) and broker variants (Fink's
`topLevelRecord` with nullable fields and extra fields).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ._fits import decode_fits

__all__ = ["ZTF_CUTOUTS", "ZTF_FIELDS", "ZTF_STAMP_SIZE", "ztf_row", "ztf_cutouts", "ztf_centre"]

#: Cutout fields in `realbogus.stamps.CHANNELS` order (difference, science, template).
ZTF_CUTOUTS = ("cutoutDifference", "cutoutScience", "cutoutTemplate")
#: Full stamp side of ZTF cutouts, pixels.
ZTF_STAMP_SIZE = 63
#: candidate fields copied to the table (ZTF names).
ZTF_FIELDS = (
    "jd", "fid", "pid", "programid", "field", "rcid", "ra", "dec", "xpos", "ypos", "magpsf",
    "sigmapsf", "magap", "sigmagap", "isdiffpos", "rb", "rbversion", "drb", "drbversion", "fwhm",
    "elong", "nbad", "nneg", "scorr", "ssdistnr", "ssmagnr", "ssnamenr", "distnr", "magnr",
    "sgscore1", "distpsnr1", "magzpsci", "diffmaglim", "ndethist",
)  # fmt: skip
_BANDS = {1: "g", 2: "r", 3: "i"}
_UNIT = "DN"


def _is_negative(isdiffpos: object) -> bool | None:
    """ZTF `isdiffpos` ('t'/'1' positive, 'f'/'0' negative) -> DiaSource `isNegative`."""
    if isdiffpos is None:
        return None
    text = str(isdiffpos).strip().lower()
    if text in ("t", "1", "true"):
        return False
    if text in ("f", "0", "false"):
        return True
    return None


def ztf_row(record: dict, *, where: str) -> dict:
    """The table row of one ZTF alert: candid, objectId, `ZTF_FIELDS` and DiaSource aliases."""
    candidate = record.get("candidate")
    if not isinstance(candidate, dict):
        msg = f"{where}: ZTF alert has no candidate record"
        raise InputError(msg)
    candid = record.get("candid", candidate.get("candid"))
    if candid is None:
        msg = f"{where}: ZTF alert has no candid"
        raise InputError(msg)
    row = {"diaSourceId": int(candid), "candid": int(candid), "objectId": record.get("objectId")}
    for name in ZTF_FIELDS:
        row[name] = candidate.get(name)
    row["schemavsn"] = record.get("schemavsn")
    row["isNegative"] = _is_negative(candidate.get("isdiffpos"))
    row["band"] = _BANDS.get(candidate.get("fid"))
    xpos, ypos = candidate.get("xpos"), candidate.get("ypos")
    row["x"] = None if xpos is None else float(xpos) - 1.0  # 0-based, as the DiaSource x
    row["y"] = None if ypos is None else float(ypos) - 1.0
    return row


def ztf_centre(shape: tuple[int, int], xpos: float | None, ypos: float | None) -> tuple[int, int]:
    """(row, col) of the source in a (possibly edge-truncated) ZTF cutout of `shape`.

    Full 63-pixel axes have the source at 31; a truncated axis starts at max(1, c - 31) with
    c = round(pos) (1-based), so the source sits at c - 1 when the low side was cut and at 31
    when the high side was.
    """
    half = ZTF_STAMP_SIZE // 2
    out = []
    for length, pos in zip(shape, (ypos, xpos), strict=True):
        if length >= ZTF_STAMP_SIZE or pos is None or not math.isfinite(pos):
            out.append(length // 2 if length != ZTF_STAMP_SIZE else half)
            continue
        c = math.floor(pos + 0.5)
        out.append(c - max(1, c - half))
    return out[0], out[1]


def ztf_cutouts(
    record: dict, row: dict, *, where: str
) -> tuple[list[np.ndarray], list[tuple[int, int]], str]:
    """Decode the three cutouts -> (planes in CHANNELS order, (row, col) source pixels, unit)."""
    planes, centres, unit = [], [], None
    for name in ZTF_CUTOUTS:
        cutout = record.get(name)
        raw = cutout.get("stampData") if isinstance(cutout, dict) else None
        if not raw:
            msg = f"{where}: {name} is missing (null or empty)"
            raise InputError(msg)
        data, header = decode_fits(raw, where=f"{where} {name}", keys=frozenset({"BUNIT"}))
        planes.append(data)
        centres.append(ztf_centre(data.shape, row.get("xpos"), row.get("ypos")))
        if unit is None and isinstance(header.get("BUNIT"), str) and header["BUNIT"].strip():
            unit = header["BUNIT"].strip()
    return planes, centres, unit or _UNIT
