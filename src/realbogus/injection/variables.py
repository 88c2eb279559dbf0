"""Variable sources of a field, found in its own frames: the `--known` catalogue of `inject`.

In a crowded field (a Galactic-bulge series) real variable stars are detected in the
differences and, without a catalogue, labelled Bogus. Difference-image photometry finds them as
microlensing surveys do: for every frame, the template is aligned and subtracted as `inject`
does it (`inject.align_template`, `inject.fake_free_difference`: no fakes), and the PSF flux of
the difference is measured at each template star (a matched filter, sum(P D) / sum(P^2), with
its error from the difference's variance plane times the frame's measured noise factor).

A constant star leaves a residual that scales with its brightness (PSF and registration
mismatch: the same fraction of its flux for every star of a frame); a variable's residual is its
change in flux. Per frame the common part is fitted over the brighter half of the stars
(residual = a F, `a` the median of flux / F) and taken off, and the error of each star gets that
frame's systematic floor (robust std of residual / F over the same stars, times F) added in
quadrature. A star is variable when its reduced chi^2 about zero over the frames is at least
`min_chi2` and at least `min_outliers` frames are more than 5 sigma off; the catalogue gives
its template position (`template_x`, `template_y`: `inject --known` maps them onto each frame
through that frame's registration).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from ..errors import InputError
from ..numeric import mad_sigma
from ..sim.dia import ImagePSF
from .frames import Frame
from .inject import InjectConfig, _psf_at, align_template, fake_free_difference
from .noise import estimate_noise_scale
from .register import Stars
from .template import Template

__all__ = ["LightCurve", "find_variables", "frame_fluxes", "template_peaks"]

#: |flux / error| beyond which a frame counts as an outlier of a star's light curve.
OUTLIER_SIGMA = 5.0


@dataclass(frozen=True)
class LightCurve:
    """Difference fluxes of the template's stars in one frame.

    Attributes
    ----------
    frame : str
    flux, err : ndarray of shape (N,)
        PSF flux in the difference (science units) and its error; NaN where the star falls off
        the frame or on pixels without data.
    """

    frame: str
    flux: np.ndarray
    err: np.ndarray


def template_peaks(template: Template, *, min_snr: float = 10.0) -> Stars:
    """Stars of a (crowded) template, one per PSF-filtered peak.

    `register.find_stars` (sep isophotes) merges a crowded field into blends; here every local
    maximum of the template's matched-filter SNR map (the template PSF as the filter) above
    `min_snr`, in a box of 2 FWHM + 1, is a star (`photutils.detection.find_peaks`, quadratic
    centroids), with its PSF flux.

    Returns
    -------
    Stars
        Template pixels; `flux` the PSF flux (template units); `near_bad` all False (peaks
        within 1 FWHM of a bad pixel are not taken).
    """
    from photutils.centroids import centroid_quadratic
    from photutils.detection import find_peaks
    from scipy import signal

    if template.psf is None:
        msg = "the template file has no PSF; make it with `realbogus template` (or --psf)"
        raise InputError(msg)
    psf = template.psf.array / template.psf.array.sum()
    image = np.where(template.bad, 0.0, np.nan_to_num(template.image))
    variance = np.where(template.bad, np.inf, template.variance)
    p2 = float((psf**2).sum())
    filtered = signal.fftconvolve(image, psf[::-1, ::-1], mode="same")
    noise = np.sqrt(
        signal.fftconvolve(
            np.where(np.isfinite(variance), variance, 0.0), (psf**2)[::-1, ::-1], mode="same"
        )
    )
    snr = np.where(noise > 0, filtered / np.maximum(noise, 1e-30), 0.0)
    fwhm = template.fwhm_px
    box = 2 * int(round(fwhm)) + 1
    grown = ndimage.binary_dilation(template.bad, iterations=max(1, int(round(fwhm))))
    peaks = find_peaks(
        snr, min_snr, box_size=box, mask=grown, border_width=box, centroid_func=centroid_quadratic
    )
    if peaks is None or not len(peaks):
        msg = f"no star above {min_snr:g} sigma on the template"
        raise InputError(msg)
    x = np.asarray(peaks["x_centroid"], float)
    y = np.asarray(peaks["y_centroid"], float)
    ix, iy = np.asarray(peaks["x_peak"]), np.asarray(peaks["y_peak"])
    off = ~np.isfinite(x) | ~np.isfinite(y) | (np.hypot(x - ix, y - iy) > 1.0)
    x, y = np.where(off, ix, x), np.where(off, iy, y)
    flux = filtered[iy, ix] / p2
    order = np.argsort(-flux)
    return Stars(
        x=x[order],
        y=y[order],
        flux=flux[order],
        peak=np.asarray(snr[iy, ix])[order],
        near_bad=np.zeros(len(order), bool),
    )


def frame_fluxes(
    frame: Frame,
    template: Template,
    stars: Stars,
    *,
    config: InjectConfig | None = None,
    psf: ImagePSF | None = None,
    template_psf: ImagePSF | None = None,
    registration_stars: Stars | None = None,
) -> LightCurve:
    """Forced PSF photometry of the template's `stars` on the frame's fake-free difference.

    Parameters
    ----------
    frame : Frame
    template : Template
    stars : Stars
        Stars to measure, template pixels (`template_peaks`).
    config : InjectConfig, optional
        The subtraction options (`inject`'s defaults).
    psf, template_psf : ImagePSF, optional
        Given PSFs (`inject --psf`, `--template-psf`); by default measured / the template's.
    registration_stars : Stars, optional
        `register.find_stars` on the template (what `inject` registers with); found when None.
    """
    config = config or InjectConfig(n_fakes=0)
    aligned = align_template(
        frame,
        template,
        config=config,
        psf=psf,
        template_psf=template_psf,
        template_stars=registration_stars,
    )
    diff = fake_free_difference(aligned)
    noise = estimate_noise_scale(
        diff.snr,
        ~diff.mask & ~aligned.bad,
        threshold=config.threshold,
        grow=int(2 * aligned.fwhm) + 1,
    )
    variance = diff.subtraction.variance * noise.scale**2
    matrix = aligned.registration.matrix
    if matrix is None:  # a WCS registration that is not affine: through the sky
        world = template.wcs.pixel_to_world_values(stars.x, stars.y)
        x, y = (np.asarray(v, float) for v in frame.wcs.world_to_pixel_values(*world))
    else:
        x = matrix[0, 0] * stars.x + matrix[0, 1] * stars.y + matrix[0, 2]
        y = matrix[1, 0] * stars.x + matrix[1, 1] * stars.y + matrix[1, 2]
    flux = np.full(len(stars), np.nan)
    err = np.full(len(stars), np.nan)
    bad = diff.mask | aligned.bad
    h, w = bad.shape
    for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
        psf, ix, iy = _psf_at(aligned.psf, xi, yi)
        half = psf.shape[0] // 2
        if not (half <= ix < w - half and half <= iy < h - half):
            continue
        box = np.s_[iy - half : iy + half + 1, ix - half : ix + half + 1]
        if bad[box][psf > 0.01 * psf.max()].any():
            continue
        p2 = float((psf**2).sum())
        flux[i] = float((psf * diff.difference[box]).sum()) / p2
        err[i] = float(np.sqrt((psf**2 * variance[box]).sum())) / p2
    return LightCurve(frame=frame.name, flux=flux, err=err)


def find_variables(
    curves: list[LightCurve],
    stars: Stars,
    *,
    min_chi2: float = 5.0,
    min_outliers: int = 3,
    min_frames: int = 10,
) -> pd.DataFrame:
    """Variable stars from their difference light curves.

    Parameters
    ----------
    curves : list of LightCurve
        One per frame, for the same `stars`.
    stars : Stars
        The template's stars (template pixels; `flux` their template flux F).
    min_chi2 : float
        Least reduced chi^2 about zero of the detrended fluxes.
    min_outliers : int
        Least frames with |flux| > 5 sigma.
    min_frames : int
        Least frames with a measurement.

    Returns
    -------
    DataFrame
        One row per star: ``template_x``, ``template_y``, ``template_flux``, ``n_frames``,
        ``chi2`` (reduced), ``n_outliers``, ``amplitude`` (robust half-range of the detrended
        flux over F), ``variable`` (bool) and ``origin`` ("variable").
    """
    f = np.array([c.flux for c in curves])  # (F, N)
    e = np.array([c.err for c in curves])
    bright_f = np.asarray(stars.flux, float)
    usable = np.isfinite(bright_f) & (bright_f > 0) & ~np.asarray(stars.near_bad)
    ref = usable & (bright_f >= np.median(bright_f[usable])) if usable.any() else usable
    resid = np.full_like(f, np.nan)
    sigma = np.full_like(f, np.nan)
    for i in range(len(curves)):
        ok = ref & np.isfinite(f[i])
        if ok.sum() < 10:
            continue
        ratio = f[i, ok] / bright_f[ok]
        a = float(np.median(ratio))
        floor = mad_sigma(ratio - a)
        resid[i] = f[i] - a * bright_f
        sigma[i] = np.sqrt(e[i] ** 2 + (floor * bright_f) ** 2)
    z = resid / sigma
    n = np.isfinite(z).sum(axis=0)
    has = n > 0
    chi2 = np.full(len(bright_f), np.nan)
    amplitude = np.full(len(bright_f), np.nan)
    if has.any():
        chi2[has] = np.nansum(z[:, has] ** 2, axis=0) / n[has]
        lo, hi = np.nanpercentile(resid[:, has], [10, 90], axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            amplitude[has] = (hi - lo) / 2 / bright_f[has]
    outliers = (np.abs(np.nan_to_num(z)) > OUTLIER_SIGMA).sum(axis=0)
    variable = usable & (n >= min_frames) & (chi2 >= min_chi2) & (outliers >= min_outliers)
    return pd.DataFrame(
        {
            "template_x": stars.x,
            "template_y": stars.y,
            "template_flux": bright_f,
            "n_frames": n,
            "chi2": chi2,
            "n_outliers": outliers,
            "amplitude": amplitude,
            "variable": variable,
            "origin": "variable",
        }
    )
