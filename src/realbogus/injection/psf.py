"""The PSF of a real frame: measured from its own stars (a median stack of centred star cutouts;
photutils' ePSF builder on request) or read from a model file.

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


def star_fwhm(image: np.ndarray, stars: Stars, *, n: int = 40, half: int = 20) -> float:
    """A quick FWHM (pixels): the median over the brightest unsaturated stars of the diameter
    of the disc with the area of the connected pixels above half the star's peak."""
    from scipy import ndimage

    h, w = image.shape
    data = np.nan_to_num(image)
    sizes = []
    for j in np.flatnonzero(~stars.near_bad)[: 3 * n]:
        ix, iy = int(round(stars.x[j])), int(round(stars.y[j]))
        if not (half <= ix < w - half and half <= iy < h - half):
            continue
        box = data[iy - half : iy + half + 1, ix - half : ix + half + 1]
        core = box[half - 1 : half + 2, half - 1 : half + 2]
        peak = float(core.max())
        if not peak > 0:
            continue
        labels, _ = ndimage.label(box > 0.5 * peak)
        centre = labels[half - 1 : half + 2, half - 1 : half + 2].max()
        if centre:
            sizes.append(2.0 * np.sqrt((labels == centre).sum() / np.pi))
        if len(sizes) >= n:
            break
    if len(sizes) < 3:
        msg = "too few unsaturated stars to estimate the seeing; pass --psf"
        raise InputError(msg)
    return float(np.median(sizes))


def measure_psf(
    image: np.ndarray,
    stars: Stars,
    *,
    fwhm_guess: float | None = None,
    max_stars: int = 40,
    oversampling: int = 2,
    method: str = "median",
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
    if method not in ("median", "epsf"):
        msg = f"method must be 'median' or 'epsf'; got {method!r}"
        raise InputError(msg)
    fwhm = fwhm_guess if fwhm_guess else star_fwhm(image, stars)
    try:
        return _measure(image, stars, fwhm, 3.0, max_stars, oversampling, method)
    except InputError:
        # A crowded frame at coarse sampling (the SAAO bulge field binned 2 x 2: FWHM ~2.7 px,
        # ~50 sources) can give a 3-FWHM box a stack whose sum is not positive (neighbours
        # in the border) or whose peak is a neighbour's; a 2-FWHM box keeps them out. Frames
        # whose 3-FWHM stack is good are measured exactly as before.
        return _measure(image, stars, fwhm, 2.0, max_stars, oversampling, method)


def _measure(
    image: np.ndarray,
    stars: Stars,
    fwhm: float,
    box_fwhm: float,
    max_stars: int,
    oversampling: int,
    method: str,
) -> ImagePSF:
    """`measure_psf` with a box of half side `box_fwhm` x `fwhm` (5-40 px)."""
    h, w = image.shape
    half = int(np.clip(np.ceil(box_fwhm * fwhm), 5, 40))
    x, y, f = stars.x, stars.y, stars.flux
    inside = (x > half + 6) & (x < w - half - 7) & (y > half + 6) & (y < h - half - 7)
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
    if method == "median":
        arr = _median_stack(np.nan_to_num(image), x[clean], y[clean], half)
    else:
        arr = _epsf(np.nan_to_num(image), x[clean], y[clean], half, oversampling)
    peak = np.unravel_index(np.argmax(arr), arr.shape)
    if not arr.sum() > 0 or max(abs(peak[0] - half), abs(peak[1] - half)) > 1:
        msg = (
            f"the PSF cannot be measured: the stack of {len(clean)} stars has its peak off "
            "centre; pass a PSF model with --psf"
        )
        raise InputError(msg)
    arr = arr / arr.sum()
    return ImagePSF(arr, fwhm=psf_fwhm(arr), shape=(h, w))


def _median_stack(data: np.ndarray, x: np.ndarray, y: np.ndarray, half: int) -> np.ndarray:
    """Per-pixel median of star cutouts, each Fourier-shifted onto the box centre (from its
    windowed centroid), its border median taken off and its sum set to 1."""
    from ..sim.detect import shift_stamps

    ix, iy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    pad = half + 4
    cuts = np.stack(
        [data[j - pad : j + pad + 1, i - pad : i + pad + 1] for i, j in zip(ix, iy, strict=True)]
    )
    cuts = shift_stamps(cuts, ix - x, iy - y)[:, 4:-4, 4:-4]
    border = np.concatenate([cuts[:, 0], cuts[:, -1], cuts[:, :, 0], cuts[:, :, -1]], axis=1)
    cuts = cuts - np.median(border, axis=1)[:, None, None]
    sums = cuts.sum(axis=(1, 2))
    cuts = cuts[sums > 0] / sums[sums > 0, None, None]
    return np.median(cuts, axis=0)


def _epsf(
    data: np.ndarray, x: np.ndarray, y: np.ndarray, half: int, oversampling: int
) -> np.ndarray:
    """photutils' EPSFBuilder on the stars, evaluated on the frame's pixels."""
    from astropy.nddata import NDData
    from astropy.table import Table
    from photutils.psf import EPSFBuilder, extract_stars

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cut = extract_stars(NDData(data), Table({"x": x, "y": y}), size=2 * half + 1)
        epsf, _ = EPSFBuilder(oversampling=oversampling, maxiters=4, progress_bar=False).build_epsf(
            cut
        )
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(float)
    arr = np.asarray(epsf.evaluate(xx, yy, flux=1.0, x_0=0.0, y_0=0.0), float)
    return np.where(np.isfinite(arr), arr, 0.0)


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
    from ..io.atomic import atomic_path

    header = fits.Header()
    header["FWHM"] = (psf.fwhm_px(), "PSF FWHM, pixels")
    header["FRAME"] = (name[:60], "frame the PSF was measured on")
    header["OVERSAMP"] = (1, "sampled on the frame's pixels")
    with atomic_path(path) as tmp:
        fits.PrimaryHDU(psf.array.astype(np.float32), header=header).writeto(tmp, overwrite=True)
