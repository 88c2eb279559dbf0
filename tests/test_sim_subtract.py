"""Subtraction (A&L + decorrelation, ZOGY), the SNR map, detection and forced photometry."""

from __future__ import annotations

import numpy as np
import pytest

from realbogus.errors import InputError
from realbogus.sim.detect import detect, forced_psf_flux, snr_map
from realbogus.sim.psf import PSFModel, add_point_sources
from realbogus.sim.subtract import al_basis, decorrelation_kernel, subtract_al, subtract_zogy

SIZE = 256
SKY_SIGMA = 10.0


def _psf(profile: str, fwhm: float, beta: float = 3.5, g1: float = 0.0) -> PSFModel:
    return PSFModel(
        profile=profile,
        fwhm=fwhm,
        beta=beta,
        g1=g1,
        g2=0.0,
        grad_fwhm=(0.0, 0.0),
        grad_g=(0.0, 0.0, 0.0, 0.0),
        shift=(0.0, 0.0),
        shape=(SIZE, SIZE),
        pixel_scale=0.2,
    )


def _stars(rng: np.random.Generator, n: int = 40):
    """Star positions on a loose grid (isolated) and fluxes giving peak SNR ~20-300."""
    g = np.linspace(20, SIZE - 21, 7)
    xx, yy = np.meshgrid(g, g)
    x = xx.ravel()[:n] + rng.uniform(-2, 2, n)
    y = yy.ravel()[:n] + rng.uniform(-2, 2, n)
    flux = rng.uniform(3e3, 3e4, n)
    return x, y, flux


def _pair(rng: np.random.Generator, *, science_extra=None, template_extra=None):
    """Science (Kolmogorov 1.0") and template (Moffat 0.7", 4x deeper) of the same stars."""
    psf_s, psf_t = _psf("kolmogorov", 1.0, g1=0.03), _psf("moffat", 0.7)
    x, y, flux = _stars(rng)
    sci = np.zeros((SIZE, SIZE))
    tpl = np.zeros((SIZE, SIZE))
    add_point_sources(sci, psf_s, x, y, flux, sky_sigma=SKY_SIGMA)
    add_point_sources(tpl, psf_t, x, y, flux, sky_sigma=SKY_SIGMA)
    if science_extra is not None:
        add_point_sources(sci, psf_s, *science_extra, sky_sigma=SKY_SIGMA)
    if template_extra is not None:
        add_point_sources(tpl, psf_t, *template_extra, sky_sigma=SKY_SIGMA)
    var_s = SKY_SIGMA**2 + 0.5 * np.maximum(sci, 0)
    var_t = (SKY_SIGMA / 2) ** 2 + 0.125 * np.maximum(tpl, 0)
    sci = sci + rng.standard_normal(sci.shape) * np.sqrt(var_s)
    tpl = tpl + rng.standard_normal(tpl.shape) * np.sqrt(var_t)
    return sci, tpl, var_s, var_t, psf_s, psf_t, x, y


def _diff_psf(result, psf_s, psf_t, size=31):
    c = (SIZE - 1) / 2
    if result.psf_is_full:
        return result.psf
    from scipy import signal

    base = psf_s if result.convolved == "template" else psf_t
    return signal.fftconvolve(base.image(c, c, size=size), result.psf, mode="same")


def _subtract(method, sci, tpl, var_s, var_t, psf_s, psf_t, x, y):
    if method == "al":
        return subtract_al(
            sci, tpl, var_s, var_t, np.round(x), np.round(y), fwhm_science=5.0, fwhm_template=3.5
        )
    c = (SIZE - 1) / 2
    return subtract_zogy(
        sci, tpl, var_s, var_t, psf_s.image(c, c, size=31), psf_t.image(c, c, size=31)
    )


@pytest.mark.parametrize("method", ["al", "zogy"])
def test_psf_only_difference_subtracts_to_noise(method: str) -> None:
    """Images that differ only in PSF (and noise) leave a difference consistent with noise."""
    rng = np.random.default_rng(11)
    sci, tpl, var_s, var_t, psf_s, psf_t, x, y = _pair(rng)
    result = _subtract(method, sci, tpl, var_s, var_t, psf_s, psf_t, x, y)
    inner = (slice(20, -20), slice(20, -20))
    pull = (result.difference / np.sqrt(result.variance))[inner]
    robust = 1.4826 * np.median(np.abs(pull - np.median(pull)))
    assert 0.85 < robust < 1.15, f"{method}: robust std of difference/sigma = {robust:.3f}"
    snr = snr_map(result.difference, result.variance, _diff_psf(result, psf_s, psf_t))
    s = snr[inner]
    assert 0.9 < 1.4826 * np.median(np.abs(s - np.median(s))) < 1.1
    # No star leaves a 5-sigma residual.
    assert np.abs(s).max() < 5.0, (
        f"{method}: max |SNR| {np.abs(s).max():.2f} at a pure-PSF difference"
    )
    if method == "al":
        assert abs(result.kernel_sum - 1.0) < 0.03


@pytest.mark.parametrize("method", ["al", "zogy"])
@pytest.mark.parametrize("sign", [1, -1])
def test_injected_source_recovered_with_flux_and_sign(method: str, sign: int) -> None:
    """A point source added to the science (positive) or template (negative) is detected at its
    position with the right polarity and its PSF flux within 5 % (SNR ~ 60)."""
    rng = np.random.default_rng(12 + sign)
    fx, fy, flux = np.array([131.3]), np.array([97.6]), np.array([4000.0])
    extra = (fx, fy, flux)
    sci, tpl, var_s, var_t, psf_s, psf_t, x, y = _pair(
        rng, science_extra=extra if sign > 0 else None, template_extra=extra if sign < 0 else None
    )
    result = _subtract(method, sci, tpl, var_s, var_t, psf_s, psf_t, x, y)
    pd = _diff_psf(result, psf_s, psf_t)
    snr = snr_map(result.difference, result.variance, pd)
    det = detect(snr, np.zeros(snr.shape, bool), threshold=5.0)
    d = np.hypot(det["x"] - fx[0], det["y"] - fy[0])
    assert d.size and d.min() < 1.0, "injected source not detected within 1 px"
    j = int(np.argmin(d))
    assert bool(det["isNegative"][j]) == (sign < 0)
    # Forced PSF flux at the true position with the difference-image PSF.
    from realbogus.sim.detect import shift_stamps

    k = 31
    stamp = np.zeros((1, k, k))
    stamp[0] = pd / pd.sum() if pd.shape[0] == k else pd[:k, :k]
    ix, iy = np.floor(fx + 0.5), np.floor(fy + 0.5)
    model = shift_stamps(stamp, fx - ix, fy - iy)
    f, err = forced_psf_flux(result.difference, result.variance, fx, fy, model)
    scale = result.kernel_sum if (sign < 0 and result.convolved == "template") else 1.0
    assert abs(f[0] / (sign * flux[0] * scale) - 1) < 0.05, (
        f"flux {f[0]:.0f} vs {sign * flux[0]:.0f}"
    )
    assert 0 < err[0] < 0.05 * flux[0]


def test_al_with_a_given_kernel_reuses_it() -> None:
    """A kernel from an earlier fit subtracts the same images identically; on images with an
    added template-only source it is not refitted (the sum stays), so the source keeps its
    flux scale."""
    rng = np.random.default_rng(11)
    sci, tpl, var_s, var_t, psf_s, psf_t, x, y = _pair(rng)
    first = _subtract("al", sci, tpl, var_s, var_t, psf_s, psf_t, x, y)
    assert first.kernel is not None and first.kernel.convolved == "template"
    again = subtract_al(
        sci,
        tpl,
        var_s,
        var_t,
        x[:0],
        y[:0],
        fwhm_science=5.0,
        fwhm_template=3.5,
        kernel=first.kernel,
    )
    np.testing.assert_allclose(again.difference, first.difference, rtol=0, atol=1e-9)
    assert again.kernel_sum == first.kernel_sum and again.n_candidates == first.n_candidates
    # A bright source on every kernel candidate of the template only: refitting lowers the
    # kernel sum (the template looks brighter); the given kernel does not move.
    tpl2 = tpl.copy()
    add_point_sources(tpl2, psf_t, x, y, np.full(len(x), 2e4), sky_sigma=SKY_SIGMA)
    refit = _subtract("al", sci, tpl2, var_s, var_t, psf_s, psf_t, x, y)
    kept = subtract_al(
        sci, tpl2, var_s, var_t, x, y, fwhm_science=5.0, fwhm_template=3.5, kernel=first.kernel
    )
    assert kept.kernel_sum == first.kernel_sum
    assert refit.kernel_sum < first.kernel_sum - 0.01


def test_al_basis_sums() -> None:
    """The first basis sums to one and every other to zero (kernel sum = first coefficient)."""
    b = al_basis(1.2, half=9)
    assert b.shape == (27, 19, 19)
    assert b[0].sum() == pytest.approx(1.0)
    assert np.allclose(b[1:].sum(axis=(1, 2)), 0.0, atol=1e-10)


def test_decorrelation_kernel_is_delta_without_template_noise() -> None:
    """With a noiseless convolved image the decorrelation kernel is a delta function."""
    k = np.zeros((11, 11))
    k[5, 5] = 1.0
    k = np.exp(-((np.arange(11) - 5)[:, None] ** 2 + (np.arange(11) - 5)[None] ** 2) / 4.0)
    k /= k.sum()
    phi = decorrelation_kernel(k, 1.0, 0.0, size=11)
    assert phi[5, 5] == pytest.approx(1.0, abs=1e-9)
    phi2 = decorrelation_kernel(k, 1.0, 1.0, size=11)
    assert phi2.sum() == pytest.approx(1.0) and phi2[5, 5] > 1.0  # sharpens to undo K's smoothing


def test_subtraction_input_errors() -> None:
    """Mismatched shapes and too few kernel candidates raise InputError."""
    a = np.zeros((64, 64))
    with pytest.raises(InputError, match="same shape"):
        subtract_al(
            a,
            np.zeros((32, 32)),
            a + 1,
            a + 1,
            np.array([30.0]),
            np.array([30.0]),
            fwhm_science=4,
            fwhm_template=3,
        )
    with pytest.raises(InputError, match="kernel candidates"):
        subtract_al(
            a, a, a + 1, a + 1, np.array([30.0]), np.array([30.0]), fwhm_science=4, fwhm_template=3
        )
