"""Artifacts: saturation with bleed trails, NaN rows/columns, calibrated noise patches."""

from __future__ import annotations

import numpy as np

from realbogus.sim import artifacts as art
from realbogus.sim.config import ArtifactConfig
from realbogus.sim.detect import snr_map


def test_saturation_clips_and_bleeds_along_columns() -> None:
    """Pixels above the full well are clipped; the excess charge extends the column, not the row."""
    image = np.zeros((101, 101))
    image[50, 50] = 10.0
    image[50, 49] = image[50, 51] = 3.0
    log = art.ArtifactLog()
    mask = art.saturate(image, 1.0, bleed=True, log=log)
    assert image.max() == 1.0
    column = np.flatnonzero(image[:, 50] == 1.0)
    assert len(column) >= 9 and column.min() < 50 < column.max()  # ~ (10 - 1) / 1 pixels of bleed
    assert image[50, 40] == 0 and mask[:, 50].sum() == len(column)
    assert log.kind == ["saturated_star"]


def test_nan_rowcol_and_log() -> None:
    """NaN segments are whole rows or columns from their start to the image edge, and logged."""
    image = np.zeros((64, 80))
    log = art.ArtifactLog()
    art.add_nan_rowcol(image, rng=np.random.default_rng(3), log=log, max_segments=3)
    nan = np.isnan(image)
    assert nan.any() and len(log.kind) >= 1
    full_col = nan.all(axis=0).any() or (nan[-1].any() and nan.sum(axis=0).max() > 0)
    full_row = nan.all(axis=1).any() or (nan[:, -1].any() and nan.sum(axis=1).max() > 0)
    assert full_col or full_row


def test_noise_patch_rms_on_the_snr_map() -> None:
    """A patch with noise_patch_amp = (1, 1) raises the SNR-map rms at its centre to ~sqrt(2)."""
    rng = np.random.default_rng(7)
    sky = 10.0
    fwhm = 4.0
    image = rng.standard_normal((600, 600)) * sky
    cfg = ArtifactConfig(noise_patch_amp=(1.0, 1.0))
    log = art.ArtifactLog()
    art.add_noise_patches(
        image, 1, fwhm_px=fwhm, sky_sigma=sky, cfg=cfg, rng=np.random.default_rng(9), log=log
    )
    x0, y0 = log.seg[0][:2]
    r = log.radius[0]
    y, x = np.mgrid[-15:16, -15:16]
    sig = fwhm / 2.355
    psf = np.exp(-(x**2 + y**2) / (2 * sig**2))
    snr = snr_map(image, np.full(image.shape, sky**2), psf / psf.sum())
    yy, xx = np.mgrid[0:600, 0:600]
    inner = (np.hypot(xx - x0, yy - y0) < 0.3 * r) & (xx > 20) & (xx < 580) & (yy > 20) & (yy < 580)
    outside = np.hypot(xx - x0, yy - y0) > r + 20
    assert inner.sum() > 500
    assert 1.2 < snr[inner].std() < 1.65
    assert 0.93 < snr[outside & (xx > 20) & (xx < 580) & (yy > 20) & (yy < 580)].std() < 1.07


def test_crosstalk_copies_each_saturated_star_into_the_other_three_amplifiers() -> None:
    """A saturated blob at (x, y) leaves ghosts of c x its flux at the three mirrored positions."""
    image = np.full((100, 120), 5.0)  # a flat background
    yy, xx = np.mgrid[:100, :120]
    image += 50.0 * np.exp(-((xx - 20) ** 2 + (yy - 30) ** 2) / 4.0)
    before = image.copy()
    saturated = art.saturate(image, 30.0, bleed=True)
    clipped = image.copy()
    log = art.ArtifactLog()
    art.add_crosstalk(
        image,
        saturated,
        background=5.0,
        coefficient=(1e-2, 1e-2),
        margin=4,
        rng=np.random.default_rng(0),
        log=log,
    )
    assert log.kind == ["crosstalk"] * 3
    centres = sorted((round(y), round(x)) for x, y, *_ in log.seg)
    assert centres == sorted([(30, 120 - 1 - 20), (100 - 1 - 30, 20), (100 - 1 - 30, 120 - 1 - 20)])
    ghost = image - clipped
    star = np.clip(clipped - 5.0, 0, None)[30 - 8 : 30 + 9, 20 - 8 : 20 + 9].sum()
    for y, x in centres:
        assert abs(ghost[y - 8 : y + 9, x - 8 : x + 9].sum() - 1e-2 * star) < 1e-3 * star
    assert np.array_equal(image[25:36, 15:26], clipped[25:36, 15:26]) and (before != clipped).any()
    assert ghost[50, 60] == 0  # nothing between the ghosts
