"""`realbogus.injection.noise`: the SNR map's noise factor, constant or following the local
source density, fitted on one checkerboard colour and checked on the other."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from realbogus.errors import InputError
from realbogus.injection.noise import (
    MIN_SIGNIFICANCE,
    NoiseModel,
    NoiseScale,
    check_cells,
    density_map,
    estimate_noise_model,
    estimate_noise_scale,
    pair_differences,
)
from realbogus.numeric import mad_sigma
from realbogus.sim.detect import snr_map

SHAPE, FWHM, GROW = (448, 448), 3.0, 7


def _correlated(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Unit per-pixel variance, correlated over 2 x 2 px (the SNR map's std is about 2)."""
    w = rng.standard_normal((shape[0] + 1, shape[1] + 1))
    return ndimage.convolve(w, np.full((2, 2), 0.5))[1:, 1:]


def _psf(fwhm: float = FWHM, k: int = 21) -> np.ndarray:
    r = np.arange(k) - k // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * (fwhm / 2.3548) ** 2))
    return g / g.sum()


def _density() -> np.ndarray:
    """A known density: 0 on the left to 20 on the right (smooth on the PSF scale)."""
    return np.broadcast_to(np.linspace(0.0, 20.0, SHAPE[1]), SHAPE).copy()


def _frame(seed: int, amplitude: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """SNR map of correlated noise times `amplitude`, with 40 bright sources to mask (a unit
    variance plane: the map's noise is what the plane does not hold); and the usable pixels
    (inside a 16 px border)."""
    rng = np.random.default_rng(seed)
    image = _correlated(rng, SHAPE) * amplitude
    psf = _psf()
    for x, y in rng.uniform(30, SHAPE[0] - 30, (40, 2)).astype(int):
        image[y - 10 : y + 11, x - 10 : x + 11] += 400 * psf
    usable = np.zeros(SHAPE, bool)
    usable[16:-16, 16:-16] = True
    return snr_map(image, np.ones(SHAPE), psf), usable


@pytest.fixture(scope="module")
def uniform_factor() -> float:
    """The SNR map's factor for amplitude 1 (correlated noise alone), on a separate frame."""
    snr, usable = _frame(99, 1.0)
    return estimate_noise_scale(snr, usable, threshold=5.0, grow=GROW).scale


def test_density_model_recovers_a_noise_that_rises_with_density(uniform_factor: float) -> None:
    """Noise amplitude sqrt(1 + 0.2 D): the fitted k(x) is the true one within 10 % (3 % in
    the median), and on the check cells (never fitted) the rescaled SNR map's std is within
    0.1 of 1 at low and at high density alike, where one factor per frame misses both."""
    dens = _density()
    truth = uniform_factor * np.sqrt(1.0 + 0.2 * dens)
    snr, usable = _frame(1, np.sqrt(1.0 + 0.2 * dens))
    check = check_cells(SHAPE, FWHM)
    model = estimate_noise_model(snr, usable & ~check, dens, threshold=5.0, grow=GROW, fwhm=FWHM)
    assert model.varying and model.reason == ""
    assert model.b > 0 and model.significance > MIN_SIGNIFICANCE
    assert model.iterations >= 2
    assert np.all(np.diff(model.knots_k2) >= 0)
    kmap = model.map()
    err = np.abs(kmap / truth - 1)[usable]
    assert np.median(err) < 0.03
    assert np.percentile(err, 99) < 0.1
    # The line through the bins: k^2 = c^2 (1 + 0.2 D) (its b about 1.6 sigma off on this seed).
    assert model.b / model.a == pytest.approx(0.2, rel=0.3)
    assert model.a == pytest.approx(uniform_factor**2, rel=0.1)
    # Check cells, away from the sources, in the low and high thirds of the density.
    quiet = usable & check & ~ndimage.binary_dilation(np.abs(snr) > 5 * kmap, iterations=GROW)
    const = model.constant.scale
    for region in (dens < 6.0, dens > 14.0):
        sel = quiet & region
        assert sel.sum() > 5_000
        assert mad_sigma(snr[sel] / kmap[sel]) == pytest.approx(1.0, abs=0.1)
    low = mad_sigma(snr[quiet & (dens < 6.0)] / const)
    high = mad_sigma(snr[quiet & (dens > 14.0)] / const)
    assert low < 0.85 and high > 1.15  # one factor: too high in the troughs, too low among stars
    # Per-frame numbers: the median of k over the data, its spread, the fit.
    s = model.summary(usable)
    assert s["noiseVarying"] and s["noiseScaleMin"] < s["noiseScale"] < s["noiseScaleMax"]
    assert s["noiseScale"] == pytest.approx(np.median(kmap[usable]))
    assert s["noiseScaleConstant"] == const and s["noiseB"] == model.b


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_uniform_frame_gives_back_the_constant_factor(seed: int) -> None:
    """Noise that does not follow the density: the slope is not significant and the model is
    the constant factor of `estimate_noise_scale`, bit for bit."""
    snr, usable = _frame(seed, 1.0)
    est = usable & ~check_cells(SHAPE, FWHM)
    model = estimate_noise_model(snr, est, _density(), threshold=5.0, grow=GROW, fwhm=FWHM)
    constant = estimate_noise_scale(snr, est, threshold=5.0, grow=GROW)
    assert not model.varying and "sigma" in model.reason
    assert model.constant == constant
    assert np.all(model.map(SHAPE) == constant.scale)
    assert model.summary()["noiseScale"] == constant.scale


def test_too_few_pixels_or_bins_fall_back() -> None:
    snr, _ = _frame(5, 1.0)
    few = np.zeros(SHAPE, bool)
    few[100:110, 100:110] = True
    model = estimate_noise_model(snr, few, _density(), threshold=5.0, grow=GROW, fwhm=FWHM)
    assert not model.varying and model.constant.scale == 1.0
    assert np.all(model.map(SHAPE) == 1.0)
    # Enough for the constant (784 >= 500) but not for 3 bins of 300.
    some = np.zeros(SHAPE, bool)
    some[200:228, 100:128] = True
    model = estimate_noise_model(snr, some, _density(), threshold=5.0, grow=GROW, fwhm=FWHM)
    assert not model.varying and "bins" in model.reason and model.constant.scale > 1.5


def test_density_map_is_the_smoothed_template_variance_over_its_median() -> None:
    """D follows the variance plane (the sources' photon noise), not the template's noise."""
    variance = np.full(SHAPE, 4.0)
    variance[:, 300:] = 20.0  # a denser region: 5 x the variance
    bad = np.zeros(SHAPE, bool)
    bad[:20] = True
    variance[bad] = np.inf
    d = density_map(variance, bad, FWHM)
    assert d.shape == SHAPE and np.all(np.isfinite(d))
    assert np.median(d[100:, 320:]) == pytest.approx(5.0)
    assert np.median(d[100:, :250]) == pytest.approx(1.0)
    assert np.median(d[:15, :250]) == pytest.approx(1.0, abs=0.01)  # no data: the median


def test_constant_model_needs_a_shape() -> None:
    model = NoiseModel.from_constant(NoiseScale(scale=1.7, n_pixels=900, iterations=3))
    assert model.map((4, 5)).shape == (4, 5) and model.summary()["noiseScale"] == 1.7
    with pytest.raises(ValueError, match="shape"):
        model.map()


def test_make_difference_takes_a_noise_scale_map() -> None:
    """run_dia / make_difference scale the variance plane pixel by pixel with an (H, W) map;
    a map of the wrong shape or not positive is refused."""
    from realbogus.sim.config import SubtractionConfig
    from realbogus.sim.dia import ImagePSF, make_difference

    shape = (96, 96)
    rng = np.random.default_rng(4)
    psf = ImagePSF(_psf(), fwhm=FWHM, shape=shape)
    sci, tpl = rng.normal(0, 1, shape), rng.normal(0, 1, shape)
    ones, no = np.ones(shape), np.zeros(shape, bool)
    kw = {
        "nan_science": no,
        "nan_template": no,
        "kernel_x": np.zeros(0),
        "kernel_y": np.zeros(0),
        "config": SubtractionConfig(method="zogy"),
    }
    base = make_difference(sci, tpl, ones, ones, psf, psf, **kw)
    k = np.where(np.arange(96)[None, :] < 48, 1.0, 2.0) * np.ones(shape)
    scaled = make_difference(sci, tpl, ones, ones, psf, psf, noise_scale=k, **kw)
    assert np.allclose(scaled.subtraction.variance, base.subtraction.variance * k**2)
    assert scaled.noise_scale == pytest.approx(1.5)
    with pytest.raises(InputError, match="shape"):
        make_difference(sci, tpl, ones, ones, psf, psf, noise_scale=k[:10], **kw)
    with pytest.raises(InputError, match="positive"):
        make_difference(sci, tpl, ones, ones, psf, psf, noise_scale=k * 0, **kw)


def test_pair_differences_measure_few_clumps_without_centring_bias() -> None:
    """Unit-variance PSF-correlated noise with a common offset of -0.8, seen through five
    small clumps per frame (as the SAAO troughs between stars): each frame's robust std about
    its own median reads low, pooled about 0 it reads high (the offset), while the pooled
    pair differences of far-apart pixels give the std."""
    rng = np.random.default_rng(11)
    psf = _psf(3.0)
    shape = (160, 160)
    yy, xx = np.indices(shape)
    own, zero, pairs = [], [], []
    for _ in range(60):
        white = rng.standard_normal(shape)
        snr = ndimage.convolve(white, psf / np.sqrt((psf**2).sum()), mode="wrap") - 0.8
        mask = np.zeros(shape, bool)
        for cx, cy in rng.uniform(20, 140, (5, 2)):
            mask |= np.hypot(xx - cx, yy - cy) <= 2.5
        vals = snr[mask]
        own.append(mad_sigma(vals))
        zero.append(vals)
        pairs.append(pair_differences(snr, mask, min_separation=9.0))
        assert pairs[-1].size > 0
    assert np.median(own) < 0.92  # 0.87 on this seed
    assert mad_sigma(np.concatenate(zero), 0.0) > 1.15
    assert mad_sigma(np.concatenate(pairs), 0.0) == pytest.approx(1.0, abs=0.07)
    # Pairs are far apart, and capped.
    mask = np.ones((60, 60), bool)
    out = pair_differences(np.zeros((60, 60)), mask, min_separation=9.0, max_pairs=500)
    assert out.size == 500 and np.all(out == 0)
