"""Empirical noise rescaling of a real difference image (as Rubin's pipelines do it).

On real frames the per-pixel variance plane can be right while the matched-filter SNR map is
not unit-variance: noise correlated on the PSF scale (crowded-field residuals, drizzling) adds
to the SNR map what the variance plane does not hold. Rubin measures the noise where it is
used: meas_algorithms' DynamicDetectionTask rescales the detection threshold from PSF fluxes at
sky positions, ip_diffim's ScaleVarianceTask rescales variance planes. Here the robust std
(`realbogus.numeric.mad_sigma`) of the SNR map at quiet pixels (no data, border and anything
within `grow` px of a detection left out) gives a factor s, and the difference's variance plane
is multiplied by s**2 before detection, so the threshold, flux errors and SNRs use the measured
noise.

To keep the check honest, the frame is split in a checkerboard of square cells: the factor is
measured on the "estimation" cells and the SNR map's std is reported on the others
(`check_cells`), two disjoint sets of pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..numeric import mad_sigma

__all__ = ["NoiseScale", "check_cells", "estimate_noise_scale", "MIN_PIXELS"]

#: Fewer quiet pixels than this in the estimation cells: no rescaling (factor 1).
MIN_PIXELS = 500


@dataclass(frozen=True)
class NoiseScale:
    """A measured noise factor.

    Attributes
    ----------
    scale : float
        Robust std of the SNR map at the quiet estimation pixels (1 when too few).
    n_pixels : int
        Quiet pixels it was measured on.
    iterations : int
        Rounds of re-masking detections at ``threshold * scale`` until the factor settled.
    """

    scale: float
    n_pixels: int
    iterations: int


def check_cells(shape: tuple[int, int], fwhm: float) -> np.ndarray:
    """Checkerboard of square cells, True on the cells kept for checking (the others estimate).

    Parameters
    ----------
    shape : (H, W)
    fwhm : float
        PSF FWHM, pixels: cells are max(32, 8 FWHM) px on a side, far wider than the SNR map's
        correlation length (about 1.4 FWHM), so the two sets are nearly independent.

    Returns
    -------
    ndarray of shape (H, W), bool
    """
    cell = max(32, int(round(8 * fwhm)))
    iy, ix = np.indices(shape)
    return ((iy // cell + ix // cell) % 2).astype(bool)


def estimate_noise_scale(
    snr: np.ndarray,
    usable: np.ndarray,
    *,
    threshold: float,
    grow: int,
    max_iterations: int = 10,
    tolerance: float = 1e-3,
) -> NoiseScale:
    """Robust std of `snr` at usable pixels away from detections.

    Detections are |snr| > threshold * s for the current factor s (starting at 1), grown by
    `grow` px; the factor is re-measured until it moves by less than `tolerance` (relative),
    since masking at the unscaled threshold would also cut the noise's own excursions and bias
    the factor low.

    Parameters
    ----------
    snr : ndarray of shape (H, W)
        Matched-filter SNR map before rescaling (unit variance if the variance plane were right).
    usable : ndarray of shape (H, W), bool
        Pixels that may be used: data, inside the border, in the estimation cells, clear of
        fakes.
    threshold : float
        Detection threshold, in units of the rescaled noise.
    grow : int
        Pixels left out around every detection (about 2 FWHM).

    Returns
    -------
    NoiseScale
        ``scale`` 1 when fewer than `MIN_PIXELS` quiet pixels remain.
    """
    above = np.abs(snr)
    scale = 1.0
    n = 0
    for it in range(1, max_iterations + 1):
        near = ndimage.binary_dilation(above > threshold * scale, iterations=max(grow, 1))
        vals = snr[usable & ~near]
        n = int(vals.size)
        if n < MIN_PIXELS:
            return NoiseScale(scale=1.0, n_pixels=n, iterations=it)
        new = mad_sigma(vals)
        if not np.isfinite(new) or new <= 0:
            return NoiseScale(scale=1.0, n_pixels=n, iterations=it)
        settled = abs(new - scale) <= tolerance * scale
        scale = new
        if settled:
            break
    return NoiseScale(scale=float(scale), n_pixels=n, iterations=it)
