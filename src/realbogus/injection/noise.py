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

In a crowded field one factor per frame is not enough: the residuals of the subtracted stars
raise the noise among the stars and leave it lower in the troughs between them. `NoiseModel`
makes the factor a smooth function of the local source density D (`density_map`: the registered
template's variance plane smoothed over 2 FWHM, over its median):
k^2(x) is the SNR map's squared robust std measured in quantile bins of D over the quiet
estimation pixels, non-decreasing in D and interpolated between bins (`estimate_noise_model`).
Where the bins do not support it (too few pixels, or the denser half of the bins not noisier
than the sparser half by > 3 standard errors) the model is the constant factor of
`estimate_noise_scale`, so a frame of uniform density gets today's k back.

To keep the check honest, the frame is split in a checkerboard of square cells: the factor is
measured on the "estimation" cells and the SNR map's std is reported on the others
(`check_cells`), two disjoint sets of pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage
from scipy.optimize import isotonic_regression

from ..numeric import mad_sigma

__all__ = [
    "MIN_BIN_PIXELS",
    "MIN_PIXELS",
    "NoiseModel",
    "NoiseScale",
    "check_cells",
    "density_map",
    "estimate_noise_model",
    "estimate_noise_scale",
    "pair_differences",
]

#: Fewer quiet pixels than this in the estimation cells: no rescaling (factor 1).
MIN_PIXELS = 500

#: Fewest quiet pixels per density bin for the density model (else the constant factor).
MIN_BIN_PIXELS = 300

#: The denser half of the density bins must be noisier than the sparser half by more than
#: this many standard errors for the density model to be used.
MIN_SIGNIFICANCE = 3.0

#: Asymptotic variance of `mad_sigma`'s estimate of sigma^2 is about this times 2 sigma^4 / n
#: (the MAD's efficiency against the sample variance is 0.37).
_MAD_VARIANCE_FACTOR = 1 / 0.37


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


def density_map(
    variance: np.ndarray,
    bad: np.ndarray,
    fwhm: float,
    *,
    smooth_fwhm: float = 2.0,
) -> np.ndarray:
    """Local source density D: the registered template's variance plane, smoothed, over its
    median.

    The variance plane holds the sources' photon noise (sky + source counts / gain, or a noise
    map that includes it), so it rises with the local density of stars, but it does not hold
    the template's noise realisation. The template image itself would: on a shallow template
    (NIRCam: one epoch) the clipped, smoothed image is mostly its own noise, which enters the
    difference with the opposite sign, so binning on it selects pixels by their noise.

    Parameters
    ----------
    variance : ndarray of shape (H, W)
        The template's variance on the science frame's grid (flux units squared).
    bad : ndarray of shape (H, W), bool
        Template pixels without data (set to the median before smoothing).
    fwhm : float
        PSF FWHM, pixels.
    smooth_fwhm : float
        FWHM of the Gaussian smoothing, in units of `fwhm` (2: the SNR map's correlation
        length, about 1.4 FWHM, and the stars' wings around it).

    Returns
    -------
    ndarray of shape (H, W), float64
        D > 0, 1 at the template's median variance (dimensionless).
    """
    good = ~bad & np.isfinite(variance)
    median = float(np.median(variance[good])) if good.any() else 1.0
    median = median if median > 0 else 1.0
    filled = np.where(good, variance, median) / median
    return ndimage.gaussian_filter(filled, smooth_fwhm * fwhm / 2.3548, mode="nearest")


@dataclass(frozen=True, eq=False)
class NoiseModel:
    """The SNR map's noise factor as a smooth function of local source density D.

    k(x)^2 = K2(D(x)), K2 the SNR map's robust variance measured in quantile bins of D over the
    quiet estimation pixels, made non-decreasing in D (`scipy.optimize.isotonic_regression`)
    and linearly interpolated between the bins' median densities (constant beyond the first and
    last: no extrapolation onto bright stars, where no quiet pixel was measured). It is used when the
    denser half of the bins is noisier than the sparser half by more than `MIN_SIGNIFICANCE`
    standard errors; a weighted straight line k^2 = a + b D through the bins is reported to
    describe it (on SAAO the measured K2 is flat among the faintest densities, rises steeply
    above and flattens again, so the curve, not the line, is used: docs/real-images.md).

    Attributes
    ----------
    constant : NoiseScale
        The one-factor-per-frame estimate (`estimate_noise_scale`): the start of the fit and
        the fallback.
    a, b : float
        The weighted line k^2 = a + b D through the bins (b = 0 and a = constant.scale**2 when
        the model fell back to the constant).
    density : ndarray of shape (H, W) or None
        D (`density_map`); None for a constant model.
    knots_d, knots_k2 : ndarray of shape (n_bins,)
        The bins' median densities and their (non-decreasing) k^2; empty for a constant model.
    varying : bool
        True when the density model is used, False for the constant factor.
    significance : float
        The last fit's dense-minus-sparse contrast of the bins' k^2, in standard errors (0
        when no fit was made).
    n_pixels : int
        Quiet estimation pixels of the last fit (the constant's when none).
    iterations : int
        Rounds of re-masking detections at ``threshold * k(x)`` (the constant's included).
    reason : str
        Why the model is constant ("" when varying).
    """

    constant: NoiseScale
    a: float
    b: float = 0.0
    density: np.ndarray | None = None
    knots_d: np.ndarray = field(default_factory=lambda: np.zeros(0))
    knots_k2: np.ndarray = field(default_factory=lambda: np.zeros(0))
    varying: bool = False
    significance: float = 0.0
    n_pixels: int = 0
    iterations: int = 0
    reason: str = ""

    @classmethod
    def from_constant(cls, constant: NoiseScale, reason: str = "") -> NoiseModel:
        """The one-factor model (k = ``constant.scale`` everywhere)."""
        return cls(
            constant=constant,
            a=constant.scale**2,
            n_pixels=constant.n_pixels,
            iterations=constant.iterations,
            reason=reason,
        )

    def k_of(self, density: np.ndarray | float) -> np.ndarray:
        """k at density values (any shape); the constant factor for a constant model."""
        d = np.asarray(density, dtype=np.float64)
        if not self.varying:
            return np.full(d.shape, float(self.constant.scale))
        return np.sqrt(np.interp(d, self.knots_d, self.knots_k2))

    def map(self, shape: tuple[int, int] | None = None) -> np.ndarray:
        """The factor k(x), shape (H, W): the density's, or `shape` for a constant model."""
        if self.varying and self.density is not None:
            return self.k_of(self.density)
        if shape is None:
            if self.density is None:
                msg = "a constant NoiseModel without a density map needs a shape"
                raise ValueError(msg)
            shape = self.density.shape
        return np.full(shape, float(self.constant.scale))

    def summary(self, data: np.ndarray | None = None) -> dict[str, float | int | bool]:
        """Per-frame numbers for ``visits.parquet``: ``noiseScale`` (median of k over the
        `data` pixels, (H, W) bool, all when None), ``noiseScaleMin`` / ``noiseScaleMax`` (1st
        and 99th percentiles of k there), ``noiseScaleConstant`` (the one-factor estimate),
        ``noiseA``, ``noiseB`` (the line k^2 = a + b D), ``noiseVarying``,
        ``noiseSignificance`` (dense-minus-sparse contrast, standard errors; also kept when the
        model fell back), ``noise_scale_pixels``."""
        if self.varying and self.density is not None:
            k = self.map()
            vals = k[data] if data is not None and data.any() else k.ravel()
            med, lo, hi = (float(v) for v in np.percentile(vals, [50, 1, 99]))
        else:
            med = lo = hi = float(self.constant.scale)
        return {
            "noiseScale": med,
            "noiseScaleMin": lo,
            "noiseScaleMax": hi,
            "noiseScaleConstant": float(self.constant.scale),
            "noiseA": float(self.a),
            "noiseB": float(self.b),
            "noiseVarying": bool(self.varying),
            "noiseSignificance": float(self.significance),
            "noise_scale_pixels": int(self.n_pixels),
        }


@dataclass(frozen=True)
class _BinFit:
    a: float
    b: float
    significance: float
    knots_d: np.ndarray
    knots_k2: np.ndarray


def _fit_bins(
    vals: np.ndarray, dens: np.ndarray, *, corr_area: float, max_bins: int
) -> _BinFit | str:
    """The SNR map's robust variance in quantile bins of density, and a weighted line.

    Bin i (equal counts, at least `MIN_BIN_PIXELS`): s_i = mad_sigma of its values, at the
    bin's median density. Weight 1 / var(s_i^2), var(s_i^2) = 2 s_i^4 corr_area / (0.37 n_i) (the MAD's
    efficiency, and n_i / corr_area independent samples of the PSF-correlated map). The
    significance is the denser half of the bins' mean s^2 minus the sparser half's, in
    standard errors. Returns the fit, or the reason there is none.
    """
    n_bins = int(min(max_bins, vals.size // MIN_BIN_PIXELS))
    if n_bins < 3:
        return f"{vals.size} quiet pixels: fewer than 3 density bins of {MIN_BIN_PIXELS}"
    order = np.argsort(dens, kind="stable")
    d_mid, s2, err2 = [], [], []
    for chunk in np.array_split(order, n_bins):  # equal counts: quantile bins
        n = int(chunk.size)
        s = mad_sigma(vals[chunk])
        d_mid.append(float(np.median(dens[chunk])))
        s2.append(s * s)
        err2.append(_MAD_VARIANCE_FACTOR * 2 * s**4 * max(corr_area, 1.0) / n)
    x, y, w = np.asarray(d_mid), np.asarray(s2), 1.0 / np.asarray(err2)
    if len(y) < 3 or np.any(np.diff(x) <= 0):
        return "fewer than 3 density bins with distinct densities"
    design = np.stack([np.ones_like(x), x], axis=1)
    a, b = np.linalg.solve(design.T @ (design * w[:, None]), design.T @ (w * y))
    # Does the noise rise with density? The denser half of the bins against the sparser half
    # (weighted means of s^2), in standard errors: no shape assumed (the SAAO curve is flat,
    # then steep, then flattens, which a line's chi^2 would count against it).
    half = len(y) // 2
    lo, hi = slice(0, half), slice(len(y) - half, len(y))
    contrast = np.average(y[hi], weights=w[hi]) - np.average(y[lo], weights=w[lo])
    error = np.sqrt(1.0 / w[hi].sum() + 1.0 / w[lo].sum())
    return _BinFit(
        a=float(a),
        b=float(b),
        significance=float(contrast / error),
        knots_d=x,
        knots_k2=isotonic_regression(y, weights=w).x,
    )


def estimate_noise_model(
    snr: np.ndarray,
    usable: np.ndarray,
    density: np.ndarray,
    *,
    threshold: float,
    grow: int,
    fwhm: float,
    max_bins: int = 10,
    max_iterations: int = 10,
    tolerance: float = 1e-3,
    model_tolerance: float = 5e-3,
) -> NoiseModel:
    """k(x) as a function of the local density D(x) from the SNR map at quiet pixels, else the
    constant factor.

    Starts from `estimate_noise_scale` (same arguments, `tolerance` its); then, until k moves
    by less than `model_tolerance` (relative, at ten quantiles of D; each bin's k is itself
    uncertain by a few per cent): detections are |snr| > threshold * k(x),
    grown by `grow` px; the quiet usable pixels are cut in `max_bins` quantile bins of D (at
    least `MIN_BIN_PIXELS` each) and the binned curve and line fitted (`_fit_bins`). The
    density model is used when the denser half of the bins is noisier than the sparser half
    by more than `MIN_SIGNIFICANCE` standard errors; otherwise the constant factor is returned
    (``varying`` False, ``reason`` says why, ``significance`` kept).

    Parameters
    ----------
    snr : ndarray of shape (H, W)
        Matched-filter SNR map before rescaling.
    usable : ndarray of shape (H, W), bool
        Pixels that may be used (the estimation cells, data, inside the border).
    density : ndarray of shape (H, W)
        D from `density_map`.
    threshold, grow
        As `estimate_noise_scale`.
    fwhm : float
        PSF FWHM, pixels (the SNR map's correlation area, 2 pi (FWHM / 2.355)^2, for the
        bins' weights).

    Returns
    -------
    NoiseModel
    """
    constant = estimate_noise_scale(
        snr, usable, threshold=threshold, grow=grow, max_iterations=max_iterations
    )
    if constant.n_pixels < MIN_PIXELS or constant.scale == 1.0:
        return NoiseModel.from_constant(constant, "too few quiet pixels")
    corr_area = 2 * np.pi * (fwhm / 2.3548) ** 2
    above = np.abs(snr)
    kmap = np.full(snr.shape, constant.scale)
    model = NoiseModel.from_constant(constant)
    probe: np.ndarray | None = None
    k_old = np.zeros(0)
    for it in range(1, max_iterations + 1):
        near = ndimage.binary_dilation(above > threshold * kmap, iterations=max(grow, 1))
        quiet = usable & ~near
        fit = _fit_bins(snr[quiet], density[quiet], corr_area=corr_area, max_bins=max_bins)
        if isinstance(fit, str):
            return NoiseModel.from_constant(constant, fit)
        if not fit.significance > MIN_SIGNIFICANCE:
            reason = (
                f"noise rises with density at {fit.significance:.1f} sigma "
                f"(needs > {MIN_SIGNIFICANCE:g})"
            )
            return replace(
                NoiseModel.from_constant(constant, reason), significance=fit.significance
            )
        model = NoiseModel(
            constant=constant,
            a=fit.a,
            b=fit.b,
            density=density,
            knots_d=fit.knots_d,
            knots_k2=fit.knots_k2,
            varying=True,
            significance=fit.significance,
            n_pixels=int(quiet.sum()),
            iterations=constant.iterations + it,
        )
        if probe is None:
            probe = np.quantile(density[quiet], np.linspace(0.05, 0.95, 10))
            k_old = np.full(probe.shape, constant.scale)
        k_new = model.k_of(probe)
        kmap = model.map()
        if np.all(np.abs(k_new - k_old) <= model_tolerance * k_old):
            break
        k_old = k_new
    return model


def pair_differences(
    values: np.ndarray, mask: np.ndarray, *, min_separation: float, max_pairs: int = 20_000
) -> np.ndarray:
    """(v_i - v_j) / sqrt(2) for pairs of `mask` pixels at least `min_separation` px apart.

    For pixels far enough apart to be independent, with a common mean, these have the pixels'
    std whatever that mean is: robust std of them (centred on 0) measures the noise of a few
    PSF-correlated clumps without the bias of centring on their own median, and without
    counting a common offset as noise.

    Parameters
    ----------
    values : ndarray of shape (H, W)
    mask : ndarray of shape (H, W), bool
    min_separation : float
        Pixels; about 3 FWHM for an SNR map (its correlation length is about 1.4 FWHM).
    max_pairs : int
        At most this many pairs: all when fewer, else an evenly spaced subset of the index
        pairs (deterministic).

    Returns
    -------
    ndarray of shape (n,), float64
    """
    iy, ix = np.nonzero(mask)
    n = iy.size
    if n < 2:
        return np.zeros(0)
    i, j = np.triu_indices(n, k=1) if n <= 2_000 else _spread_pairs(n, 50 * max_pairs)
    far = np.hypot(iy[i] - iy[j], ix[i] - ix[j]) >= min_separation
    i, j = i[far], j[far]
    if i.size > max_pairs:
        keep = np.linspace(0, i.size - 1, max_pairs).astype(int)
        i, j = i[keep], j[keep]
    v = values[iy, ix].astype(np.float64)
    return (v[i] - v[j]) / np.sqrt(2.0)


def _spread_pairs(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """m index pairs (i < j) of n items, spread evenly over all n (n - 1) / 2 of them."""
    total = n * (n - 1) // 2
    k = np.unique(np.linspace(0, total - 1, min(m, total)).astype(np.int64))
    # Row i of the upper triangle starts at i n - i (i + 1) / 2.
    i = (n - 0.5 - np.sqrt((n - 0.5) ** 2 - 2.0 * k)).astype(np.int64)
    i = np.clip(i, 0, n - 2)
    start = i * n - i * (i + 1) // 2
    fix = k < start
    i[fix] -= 1
    start = i * n - i * (i + 1) // 2
    j = k - start + i + 1
    over = j >= n
    i[over] += 1
    start = i * n - i * (i + 1) // 2
    j = k - start + i + 1
    return i, j
