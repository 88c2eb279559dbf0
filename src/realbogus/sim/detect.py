"""Detection on both polarities of the matched-filter SNR map, and forced measurements.

The SNR map is (D (x) P~) / sqrt(V (x) P~^2), with P~ the flipped difference-image PSF: unit
variance on white noise and the optimal point-source SNR at a source. Detection runs sep on
+SNR and -SNR at the threshold (sep's own filtering off, as the reference notes require).
Positions are 0-based pixels; fluxes in the images' units (nJy).
"""

from __future__ import annotations

import numpy as np
import sep
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal

__all__ = [
    "snr_map",
    "detect",
    "forced_psf_flux",
    "aperture_flux",
    "shift_stamps",
]


def snr_map(difference: np.ndarray, variance: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """Matched-filter SNR map of shape (H, W) for a difference image with PSF `psf` (k, k)."""
    kern = psf[::-1, ::-1] / psf.sum()
    num = signal.fftconvolve(difference, kern, mode="same")
    den = signal.fftconvolve(variance, kern**2, mode="same")
    return num / np.sqrt(np.maximum(den, 1e-30))


def detect(
    snr: np.ndarray, mask: np.ndarray, *, threshold: float = 5.0, minarea: int = 3
) -> dict[str, np.ndarray]:
    """Sources above `threshold` in +snr and in -snr (masked pixels ignored).

    Returns
    -------
    dict of ndarray of shape (n,)
        ``x``, ``y`` (SNR-weighted barycentre, pixels), ``peak`` (|SNR| at the brightest
        pixel), ``npix`` (pixels above threshold), ``isNegative`` (bool).
    """
    snr = np.ascontiguousarray(snr, dtype=np.float32)
    mask = np.ascontiguousarray(mask, dtype=bool)
    err = np.ones_like(snr)
    out: dict[str, list] = {"x": [], "y": [], "peak": [], "npix": [], "isNegative": []}
    sep.set_extract_pixstack(2_000_000)
    sep.set_sub_object_limit(4096)
    for sign in (1.0, -1.0):
        data = np.where(mask, 0.0, sign * snr).astype(np.float32)
        objs = sep.extract(
            data,
            threshold,
            err=err,
            mask=mask,
            minarea=minarea,
            filter_kernel=None,
            deblend_nthresh=32,
            deblend_cont=1e-4,
            clean=False,
        )
        px, py = _peak_centroid(data, objs["xpeak"], objs["ypeak"])
        out["x"].append(px)
        out["y"].append(py)
        out["peak"].append(objs["peak"])
        out["npix"].append(objs["npix"])
        out["isNegative"].append(np.full(len(objs), sign < 0))
    return {k: np.concatenate(v) for k, v in out.items()}


def _peak_centroid(
    data: np.ndarray, xp: np.ndarray, yp: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel peak of the SNR map: parabola through the peak pixel and its neighbours per axis
    (the maximum-likelihood position of a point source on a matched-filter map)."""
    h, w = data.shape
    xp = np.clip(np.asarray(xp, int), 1, w - 2)
    yp = np.clip(np.asarray(yp, int), 1, h - 2)
    c = data[yp, xp]
    dx = np.zeros(len(xp))
    dy = np.zeros(len(xp))
    for d, lo, hi in (
        (dx, data[yp, xp - 1], data[yp, xp + 1]),
        (dy, data[yp - 1, xp], data[yp + 1, xp]),
    ):
        curv = lo - 2 * c + hi
        ok = curv < 0
        d[ok] = np.clip(0.5 * (lo[ok] - hi[ok]) / curv[ok], -0.5, 0.5)
    return xp + dx, yp + dy


def shift_stamps(stamps: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Shift (N, k, k) stamps by sub-pixel (dx, dy) with a Fourier phase ramp (band-limited)."""
    n, k, _ = stamps.shape
    f = np.fft.fftfreq(k)
    spec = np.fft.fft2(stamps)
    ramp = np.exp(
        -2j * np.pi * (f[None, None, :] * dx[:, None, None] + f[None, :, None] * dy[:, None, None])
    )
    return np.real(np.fft.ifft2(spec * ramp))


def _windows(
    image: np.ndarray, ix: np.ndarray, iy: np.ndarray, half: int, fill: float
) -> np.ndarray:
    padded = np.pad(image, half, constant_values=fill)
    view = sliding_window_view(padded, (2 * half + 1, 2 * half + 1))
    return view[iy, ix]


def forced_psf_flux(
    image: np.ndarray,
    variance: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    psf_stamps: np.ndarray,
    *,
    bad: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares PSF flux at fixed positions.

    Parameters
    ----------
    image, variance : ndarray of shape (H, W)
    x, y : ndarray of shape (N,)
        Positions, pixels.
    psf_stamps : ndarray of shape (N, k, k)
        Unit-sum PSF of each source, centred on pixel (round(x), round(y)) plus the sub-pixel part.
    bad : ndarray of shape (H, W), bool, optional
        Pixels left out of the fit (NaN, saturated).

    Returns
    -------
    flux, flux_err : ndarray of shape (N,)
        NaN where no valid pixel overlaps the PSF.
    """
    k = psf_stamps.shape[-1]
    half = k // 2
    ix = np.floor(np.asarray(x) + 0.5).astype(int)
    iy = np.floor(np.asarray(y) + 0.5).astype(int)
    data = _windows(image, ix, iy, half, 0.0)
    var = _windows(variance, ix, iy, half, np.inf)
    weight = 1.0 / np.where(np.isfinite(var) & (var > 0), var, np.inf)
    if bad is not None:
        weight = np.where(_windows(bad, ix, iy, half, True), 0.0, weight)
    data = np.where(np.isfinite(data), data, 0.0)
    weight = np.where(np.isfinite(data), weight, 0.0)
    p = psf_stamps
    spp = (p * p * weight).sum(axis=(1, 2))
    sdp = (p * data * weight).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        flux = np.where(spp > 0, sdp / spp, np.nan)
        err = np.where(spp > 0, 1.0 / np.sqrt(spp), np.nan)
    return flux, err


def aperture_flux(
    image: np.ndarray, variance: np.ndarray, x: np.ndarray, y: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Circular aperture sum and its error (sep.sum_circle); NaN pixels count as 0."""
    data = np.ascontiguousarray(np.where(np.isfinite(image), image, 0.0), dtype=np.float64)
    var = np.ascontiguousarray(np.where(np.isfinite(variance), variance, 0.0), dtype=np.float64)
    if len(x) == 0:
        return np.zeros(0), np.zeros(0)
    flux, err, _ = sep.sum_circle(data, np.asarray(x, float), np.asarray(y, float), radius, var=var)
    return flux, err
