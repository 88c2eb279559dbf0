"""Real exposures in: one frame's pixels, noise, bad pixels, header and WCS.

A `Frame` holds an image in its own units (ADU, MJy/sr, ...) *with* its sky, the per-pixel
variance (from a variance or noise map, or from gain and read noise), the pixels without
usable data (saturated, masked, NaN) and the header values the chain uses (seeing, gain).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from ..errors import InputError
from ..io.images import celestial_wcs

__all__ = ["Frame", "read_frame", "read_plane", "saturation_level", "SEEING_KEYS"]

#: Header keys read as the seeing FWHM in pixels, first found wins.
SEEING_KEYS = ("PFWHM", "FWHM", "SEEING_PX", "PSF_FWHM")


@dataclass(frozen=True)
class Frame:
    """One real exposure.

    Attributes
    ----------
    name : str
        File stem (used in tables and errors).
    image : ndarray of shape (H, W), float64
        Pixel values in the file's units, sky included; NaN where `bad`.
    variance : ndarray of shape (H, W), float64
        Per-pixel variance (units squared); inf where `bad`.
    bad : ndarray of shape (H, W), bool
        No usable data: saturated (and a 1-pixel ring around), masked, or not finite.
    saturated : ndarray of shape (H, W), bool
        The saturated part of `bad`.
    header : astropy.io.fits.Header
    wcs : astropy.wcs.WCS or None
        Celestial WCS when the header has one.
    gain : float or None
        Electrons per unit of `image` (None when the noise came from a map).
    seeing_px : float or None
        FWHM from the header (`SEEING_KEYS`), pixels.
    """

    name: str
    image: np.ndarray
    variance: np.ndarray
    bad: np.ndarray
    saturated: np.ndarray
    header: fits.Header
    wcs: WCS | None
    gain: float | None
    seeing_px: float | None

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return self.image.shape


def read_plane(path: str | os.PathLike, *, what: str) -> tuple[np.ndarray, fits.Header]:
    """The first 2-D HDU of a FITS file as float64 (native byte order) and its header.

    `what` names the file's role (e.g. ``"--variance"``) in errors.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"{what} {path}: no such file"
        raise InputError(msg)
    try:
        with open(path, "rb") as handle, fits.open(handle, memmap=False) as hdus:
            hdus.verify("silentfix+ignore")
            names = {h.name.upper(): h for h in hdus}
            hdu = names.get("IMAGE") or next(
                (h for h in hdus if h.data is not None and np.ndim(h.data) == 2), None
            )
            if hdu is None:
                msg = f"{what} {path}: no 2-D image HDU found"
                raise InputError(msg)
            header = hdus[0].header.copy()
            if hdu is not hdus[0]:
                header.update(hdu.header)
            return np.asarray(hdu.data).astype(np.float64), header
    except InputError:
        raise
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError for bad files
        msg = f"{what} {path}: corrupt or truncated FITS ({type(exc).__name__}: {exc})"
        raise InputError(msg) from exc


def saturation_level(image: np.ndarray, header: fits.Header) -> float | None:
    """The level at which pixels saturate, or None when the frame shows no saturation.

    The header's ``SATURATE`` / ``SATLEVEL`` when present; otherwise the image maximum when at
    least 3 pixels sit exactly on it (the plateau a saturated star leaves, e.g. 65300 ADU on the
    SAAO frames although the converter's limit is 65535).
    """
    for key in ("SATURATE", "SATLEVEL", "SATURATION"):
        if key in header:
            return float(header[key])
    finite = image[np.isfinite(image)]
    if not finite.size:
        return None
    top = float(finite.max())
    return top if int((finite == top).sum()) >= 3 else None


def read_frame(
    path: str | os.PathLike,
    *,
    variance: str | os.PathLike | None = None,
    noise: str | os.PathLike | None = None,
    mask: str | os.PathLike | None = None,
    gain: float | None = None,
    read_noise: float | None = None,
    saturation: float | None = None,
) -> Frame:
    """Read a real frame and its noise.

    Parameters
    ----------
    path : path-like
        FITS image (first 2-D HDU, or the ``IMAGE`` extension of a Rubin-style exposure, whose
        ``VARIANCE`` and ``MASK`` extensions are used when present).
    variance, noise : path-like, optional
        A variance map, or a noise (standard deviation) map, of the image's shape.
    mask : path-like, optional
        Non-zero pixels have no usable data.
    gain : float, optional
        Electrons per image unit; default the header's ``GAIN``. With `read_noise` it gives the
        variance (image - 0 sky-included counts / gain + (read_noise / gain)^2) when no map is given.
    read_noise : float, optional
        Electrons; default the header's ``RDNOISE`` / ``READNOIS``, else 0.
    saturation : float, optional
        Pixels at or above 0.98 x this level are bad; default `saturation_level`.

    Raises
    ------
    InputError
        Unreadable file, maps of another shape, or no noise information (no variance or noise
        map, no ``VARIANCE`` extension and no gain): the message names the flag to pass.
    """
    path = Path(path)
    image, header = read_plane(path, what="frame")
    ext_var = ext_mask = None
    with open(path, "rb") as handle, fits.open(handle, memmap=False) as hdus:
        names = {h.name.upper(): h for h in hdus}
        if "VARIANCE" in names:
            ext_var = np.asarray(names["VARIANCE"].data).astype(np.float64)
        if "MASK" in names:
            ext_mask = np.asarray(names["MASK"].data) != 0
    wcs = celestial_wcs(header)
    shape = image.shape
    bad = ~np.isfinite(image)
    if mask is not None:
        m, _ = read_plane(mask, what="--mask")
        _check_shape(m, shape, "--mask", path)
        bad |= m != 0
    if ext_mask is not None:
        bad |= ext_mask
    level = saturation if saturation is not None else saturation_level(image, header)
    saturated = np.zeros(shape, bool)
    if level is not None:
        saturated = np.nan_to_num(image, nan=-np.inf) >= 0.98 * level
        saturated = _grow(saturated)
    bad |= saturated
    g = gain if gain is not None else _header_float(header, ("GAIN", "EGAIN"))
    if g is not None and not g > 0:
        msg = f"--gain must be positive; got {g}"
        raise InputError(msg)
    if variance is not None:
        var, _ = read_plane(variance, what="--variance")
        _check_shape(var, shape, "--variance", path)
        g = gain  # a map given: photon noise of fakes only with an explicit --gain
    elif noise is not None:
        sig, _ = read_plane(noise, what="--noise")
        _check_shape(sig, shape, "--noise", path)
        var = sig**2
        g = gain
    elif ext_var is not None:
        var = ext_var
        g = gain
    elif g is not None:
        rn = (
            read_noise
            if read_noise is not None
            else (_header_float(header, ("RDNOISE", "READNOIS", "RON")) or 0.0)
        )
        var = np.maximum(np.nan_to_num(image), 0.0) / g + (rn / g) ** 2
    else:
        msg = (
            f"{path}: no noise information; pass --variance or --noise maps, or --gain "
            "(and --read-noise) for a frame in counts"
        )
        raise InputError(msg)
    bad |= ~np.isfinite(var) | (var <= 0)
    seeing = _header_float(header, SEEING_KEYS)
    return Frame(
        name=path.name.removesuffix(".fits").removesuffix(".fz"),
        image=np.where(bad, np.nan, image),
        variance=np.where(bad, np.inf, var),
        bad=bad,
        saturated=saturated,
        header=header,
        wcs=wcs,
        gain=g,
        seeing_px=seeing,
    )


def _grow(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=1) if mask.any() else mask


def _check_shape(plane: np.ndarray, shape: tuple[int, ...], flag: str, path: Path) -> None:
    if plane.shape != shape:
        msg = f"{flag} map has shape {plane.shape} but {path} has shape {shape}"
        raise InputError(msg)


def _header_float(header: fits.Header, keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = header.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
            return float(value)
    return None
