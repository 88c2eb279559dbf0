"""A template from real frames of one field: register, pick the best seeing, coadd.

Each frame is background-subtracted (sep mesh), registered onto the best-seeing frame (WCS when
both have one, else on their stars with astroalign), scaled to its flux units (median ratio of
bright-star aperture fluxes) and combined with per-frame weights 1 / (sigma_sky^2 FWHM^2),
the point-source S/N weights of a PSF-aware coadd of frames with similar PSFs. The variance
plane propagates the frames' variances through the weights. Pixels saturated in any frame, or
covered by none, are masked. The coadd's PSF is measured on the coadd (photutils ePSF).

The file: a primary header (the reference frame's, WCS kept, plus ``NCOMBINE``, ``FWHM``,
``REFFRAME``), then ``IMAGE``, ``VARIANCE``, ``MASK`` (1 = no data), ``PSF`` (when measured)
and a ``FRAMES`` table (name, seeing, flux scale, weight, shift) extensions;
`realbogus.images.read_image` reads it too.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sep
from astropy.io import fits

from ..errors import InputError, RealBogusWarning
from ..io.images import celestial_wcs
from ..sim.dia import ImagePSF
from .frames import Frame
from .psf import measure_psf, psf_fwhm, star_fwhm
from .register import Stars, background, find_stars, register, warp, warp_mask

__all__ = [
    "Template",
    "build_template",
    "write_template",
    "read_template",
    "flux_scale",
    "prepare",
]


@dataclass(frozen=True)
class Template:
    """A coadded template.

    Attributes
    ----------
    image : ndarray of shape (H, W), float64
        Background-subtracted, in the reference frame's units; NaN where `bad`.
    variance : ndarray of shape (H, W)
        inf where `bad`.
    bad : ndarray of shape (H, W), bool
    psf : ImagePSF or None
        Measured on the coadd (None when it could not be).
    header : astropy.io.fits.Header
    frames : DataFrame
        One row per combined frame: ``name``, ``seeing`` (px), ``scale``, ``weight``, ``dx``,
        ``dy`` (registration shift onto the reference, px).
    """

    image: np.ndarray
    variance: np.ndarray
    bad: np.ndarray
    psf: ImagePSF | None
    header: fits.Header
    frames: pd.DataFrame

    @property
    def wcs(self):
        """Celestial WCS of the reference frame, or None."""
        return celestial_wcs(self.header)

    @property
    def fwhm_px(self) -> float:
        """PSF FWHM of the coadd, pixels (NaN without a PSF)."""
        return self.psf.fwhm_px() if self.psf is not None else float("nan")


@dataclass(frozen=True)
class Prepared:
    """A frame with its sky taken off, its stars and its seeing (pixels)."""

    frame: Frame
    image: np.ndarray
    stars: Stars
    seeing: float


def prepare(frame: Frame) -> Prepared:
    """Background-subtract a frame, find its stars, and take its seeing (header or stars;
    NaN without stars)."""
    sky = background(frame.image, frame.bad)
    image = frame.image - sky
    stars = find_stars(image, frame.variance, frame.bad)
    seeing = frame.seeing_px
    if not seeing:
        try:
            seeing = star_fwhm(image, stars)
        except InputError:
            seeing = float("nan")  # no stars: registration or the PSF will say so
    return Prepared(frame=frame, image=image, stars=stars, seeing=float(seeing))


def flux_scale(
    reference: np.ndarray,
    image: np.ndarray,
    stars: Stars,
    *,
    radius: float,
    n: int = 60,
) -> float:
    """Median flux ratio reference / image of the `n` brightest unsaturated stars (aperture
    sums of `radius` pixels at the reference's star positions; both images registered)."""
    keep = np.flatnonzero(~stars.near_bad)[:n]
    if len(keep) < 3:
        msg = "too few unsaturated stars to match the frames' flux scales"
        raise InputError(msg)
    x, y = stars.x[keep], stars.y[keep]
    good = np.isfinite(reference) & np.isfinite(image)
    ref = np.ascontiguousarray(np.where(good, reference, 0.0))
    img = np.ascontiguousarray(np.where(good, image, 0.0))
    mask = np.ascontiguousarray(~good)
    fr, _, flag_r = sep.sum_circle(ref, x, y, radius, mask=mask)
    fi, _, flag_i = sep.sum_circle(img, x, y, radius, mask=mask)
    ok = (fr > 0) & (fi > 0) & (flag_r == 0) & (flag_i == 0)
    if ok.sum() < 3:
        msg = "too few stars with clean apertures to match the frames' flux scales"
        raise InputError(msg)
    return float(np.median(fr[ok] / fi[ok]))


def build_template(
    frames: Sequence[Frame],
    *,
    best: int = 10,
    psf: ImagePSF | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Template:
    """Coadd the `best` best-seeing of `frames` into a template.

    Parameters
    ----------
    frames : sequence of Frame
        Frames of one field (same instrument and filter).
    best : int
        Frames to combine (all when there are fewer).
    psf : ImagePSF, optional
        The coadd's PSF when known (e.g. a WebbPSF model); default measured on the coadd.
    progress : callable, optional
        Called as progress(done, total) over the frames.

    Raises
    ------
    InputError
        No frames, `best` < 1, or a frame that cannot be registered onto the reference (the
        message names it).
    """
    if not frames:
        msg = "no frames given; pass at least one FRAME.fits"
        raise InputError(msg)
    if best < 1:
        msg = f"--best must be at least 1; got {best}"
        raise InputError(msg)
    total = len(frames) + min(best, len(frames))
    prepared = []
    for i, frame in enumerate(frames):
        prepared.append(prepare(frame))
        if progress is not None:
            progress(i + 1, total)
    order = np.argsort([p.seeing for p in prepared], kind="stable")[:best]
    chosen = [prepared[i] for i in order]
    ref = chosen[0]
    shape = ref.frame.shape
    radius = float(np.clip(2.0 * max(p.seeing for p in chosen), 3.0, 30.0))
    num = np.zeros(shape)
    den = np.zeros(shape)
    var_num = np.zeros(shape)
    saturated = np.zeros(shape, bool)
    rows = []
    for i, p in enumerate(chosen):
        try:
            reg = register(
                p.stars,
                ref.stars,
                source_image=p.image,
                target_image=ref.image,
                source_wcs=p.frame.wcs,
                target_wcs=ref.frame.wcs,
            )
            img, var, bad = warp(reg, p.image, p.frame.variance, p.frame.bad, shape)
            sat = warp_mask(reg, p.frame.saturated, shape)
        except InputError as exc:
            msg = f"{p.frame.name}: cannot be registered onto {ref.frame.name}: {exc}"
            raise InputError(msg) from exc
        scale = 1.0 if p is ref else flux_scale(ref.image, img, ref.stars, radius=radius)
        img, var = img * scale, var * scale**2
        sky_var = float(np.median(var[~bad]))
        weight = 1.0 / (sky_var * p.seeing**2)
        good = ~bad
        num[good] += weight * img[good]
        den[good] += weight
        var_num[good] += weight**2 * var[good]
        saturated |= sat
        dx, dy = reg.shift
        rows.append(
            {
                "name": p.frame.name,
                "seeing": p.seeing,
                "scale": scale,
                "weight": weight,
                "dx": dx,
                "dy": dy,
                "method": reg.method,
            }
        )
        if progress is not None:
            progress(len(frames) + i + 1, total)
    table = pd.DataFrame(rows)
    table["weight"] /= table["weight"].sum()
    bad = (den <= 0) | saturated
    with np.errstate(invalid="ignore", divide="ignore"):
        image = np.where(bad, np.nan, num / den)
        variance = np.where(bad, np.inf, var_num / den**2)
    if psf is None:
        try:
            stars = find_stars(image, variance, bad)
            guess = float(np.nanmedian(table["seeing"]))
            psf = measure_psf(image, stars, fwhm_guess=guess if np.isfinite(guess) else None)
        except InputError as exc:
            warnings.warn(f"template PSF not measured: {exc}", RealBogusWarning, stacklevel=2)
    header = ref.frame.header.copy()
    header["NCOMBINE"] = (len(chosen), "frames combined")
    header["REFFRAME"] = (ref.frame.name[:60], "frame the others were registered onto")
    if psf is not None:
        header["FWHM"] = (psf.fwhm_px(), "coadd PSF FWHM, pixels")
    else:  # FITS headers hold no NaN; and the reference frame's own FWHM is not the coadd's
        header.remove("FWHM", ignore_missing=True)
    return Template(image=image, variance=variance, bad=bad, psf=psf, header=header, frames=table)


def write_template(template: Template, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write a template FITS file atomically (layout in the module docstring)."""
    from pathlib import Path

    from astropy.table import Table

    from ..io.atomic import atomic_path

    path = Path(path)
    if path.exists() and not overwrite:
        msg = f"{path} already exists; choose another --out or pass --overwrite"
        raise InputError(msg)
    header = template.header.copy()
    for key in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BZERO", "BSCALE"):
        header.remove(key, ignore_missing=True, remove_all=True)
    hdus = [
        fits.PrimaryHDU(header=header),
        fits.ImageHDU(np.nan_to_num(template.image).astype(np.float32), name="IMAGE"),
        fits.ImageHDU(
            np.where(template.bad, 0.0, template.variance).astype(np.float32), name="VARIANCE"
        ),
        fits.ImageHDU(template.bad.astype(np.uint8), name="MASK"),
    ]
    if template.psf is not None:
        psf_header = fits.Header()
        psf_header["FWHM"] = (template.psf.fwhm_px(), "PSF FWHM, pixels")
        hdus.append(fits.ImageHDU(template.psf.array.astype(np.float32), psf_header, name="PSF"))
    hdus.append(fits.BinTableHDU(Table.from_pandas(template.frames), name="FRAMES"))
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)


def read_template(path: str | os.PathLike) -> Template:
    """Read a file written by `write_template`.

    Raises
    ------
    InputError
        Missing file or not a realbogus template (no IMAGE / VARIANCE / MASK extensions).
    """
    from pathlib import Path

    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        msg = f"--template {path}: no such file; make one with `realbogus template`"
        raise InputError(msg)
    with open(path, "rb") as handle, fits.open(handle, memmap=False) as hdus:
        names = {h.name.upper() for h in hdus}
        if not {"IMAGE", "VARIANCE", "MASK"} <= names:
            msg = (
                f"--template {path}: not a realbogus template (needs IMAGE, VARIANCE and MASK "
                "extensions); make one with `realbogus template`"
            )
            raise InputError(msg)
        header = hdus[0].header.copy()
        bad = np.asarray(hdus["MASK"].data) != 0
        image = np.where(bad, np.nan, np.asarray(hdus["IMAGE"].data, dtype=np.float64))
        variance = np.where(bad, np.inf, np.asarray(hdus["VARIANCE"].data, dtype=np.float64))
        psf = None
        if "PSF" in names:
            arr = np.asarray(hdus["PSF"].data, dtype=np.float64)
            psf = ImagePSF(
                arr, fwhm=float(hdus["PSF"].header.get("FWHM", psf_fwhm(arr))), shape=bad.shape
            )
        frames = Table.read(hdus["FRAMES"]).to_pandas() if "FRAMES" in names else pd.DataFrame()
    return Template(image=image, variance=variance, bad=bad, psf=psf, header=header, frames=frames)
