"""The PSF of a real frame: measured from its own stars (photutils' ePSF builder) or read.

The measured PSF is one image for the whole frame (no spatial variation), sampled on the
frame's pixels, odd side, unit sum over its box; `realbogus.sim.dia.ImagePSF` carries it. The
same PSF draws the injected fakes and measures them, so flux ratios test the subtraction and
detection, not the PSF model's wings (docs/real-images.md).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from astropy.io import fits

from ..errors import InputError
from ..sim.dia import ImagePSF
from .register import Stars

__all__ = ["measure_psf", "psf_fwhm", "read_psf", "write_psf", "star_fwhm", "MIN_PSF_STARS"]

#: Stars the ePSF builder needs at least.
MIN_PSF_STARS = 8


def psf_fwhm(array: np.ndarray, oversampling: int = 1) -> float:
    """FWHM (pixels of the frame) of a PSF image: the diameter of the disc with the area above
    half maximum. Exact for a round profile; the geometric mean of the axes for an elliptical one.
    """
    a = np.asarray(array, float)
    if oversampling == 1:
        # Upsample 4x (cubic) so a few-pixel core is measured to a few per cent.
        from scipy import ndimage

        a = ndimage.zoom(a, 4, order=3)
        oversampling = 4
    area = float((a > 0.5 * a.max()).sum()) / oversampling**2
    return 2.0 * np.sqrt(area / np.pi)


def star_fwhm(image: np.ndarray, stars: Stars, *, n: int = 40) -> float:
    """A quick FWHM (pixels) from the half-light radii of the brightest unsaturated stars
    (2 x r50, exact for a Gaussian), the aperture shrunk to 3 FWHM in two passes so that
    neighbours in a crowded field do not inflate it."""
    import sep

    keep = np.flatnonzero(~stars.near_bad)[:n]
    if len(keep) < 3:
        msg = "too few unsaturated stars to estimate the seeing; pass --psf"
        raise InputError(msg)
    data = np.ascontiguousarray(np.nan_to_num(image), dtype=np.float64)
    rmax = 25.0
    for _ in range(3):
        r, _ = sep.flux_radius(data, stars.x[keep], stars.y[keep], np.full(len(keep), rmax), 0.5)
        fwhm = float(2.0 * np.median(r))
        rmax = max(3.0 * fwhm, 3.0)
    return fwhm


def measure_psf(
    image: np.ndarray,
    stars: Stars,
    *,
    fwhm_guess: float | None = None,
    max_stars: int = 40,
    oversampling: int = 1,
) -> ImagePSF:
    """The frame's PSF from its bright, unsaturated, isolated stars (photutils `EPSFBuilder`).

    Parameters
    ----------
    image : ndarray of shape (H, W)
        Background-subtracted frame (NaN where bad).
    stars : Stars
        From `find_stars` on the same image, brightest first.
    fwhm_guess : float, optional
        Seeing FWHM in pixels (header); default `star_fwhm`. Sets the box (2 x 3 FWHM).
    max_stars : int
        Stars used at most.

    Raises
    ------
    InputError
        Fewer than `MIN_PSF_STARS` usable stars: the message asks for ``--psf``.
    """
    from astropy.nddata import NDData
    from astropy.table import Table
    from photutils.psf import EPSFBuilder, extract_stars

    h, w = image.shape
    fwhm = fwhm_guess if fwhm_guess else star_fwhm(image, stars)
    half = int(np.clip(np.ceil(3.0 * fwhm), 5, 40))
    box = 2 * half + 1
    x, y, f = stars.x, stars.y, stars.flux
    inside = (x > half + 1) & (x < w - half - 2) & (y > half + 1) & (y < h - half - 2)
    # Isolated: no neighbour brighter than 30 % of the star within 2 FWHM (a crowded field
    # has few stars cleaner than that; the builder's sigma clipping copes with the rest).
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(d, np.inf)
    crowded = ((d < 2.0 * fwhm) & (f[None, :] > 0.3 * f[:, None])).any(axis=1)
    ok = np.flatnonzero(inside & ~stars.near_bad & ~crowded)
    bad = ~np.isfinite(image)
    clean = [j for j in ok if not bad[_box(y[j], x[j], half)].any()][:max_stars]
    if len(clean) < MIN_PSF_STARS:
        msg = (
            f"the PSF cannot be measured: only {len(clean)} bright, unsaturated, isolated stars "
            f"(need {MIN_PSF_STARS}); pass a PSF model with --psf"
        )
        raise InputError(msg)
    table = Table({"x": x[clean], "y": y[clean]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cut = extract_stars(NDData(np.nan_to_num(image)), table, size=box)
        epsf, _ = EPSFBuilder(oversampling=oversampling, maxiters=4, progress_bar=False).build_epsf(
            cut
        )
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(float)
    arr = np.asarray(epsf.evaluate(xx, yy, flux=1.0, x_0=0.0, y_0=0.0), float)
    arr = np.where(np.isfinite(arr), arr, 0.0)
    peak = np.unravel_index(np.argmax(arr), arr.shape)
    if arr.sum() <= 0 or max(abs(peak[0] - half), abs(peak[1] - half)) > 1:
        msg = (
            f"the PSF cannot be measured: the ePSF builder did not converge on {len(clean)} stars "
            "(peak off centre); pass a PSF model with --psf"
        )
        raise InputError(msg)
    arr /= arr.sum()
    return ImagePSF(arr, fwhm=psf_fwhm(arr), shape=(h, w))


def _box(yc: float, xc: float, half: int) -> tuple[slice, slice]:
    iy, ix = int(round(yc)), int(round(xc))
    return slice(iy - half, iy + half + 1), slice(ix - half, ix + half + 1)


def read_psf(path: str | os.PathLike, *, shape: tuple[int, int], flag: str = "--psf") -> ImagePSF:
    """A PSF model from FITS: the first 2-D HDU, sampled on the frame's pixels.

    An even side is trimmed by one pixel; the header's ``OVERSAMP`` (or ``DET_SAMP``) > 1 is
    binned back to the frame's pixels.
    """
    from .frames import read_plane

    arr, header = read_plane(path, what=flag)
    over = int(header.get("OVERSAMP", header.get("DET_SAMP", 1)) or 1)
    if over > 1:
        n = (arr.shape[0] // over) * over
        arr = arr[:n, :n].reshape(n // over, over, n // over, over).sum(axis=(1, 3))
    if arr.shape[0] != arr.shape[1]:
        msg = f"{flag} {path}: a PSF image must be square; got {arr.shape}"
        raise InputError(msg)
    if arr.shape[0] % 2 == 0:
        arr = arr[:-1, :-1]
    arr = np.where(np.isfinite(arr), arr, 0.0)
    # Keep the core and wings out to where they fall below 1e-5 of the peak (at most 101 px).
    c = arr.shape[0] // 2
    peak_y, peak_x = np.unravel_index(np.argmax(arr), arr.shape)
    if (peak_y, peak_x) != (c, c):
        arr = np.roll(arr, (c - peak_y, c - peak_x), axis=(0, 1))
    half = min(c, 50)
    arr = arr[c - half : c + half + 1, c - half : c + half + 1]
    return ImagePSF(arr, fwhm=psf_fwhm(arr), shape=shape)


def write_psf(psf: ImagePSF, path: str | os.PathLike, *, name: str) -> None:
    """Write a PSF image (unit sum, frame pixels) with its FWHM and source frame, atomically."""
    from ..tables import atomic_path

    header = fits.Header()
    header["FWHM"] = (psf.fwhm_px(), "PSF FWHM, pixels")
    header["FRAME"] = (name[:60], "frame the PSF was measured on")
    header["OVERSAMP"] = (1, "sampled on the frame's pixels")
    with atomic_path(path) as tmp:
        fits.PrimaryHDU(psf.array.astype(np.float32), header=header).writeto(tmp, overwrite=True)
