"""FITS images and detection catalogs: the file side of `stamps.cut_stamps`.

Readers accept single-HDU FITS (or the first image HDU), Rubin-style multi-extension exposures
(IMAGE / MASK / VARIANCE found by EXTNAME), and any byte order. Catalogs give pixel `x, y`, or
`ra, dec` (degrees) converted with the science image's WCS.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from ..errors import InputError
from ..stamps import Stamps, box_extent, cut_stamps
from .tables import read_table

__all__ = [
    "Image",
    "position_faults",
    "read_image",
    "read_catalog",
    "stamps_from_files",
    "celestial_wcs",
]


@dataclass(frozen=True)
class Image:
    """One image plane with what came with it.

    Attributes
    ----------
    data : ndarray of shape (H, W), float32, native byte order
    wcs : astropy.wcs.WCS or None
        Celestial WCS of the image, when the header has one.
    variance, mask : ndarray of shape (H, W) or None
        From VARIANCE / MASK extensions of a multi-extension exposure.
    """

    data: np.ndarray
    wcs: WCS | None = None
    variance: np.ndarray | None = None
    mask: np.ndarray | None = None


def _native_float32(data: np.ndarray) -> np.ndarray:
    return np.asarray(data).astype(np.float32)  # also converts big-endian FITS data


def celestial_wcs(header: fits.Header) -> WCS | None:
    """The celestial WCS of a FITS header, or None when it has none (FITS fix-ups silenced)."""
    if "CTYPE1" not in header:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header)
    return wcs.celestial if wcs.has_celestial else None


def read_image(path: str | os.PathLike) -> Image:
    """Read a science, template or difference image from FITS.

    A multi-extension file with an `IMAGE` extension is read as a Rubin-style exposure
    (IMAGE, plus MASK and VARIANCE when present); otherwise the first HDU with 2-D data.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"{path}: no such file"
        raise InputError(msg)
    try:
        # Our own file handle: astropy leaks its handle when a truncated file fails to parse.
        with open(path, "rb") as handle, fits.open(handle, memmap=False) as hdus:
            hdus.verify("silentfix+ignore")
            names = {h.name.upper(): h for h in hdus}
            if "IMAGE" in names:
                image = names["IMAGE"]
                variance = names.get("VARIANCE")
                mask = names.get("MASK")
            else:
                image = next((h for h in hdus if h.data is not None and h.data.ndim == 2), None)
                variance = mask = None
            if image is None:
                msg = f"{path}: no 2-D image HDU found"
                raise InputError(msg)
            header = image.header.copy()
            # A celestial WCS may live in the primary header of a multi-extension exposure.
            wcs = celestial_wcs(header) or celestial_wcs(hdus[0].header)
            data = _native_float32(image.data)
            var = _native_float32(variance.data) if variance is not None else None
            msk = (
                np.asarray(mask.data).astype(mask.data.dtype.newbyteorder("="))
                if mask is not None
                else None
            )
    except InputError:
        raise
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError for bad files
        msg = f"{path}: corrupt or truncated FITS ({type(exc).__name__}: {exc})"
        raise InputError(msg) from exc
    for name, plane in (("VARIANCE", var), ("MASK", msk)):
        if plane is not None and plane.shape != data.shape:
            msg = f"{path}: {name} shape {plane.shape} differs from IMAGE shape {data.shape}"
            raise InputError(msg)
    return Image(data=data, wcs=wcs, variance=var, mask=msk)


def read_catalog(path: str | os.PathLike, *, wcs: WCS | None = None) -> pd.DataFrame:
    """Read a detection catalog and make sure it has pixel columns `x`, `y`.

    Parameters
    ----------
    path : path-like
        Parquet, CSV or FITS table with `x, y` (0-based pixels) or `ra, dec` (degrees).
    wcs : astropy.wcs.WCS, optional
        The science image's WCS, needed when the catalog has only `ra, dec`.

    Returns
    -------
    DataFrame
        The catalog with float64 `x`, `y`, and a `diaSourceId` (row number when absent).
    """
    catalog = read_table(path)
    if {"x", "y"} <= set(catalog.columns):
        pass
    elif {"ra", "dec"} <= set(catalog.columns):
        if wcs is None:
            msg = f"{path}: catalog has ra, dec but the science image has no celestial WCS"
            raise InputError(msg)
        x, y = wcs.all_world2pix(catalog["ra"].to_numpy(float), catalog["dec"].to_numpy(float), 0)
        catalog = catalog.assign(x=x, y=y)
    else:
        msg = f"{path}: catalog needs columns x, y or ra, dec; has {list(catalog.columns)}"
        raise InputError(msg)
    try:
        catalog = catalog.assign(
            x=pd.to_numeric(catalog["x"]).astype(float), y=pd.to_numeric(catalog["y"]).astype(float)
        )
    except (TypeError, ValueError) as exc:
        msg = f"{path}: catalog columns x, y must be numbers (NaN allowed): {exc}"
        raise InputError(msg) from exc
    if "diaSourceId" not in catalog:
        catalog.insert(0, "diaSourceId", np.arange(len(catalog), dtype=np.int64))
    return catalog.reset_index(drop=True)


def stamps_from_files(
    *,
    science: str | os.PathLike,
    template: str | os.PathLike,
    difference: str | os.PathLike,
    catalog: str | os.PathLike,
    size: int,
) -> tuple[pd.DataFrame, Stamps]:
    """Read the three images and a catalog and cut (N, 3, size, size) triplets.

    Returns the catalog (with `x`, `y`, `diaSourceId`, and `status`, `reason`: "scored" and ""
    or why the row cannot be scored, "bad-position" or "off-image") and the stamps, row for row.
    Whole-input faults are errors before any stamp is cut: images of different shapes, an image
    without one finite pixel (docs/design.md, "Input faults").
    """
    paths = {"science": science, "template": template, "difference": difference}
    images = {name: read_image(path) for name, path in paths.items()}
    shape = images["science"].data.shape
    for name, image in images.items():
        if image.data.shape != shape:
            msg = (
                f"--{name} {paths[name]}: image shape {image.data.shape} differs from the "
                f"--science image's {shape}; give the three images on one pixel grid"
            )
            raise InputError(msg)
        if not _any_finite(image.data):
            msg = (
                f"--{name} {paths[name]}: the image has no finite pixels (all NaN or inf), so "
                "nothing on it can be scored; give the right file"
            )
            raise InputError(msg)
    table = read_catalog(catalog, wcs=images["science"].wcs)
    status, reason = position_faults(table["x"].to_numpy(), table["y"].to_numpy(), shape, size)
    table = table.assign(status=status, reason=reason)
    stamps = cut_stamps(
        images["difference"].data,
        images["science"].data,
        images["template"].data,
        table["x"],
        table["y"],
        size=size,
    )
    return table, stamps


def _any_finite(data: np.ndarray) -> bool:
    """True when some pixel is finite; row by row, so a clean image is decided at once."""
    return any(np.isfinite(row).any() for row in data)


def position_faults(
    x: np.ndarray, y: np.ndarray, shape: tuple[int, int], size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Status and reason (object arrays of shape (N,)) of catalog positions on an image of
    `shape` (H, W): "scored" and "", "bad-position" (x or y not finite) or "off-image" (the
    size x size box around (x, y) has no pixel on the image)."""
    *_, on_image, finite = box_extent(x, y, shape, size)
    status = np.full(len(x), "scored", object)
    reason = np.full(len(x), "", object)
    status[~finite] = "bad-position"
    reason[~finite] = "position x, y is not finite"
    off = finite & (on_image == 0)
    status[off] = "off-image"
    for i in np.flatnonzero(off):
        reason[i] = (
            f"position ({x[i]:g}, {y[i]:g}) puts the {size} px stamp off the image "
            f"({shape[1]} x {shape[0]} px)"
        )
    return status, reason
