"""The shared DIA chain (`realbogus.sim.dia`): the simulation through it is unchanged, and it
runs on arrays with image PSFs (the path `realbogus.injection` takes)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from realbogus.errors import InputError
from realbogus.sim.config import SubtractionConfig, load_config
from realbogus.sim.dia import TABLE_COLUMNS, ImagePSF, run_dia
from realbogus.sim.field import simulate_field

#: A tiny field (208 px) with every ingredient; simulated in ~3 s.
TINY = {
    "image_size": 208,
    "epochs_per_field": 2,
    "scene": {"n_stars": 40, "n_galaxies": 15, "n_bright_stars": 0.5},
    "injection": {"n_fakes": 8, "n_asteroids": 1.0, "n_transients": 1.0},
    "artifacts": {"n_cosmic_rays": 3.0, "n_hot_pixels": 2.0, "p_nan_rowcol": 0.8},
    "subtraction": {"n_candidates": 30},
}

#: Digest of the tiny field's tables and stamps made by the code *before* the chain was moved
#: into `sim/dia.py` (commit 1a51b82). Floats are rounded to 5 significant digits so that a
#: different FFT/BLAS build does not trip it while any change of logic does. If you change the
#: simulation on purpose, regenerate it with `_digest` and say so in the commit.
BEFORE_SPLIT = {"al": "92a5f5050730bd71", "zogy": "fbf2d71cdfabf557"}


def _digest(frames: list[pd.DataFrame], stamps: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for frame in frames:
        for name in frame.columns:
            col = frame[name].to_numpy()
            if col.dtype.kind == "f":
                col = np.array([f"{v:.5g}" for v in col], dtype=object)
            h.update(name.encode())
            h.update("|".join(map(str, col.tolist())).encode())
    for s in stamps:
        h.update(f"{float(np.abs(s).sum()):.5g},{float(s.sum()):.4g}".encode())
    return h.hexdigest()[:16]


def _tiny_digest(method: str) -> str:
    cfg = load_config({**TINY, "subtraction": {**TINY["subtraction"], "method": method}})
    results = simulate_field(cfg, field=0, seed=11, n_epochs=2, first_visit=0)
    frames = [r.table for r in results] + [r.truth for r in results]
    frames += [pd.DataFrame([r.metrics]) for r in results]
    return _digest(frames, [r.stamps.data for r in results])


@pytest.mark.parametrize("method", ["al", "zogy"])
def test_simulation_unchanged_by_the_split(method: str) -> None:
    """Tables, truth, visit metrics and stamps are those of the pre-split code."""
    assert _tiny_digest(method) == BEFORE_SPLIT[method]


def test_tiny_field_uses_both_methods() -> None:
    """The digests above cover an A&L subtraction and a ZOGY one (no silent fallback)."""
    for method in ("al", "zogy"):
        cfg = load_config({**TINY, "subtraction": {**TINY["subtraction"], "method": method}})
        results = simulate_field(cfg, field=0, seed=11, n_epochs=1, first_visit=0)
        assert results[0].metrics["subtraction"] == method


def _gaussian(k: int, sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[:k, :k] - k // 2
    g = np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    return g / g.sum()


def test_run_dia_on_arrays_with_image_psfs(rng: np.random.Generator) -> None:
    """A point source added to the science only is found at its place with its flux."""
    from scipy import signal

    h = w = 160
    sigma_s, sigma_t = 2.0, 1.4
    psf_s, psf_t = _gaussian(25, sigma_s), _gaussian(25, sigma_t)
    stars = rng.uniform(20, 140, (40, 2))
    scene = np.zeros((h, w))
    scene[stars[:, 1].astype(int), stars[:, 0].astype(int)] = rng.uniform(2e3, 2e4, 40)
    noise = 5.0
    sci = signal.fftconvolve(scene, psf_s, mode="same") + rng.normal(0, noise, (h, w))
    tpl = signal.fftconvolve(scene, psf_t, mode="same") + rng.normal(0, noise / 2, (h, w))
    flux = 1500.0
    sci[100 - 12 : 100 + 13, 60 - 12 : 60 + 13] += flux * psf_s
    no = np.zeros((h, w), bool)
    dia = run_dia(
        sci,
        tpl,
        np.full((h, w), noise**2),
        np.full((h, w), (noise / 2) ** 2),
        ImagePSF(psf_s, fwhm=2.355 * sigma_s, shape=(h, w)),
        ImagePSF(psf_t, fwhm=2.355 * sigma_t, shape=(h, w)),
        nan_science=no,
        nan_template=no,
        saturated=no,
        kernel_x=stars[:, 0].astype(int),
        kernel_y=stars[:, 1].astype(int),
        config=SubtractionConfig(),
        stamp_size=31,
    )
    d = np.hypot(dia.det["x"] - 60, dia.det["y"] - 100)
    j = int(np.argmin(d))
    assert d[j] < 0.5 and not dia.det["isNegative"][j]
    assert dia.measurements["psfFlux"][j] == pytest.approx(flux, rel=0.1)
    assert dia.stamps.data.shape == (len(d), 3, 31, 31)
    assert set(dia.measurements) <= set(TABLE_COLUMNS)


def test_image_psf_checks_its_array() -> None:
    with pytest.raises(InputError, match="odd side"):
        ImagePSF(np.ones((4, 4)), fwhm=2.0, shape=(10, 10))
    psf = ImagePSF(np.ones((5, 5)), fwhm=2.0, shape=(10, 10))
    assert psf.image(0, 0, size=9).sum() == pytest.approx(1.0)
    assert psf.image(0, 0, size=3).shape == (3, 3)
