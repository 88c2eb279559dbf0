"""Real exposures in (`realbogus.injection`): registration, PSF, template, inject, on generated
frames with known shifts and PSFs, and on small real cut-outs from ../shared/data/images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _frames import render, star_field, write_frame
from astropy.io import fits
from scipy import ndimage

from realbogus.errors import InputError
from realbogus.injection import (
    build_template,
    measure_psf,
    read_frame,
    read_template,
    register,
    write_template,
)
from realbogus.injection.inject import InjectConfig, inject_frame
from realbogus.injection.noise import MIN_PIXELS, check_cells, estimate_noise_scale
from realbogus.injection.psf import psf_fwhm
from realbogus.injection.register import _seeded
from realbogus.injection.run import inject_dataset
from realbogus.injection.template import prepare
from realbogus.io.dataset import open_dataset
from realbogus.numeric import mad_sigma
from realbogus.sim.detect import snr_map
from realbogus.sim.dia import TABLE_COLUMNS

SIZE = 200


@pytest.fixture(scope="module")
def field() -> np.ndarray:
    return star_field(np.random.default_rng(7), 260, SIZE)


def _frame(tmp_path: Path, field: np.ndarray, name: str, *, fwhm: float, shift, seed: int):
    img = render(field, size=SIZE, fwhm=fwhm, shift=shift, rng=np.random.default_rng(seed))
    return read_frame(write_frame(tmp_path / f"{name}.fits", img))


@pytest.mark.parametrize("shift", [(12.37, -7.81), (-30.6, 21.25)])
def test_registration_recovers_a_known_shift(tmp_path: Path, field: np.ndarray, shift) -> None:
    """Frames rendered with a known sub-pixel shift: recovered within 0.1 px."""
    a = prepare(_frame(tmp_path, field, "a", fwhm=3.5, shift=(0, 0), seed=1))
    b = prepare(_frame(tmp_path, field, "b", fwhm=4.5, shift=shift, seed=2))
    reg = register(a.stars, b.stars, source_image=a.image, target_image=b.image)
    assert reg.method == "stars" and reg.n_matches >= 20
    assert reg.shift[0] == pytest.approx(shift[0], abs=0.1)
    assert reg.shift[1] == pytest.approx(shift[1], abs=0.1)
    assert reg.matrix[0, 0] == pytest.approx(1.0, abs=1e-3)


def test_registration_is_repeatable(tmp_path: Path, field: np.ndarray) -> None:
    """astroalign shuffles its RANSAC candidates with an unseeded generator; `register` seeds
    it: the same frames give the same matrix bit for bit, and numpy is left as it was."""
    import astroalign

    a = prepare(_frame(tmp_path, field, "a", fwhm=3.5, shift=(0, 0), seed=1))
    b = prepare(_frame(tmp_path, field, "b", fwhm=4.5, shift=(5.3, -2.2), seed=2))
    first, second = (
        register(a.stars, b.stars, source_image=a.image, target_image=b.image) for _ in range(2)
    )
    np.testing.assert_array_equal(first.matrix, second.matrix)
    assert astroalign._np is np
    with _seeded(astroalign):
        draws = [astroalign._np.random.default_rng().random() for _ in range(2)]
        assert draws[0] == draws[1] and astroalign._np.pi == np.pi
    assert astroalign._np is np


@pytest.mark.parametrize("fwhm", [3.0, 5.0])
def test_psf_fwhm_is_measured_within_5_percent(tmp_path: Path, fwhm: float) -> None:
    """A frame of 60 stars with a Gaussian PSF: the measured PSF's FWHM is within 5 % of the
    true pixel-integrated PSF's (3.09 / 5.14 px for FWHM 3 / 5, measured the same way)."""
    rng = np.random.default_rng(5)
    stars = np.c_[rng.uniform(-20, 220, 60), rng.uniform(-20, 220, 60), np.zeros(60)]
    stars[:, 2] = np.minimum(3e4 * (1 - rng.random(60)) ** (-1 / 0.8), 1e6)
    img = render(stars, size=SIZE, fwhm=fwhm, rng=np.random.default_rng(3))
    p = prepare(read_frame(write_frame(tmp_path / "p.fits", img)))
    psf = measure_psf(p.image, p.stars)
    one = np.array([[20.0, 20.0, 1e6]])
    exact = render(one, size=41, fwhm=fwhm, sky=0.0, read_noise=0.0, gain=1e9, rng=rng)
    truth = psf_fwhm(exact / exact.sum())
    assert psf.fwhm_px() == pytest.approx(truth, rel=0.05)
    assert psf.array.sum() == pytest.approx(1.0)
    c = psf.array.shape[0] // 2
    assert np.unravel_index(np.argmax(psf.array), psf.array.shape) == (c, c)


def test_psf_refused_without_stars(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    empty = rng.normal(1000, 20, (SIZE, SIZE))
    frame = read_frame(write_frame(tmp_path / "empty.fits", empty))
    p = prepare(frame)
    with pytest.raises(InputError, match="--psf"):
        measure_psf(p.image, p.stars, fwhm_guess=3.0)


def test_frame_without_noise_information_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nogain.fits"
    fits.PrimaryHDU(np.ones((20, 20), np.float32)).writeto(path)
    with pytest.raises(InputError, match="--gain"):
        read_frame(path)


def test_saturated_pixels_are_bad(tmp_path: Path) -> None:
    img = np.full((30, 30), 100.0)
    img[10:13, 10:13] = 60000.0
    frame = read_frame(write_frame(tmp_path / "sat.fits", img))
    assert frame.saturated[11, 11] and frame.bad[9, 11]  # grown by one pixel
    assert np.isnan(frame.image[11, 11]) and not frame.bad[20, 20]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, field: np.ndarray) -> dict:
    """Four frames of one field (shifted, seeing 3-5 px) and a template of the best two."""
    d = tmp_path_factory.mktemp("frames")
    specs = [(3.0, (0.0, 0.0)), (3.2, (5.3, -4.1)), (4.4, (-8.6, 3.7)), (5.0, (10.2, 9.9))]
    paths = []
    for i, (fwhm, shift) in enumerate(specs):
        img = render(field, size=SIZE, fwhm=fwhm, shift=shift, rng=np.random.default_rng(10 + i))
        paths.append(write_frame(d / f"f{i}.fits", img, PFWHM=fwhm))
    frames = [read_frame(p) for p in paths]
    tmpl = build_template(frames, best=2)
    write_template(tmpl, d / "T.fits")
    return {"dir": d, "paths": paths, "template": d / "T.fits", "specs": specs}


def test_template_coadds_the_best_frames(generated: dict) -> None:
    t = read_template(generated["template"])
    assert list(t.frames["name"]) == ["f0", "f1"]
    row = t.frames.iloc[1]
    # f1 was shifted by (5.3, -4.1) from f0: registering f1 onto f0 undoes it.
    assert row["dx"] == pytest.approx(-5.3, abs=0.1) and row["dy"] == pytest.approx(4.1, abs=0.1)
    assert row["scale"] == pytest.approx(1.0, abs=0.03)
    assert t.psf is not None and 2.8 < t.fwhm_px < 3.6
    # Two frames of the same sky noise: the coadd's variance is about half a frame's.
    f0 = read_frame(generated["paths"][0])
    ratio = np.median(t.variance[~t.bad]) / np.median(f0.variance[~f0.bad])
    assert 0.4 < ratio < 0.65
    assert t.image.shape == (SIZE, SIZE)


def test_template_refuses_frames_of_another_field(tmp_path: Path, field: np.ndarray) -> None:
    other = star_field(np.random.default_rng(99), 260, SIZE)
    a = _frame(tmp_path, field, "a", fwhm=3.0, shift=(0, 0), seed=1)
    b = _frame(tmp_path, other, "b", fwhm=3.0, shift=(0, 0), seed=2)
    with pytest.raises(InputError, match="do not overlap"):
        build_template([a, b], best=2)


def test_inject_frame_finds_its_fakes(generated: dict) -> None:
    """Fakes in a generated frame: >= 90 % of SNR >= 6 found, flux within 5 %, both classes."""
    t = read_template(generated["template"])
    frame = read_frame(generated["paths"][3])
    result, psf = inject_frame(
        frame,
        t,
        config=InjectConfig(n_fakes=40, stamp_size=31),
        rng=np.random.default_rng(1),
        visit=3,
        survey="test",
    )
    table, truth = result.table, result.truth
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert psf.fwhm_px() == pytest.approx(5.0, rel=0.05)
    assert len(truth) >= 15 and set(table["label"]) == {0, 1}
    bright = truth[truth["snr"] >= 6]
    assert bright["detected"].mean() >= 0.9
    strong = truth[(truth["snr"] > 20) & truth["detected"]]
    ratio = strong["psfFlux"] / strong["flux"]
    # Positive fakes are drawn and measured with the same PSF; negative ones go through the
    # template PSF and the A&L kernel fitted on the stars, so the measured PSFs' errors show
    # (5 % here, on a 200 px frame with few stars to measure them on; with the true PSFs
    # given they are within 5 %: test_negative_fakes_keep_their_flux_with_known_psfs).
    assert np.median(ratio[strong["flux"] > 0]) == pytest.approx(1.0, abs=0.05)
    assert np.median(ratio[strong["flux"] < 0]) == pytest.approx(1.0, abs=0.1)
    m = result.metrics
    assert m["n_fakes_drawn"] == 40 and m["n_fakes"] == len(truth)
    refused = m["n_fakes_refused_bad"] + m["n_fakes_refused_spacing"]
    assert m["n_fakes"] + refused + m["n_fakes_refused_variance"] == 40
    assert (table.loc[table.label == 1, "truthKind"] == "injection").all()
    assert set(table["labelSource"]) == {"injection"}
    assert 0.8 < result.metrics["snr_robust_std"] < 1.25
    # Through the coadd (itself registered) and a 5 px PSF: within 0.15 px.
    assert result.metrics["shift_x"] == pytest.approx(10.2, abs=0.15)


def _integrated_gaussian(fwhm: float, shape: tuple[int, int], half: int = 20):
    """The pixel-integrated Gaussian PSF `_frames.render` draws stars with, as an ImagePSF."""
    from scipy.special import erf

    from realbogus.sim.dia import ImagePSF

    edges = np.arange(-half, half + 2) - 0.5
    g = np.diff(erf(edges / (np.sqrt(2) * fwhm / 2.3548)))
    a = np.outer(g, g)
    return ImagePSF(a, fwhm=psf_fwhm(a), shape=shape)


@pytest.mark.parametrize("frame_index", [2, 3])
def test_negative_fakes_keep_their_flux_with_known_psfs(generated: dict, frame_index: int) -> None:
    """Negative fakes (in the template, FWHM ~3.1 px) on a science frame of FWHM 4.4 / 5.0 px,
    with the true PSFs given: their median psfFlux / true flux (SNR > 20) is within 5 % of 1,
    even when every fake sits on a star (so on the A&L kernel candidates). The subtraction
    with fakes keeps the fake-free kernel (its sum unchanged); the old path
    (``rescale_noise=False``) refits the kernel with the fakes in and loses > 10 % of their
    flux."""
    t = read_template(generated["template"])
    frame = read_frame(generated["paths"][frame_index])
    fwhm = generated["specs"][frame_index][0]
    psfs = {
        "psf": _integrated_gaussian(fwhm, frame.shape),
        "template_psf": _integrated_gaussian(3.1, frame.shape),  # the coadd of 3.0 and 3.2 px
    }

    def run(n_fakes: int, rescale: bool):
        config = InjectConfig(
            n_fakes=n_fakes,
            stamp_size=31,
            negative_fraction=1.0,
            host_fraction=1.0,
            snr_range=(20.0, 100.0),
            rescale_noise=rescale,
        )
        result, _ = inject_frame(
            frame, t, config=config, rng=np.random.default_rng(1), visit=0, survey="t", **psfs
        )
        return result.metrics, result.truth[result.truth["detected"]]

    clean, _ = run(0, True)
    metrics, found = run(80, True)
    assert len(found) >= 12 and len(found) >= 0.9 * metrics["n_fakes"]
    assert np.median(found["psfFlux"] / found["flux"]) == pytest.approx(1.0, abs=0.05)
    assert metrics["kernel_sum"] == clean["kernel_sum"]
    _, old = run(80, False)
    assert np.median(old["psfFlux"] / old["flux"]) < 0.9


def test_negative_fakes_are_drawn_in_the_differences_flux_scale() -> None:
    """A negative fake of flux F goes into the template as F / (A&L kernel sum), so the
    subtraction (which multiplies template fluxes by the kernel sum) shows it with flux F."""
    from realbogus.injection.inject import _inject_fakes
    from realbogus.injection.register import Stars
    from realbogus.sim.dia import ImagePSF
    from realbogus.sim.truth import TruthTable

    shape = (201, 201)
    psf = ImagePSF(_gaussian_psf(4.0), fwhm=4.0, shape=shape)
    none = np.zeros(0)
    stars = Stars(x=none, y=none, flux=none, peak=none, near_bad=np.zeros(0, bool))
    for scale in (1.0, 1.25):
        science, template = np.zeros(shape), np.zeros(shape)
        truth = TruthTable()
        counts = _inject_fakes(
            InjectConfig(n_fakes=1, host_fraction=0.0, negative_fraction=1.0, stamp_size=31),
            np.random.default_rng(0),
            science,
            np.full(shape, 100.0),
            template,
            np.full(shape, 50.0),
            psf,
            psf,
            stars,
            np.zeros(shape, bool),
            None,
            truth,
            psf_weighted=True,
            template_scale=scale,
        )
        flux = truth.arrays()["flux"][0]
        assert counts["n_fakes_drawn"] == 1 and flux < 0 and not science.any()
        assert template.sum() == pytest.approx(-flux / scale, rel=1e-6)


def test_inject_dataset_and_known_sources(generated: dict, tmp_path: Path) -> None:
    """The dataset opens like a simulated one; --known drops or relabels detections."""
    science = generated["paths"][2:]
    out = inject_dataset(
        science,
        generated["template"],
        tmp_path / "ds",
        config=InjectConfig(n_fakes=30, stamp_size=31),
        seed=4,
        workers=1,
    )
    ds = open_dataset(out)
    table = ds.table()
    assert ds.stamp_size == 31 and len(table) == len(ds) > 0
    assert table["diaSourceId"].is_unique
    assert (out / "preview.png").is_file() and (out / "psf" / "f2.psf.fits").is_file()
    truth = pd.read_parquet(out / "truth.parquet")
    assert set(truth["visit"]) == {0, 1}
    visits = pd.read_parquet(out / "visits.parquet")
    assert (visits["noiseScale"] > 0).all() and (visits["noise_scale_pixels"] >= MIN_PIXELS).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["noise_scale"]["median"] == pytest.approx(visits["noiseScale"].median())
    # The noise model's columns, and the away-from-sources pixels pooled over frames.
    for col in ("noiseScaleMin", "noiseScaleMax", "noiseScaleConstant", "noiseA", "noiseB"):
        assert np.isfinite(visits[col]).all()
    assert (visits["noiseScaleMin"] <= visits["noiseScale"]).all()
    assert (visits["noiseScale"] <= visits["noiseScaleMax"]).all()
    assert summary["noise_scale"]["frames_varying"] == int(visits["noiseVarying"].sum())
    pooled = summary["snr_robust_std_pooled"]
    assert pooled["pixels"] == visits["quiet_pixels"].sum() > 0 and pooled["pairs"] > 0
    for key in ("median_centred", "zero_centred", "frame_median_centred", "pair_difference"):
        assert 0.5 < pooled[key] < 2.0
    again = inject_dataset(
        science,
        generated["template"],
        tmp_path / "ds2",
        config=InjectConfig(n_fakes=30, stamp_size=31),
        seed=4,
        workers=2,
    )
    assert open_dataset(again).table()["psfFlux"].equals(table["psfFlux"])
    bogus = table[(table.label == 0) & (table.visit == 0)].head(3)
    known = pd.DataFrame({"x": bogus["x"], "y": bogus["y"], "origin": "tns"})
    kw = {"config": InjectConfig(n_fakes=30, stamp_size=31), "seed": 4, "workers": 1}
    dropped = inject_dataset(science[:1], generated["template"], tmp_path / "k1", known=known, **kw)
    real = inject_dataset(
        science[:1],
        generated["template"],
        tmp_path / "k2",
        known=known,
        known_action="real",
        **kw,
    )
    n0 = int((table.visit == 0).sum())
    t1, t2 = open_dataset(dropped).table(), open_dataset(real).table()
    assert len(t1) <= n0 - len(bogus) and len(t2) == n0
    assert (t2.loc[t2.truthKind == "known", "origin"] == "tns").all()
    assert (t2.truthKind == "known").sum() >= len(bogus)


def test_inject_refuses_a_template_of_another_field(
    generated: dict, tmp_path: Path, field: np.ndarray
) -> None:
    other = star_field(np.random.default_rng(98), 260, SIZE)
    frame = _frame(tmp_path, other, "o", fwhm=4.0, shift=(0, 0), seed=5)
    with pytest.raises(InputError, match="do not overlap"):
        inject_frame(
            frame,
            read_template(generated["template"]),
            config=InjectConfig(n_fakes=5),
            rng=np.random.default_rng(0),
            visit=0,
            survey="t",
        )


# --- noise rescaling on correlated noise ---------------------------------------------------------


def _correlated(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Unit-variance noise correlated over 2 x 2 px: white noise convolved with a 2 x 2 box / 2
    (sum of squares 1, so each pixel keeps variance 1; the sum 2 doubles the noise amplitude at
    the PSF's scales)."""
    w = rng.standard_normal((shape[0] + 1, shape[1] + 1))
    return ndimage.convolve(w, np.full((2, 2), 0.5))[1:, 1:]


def _gaussian_psf(fwhm: float, k: int = 21) -> np.ndarray:
    r = np.arange(k) - k // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * (fwhm / 2.3548) ** 2))
    return g / g.sum()


def test_noise_scale_makes_the_snr_map_unit_variance_on_correlated_noise() -> None:
    """A right per-pixel variance plane but noise correlated on the PSF scale: the SNR map's
    robust std is far from 1 until the factor measured on the estimation cells rescales it; the
    check is on the other (disjoint) cells."""
    rng = np.random.default_rng(3)
    shape, fwhm = (512, 512), 3.0
    noise = _correlated(rng, shape)
    assert mad_sigma(noise.ravel()) == pytest.approx(1.0, abs=0.03)  # the plane is right
    image = noise.copy()
    psf = _gaussian_psf(fwhm)
    for x, y in rng.uniform(30, 480, (40, 2)).astype(int):  # sources that must be masked
        image[y - 10 : y + 11, x - 10 : x + 11] += 400 * psf
    snr = snr_map(image, np.ones(shape), psf)
    check = check_cells(shape, fwhm)
    assert 0.4 < check.mean() < 0.6
    border = np.zeros(shape, bool)
    border[:16] = border[-16:] = True
    border[:, :16] = border[:, -16:] = True
    est = estimate_noise_scale(snr, ~border & ~check, threshold=5.0, grow=7)
    assert est.n_pixels > 50_000 and est.iterations >= 2
    quiet = ~border & check & ~ndimage.binary_dilation(np.abs(snr) > 5 * est.scale, iterations=7)
    before = mad_sigma(snr[quiet])
    after = mad_sigma(snr[quiet] / est.scale)
    assert before > 1.5  # correlated noise: clearly not unit variance
    assert after == pytest.approx(1.0, abs=0.1)
    # Too few quiet pixels: no rescaling.
    few = np.zeros(shape, bool)
    few[100:110, 100:110] = True
    assert estimate_noise_scale(snr, few, threshold=5.0, grow=7).scale == 1.0


def test_inject_rescales_the_noise_of_a_frame_with_correlated_noise(
    generated: dict, tmp_path: Path
) -> None:
    """A generated frame plus correlated noise whose per-pixel variance is in its variance
    map: rescaling (the default) brings the SNR map's std on the check cells to 1 and the fakes'
    SNR >= 6 are still found; without it (--no-noise-rescale) the std is well above 1."""
    t = read_template(generated["template"])
    path = generated["paths"][3]
    frame = read_frame(path)
    sigma = float(np.sqrt(np.median(frame.variance)))
    image = fits.getdata(path).astype(float)
    image += sigma * _correlated(np.random.default_rng(5), image.shape)
    fits.writeto(tmp_path / "v.fits", (frame.variance + sigma**2).astype(np.float32))
    noisy = read_frame(
        write_frame(tmp_path / "c.fits", image, PFWHM=5.0), variance=tmp_path / "v.fits"
    )
    out = {}
    for on in (True, False):
        out[on], _ = inject_frame(
            noisy,
            t,
            config=InjectConfig(n_fakes=20, stamp_size=31, rescale_noise=on),
            rng=np.random.default_rng(1),
            visit=3,
            survey="test",
        )
    on, off = out[True].metrics, out[False].metrics
    assert on["noiseScale"] > 1.3 and off["noiseScale"] == 1.0
    # On the check cells (the factor was measured on the others); 20 fakes, not more, on a
    # 200 px frame: their 3 FWHM exclusion boxes must leave quiet pixels (with 40 the std was
    # 1.03-1.14 on six noise seeds, 0.95-1.06 with 20). Away from sources: ~2,500 px only.
    assert on["snr_robust_std_nodet"] == pytest.approx(1.0, abs=0.1)
    assert on["snr_robust_std"] == pytest.approx(1.0, abs=0.2)
    assert off["snr_robust_std_nodet"] > 1.3 and off["snr_robust_std"] > 1.2
    truth = out[True].truth
    assert truth[truth["snr"] >= 6]["detected"].mean() >= 0.8
    # The fakes' SNR is drawn against the measured noise: the same draws are brighter.
    both = out[True].truth.merge(out[False].truth, on=["x", "y"], suffixes=("_on", "_off"))
    assert len(both) >= 10
    ratio = (both["flux_on"] / both["flux_off"]).to_numpy()
    assert np.median(ratio) == pytest.approx(on["noiseScale"], rel=0.1)
    # psfFluxErr uses the rescaled variance.
    real_on = out[True].table.query("label == 1")
    assert (real_on["psfFlux"] / real_on["psfFluxErr"]).abs().median() == pytest.approx(
        real_on["snr"].median(), rel=0.3
    )


@pytest.mark.parametrize("weighted", [True, False])
def test_fake_snr_is_the_matched_filters_on_a_peaked_host(weighted: bool) -> None:
    """A fake on a peaked host (its Poisson variance in the plane): with the PSF^2-weighted
    variance (the default with rescaling) the matched-filter SNR of the injected fake is its
    drawn SNR over the noise factor's; with the box median (the old way) it falls short."""
    from realbogus.injection.inject import _inject_fakes, _psf_at
    from realbogus.injection.register import Stars
    from realbogus.sim.dia import ImagePSF
    from realbogus.sim.truth import TruthTable

    shape, fwhm, k = (201, 201), 5.0, 1.5  # a well-sampled PSF: little pixel-phase loss
    psf = ImagePSF(_gaussian_psf(fwhm), fwhm=fwhm, shape=shape)
    yy, xx = np.indices(shape)
    host = 2e4 * np.exp(-((xx - 100) ** 2 + (yy - 100) ** 2) / (2 * 4.0**2))
    var_sci, var_tpl = 100.0 + host, np.full(shape, 50.0)
    science, template = np.zeros(shape), np.zeros(shape)
    one = np.array([100.0])
    stars = Stars(x=one, y=one, flux=one * 1e5, peak=one * 4e4, near_bad=np.zeros(1, bool))
    truth = TruthTable()
    _inject_fakes(
        InjectConfig(n_fakes=1, host_fraction=1.0, negative_fraction=0.0, stamp_size=31),
        np.random.default_rng(0),
        science,
        var_sci,
        template,
        var_tpl,
        psf,
        psf,
        stars,
        np.zeros(shape, bool),
        None,
        truth,
        noise_scale=k,
        psf_weighted=weighted,
    )
    tr = truth.arrays()
    x, y = (int(round(v)) for v in tr["seg"][0, :2])
    assert np.hypot(x - 100, y - 100) <= 1.5 * fwhm + 1
    # The matched filter at the fake's exact position: sum(P D) / sqrt(sum(P^2 V) k^2).
    p, cx, cy = _psf_at(psf, *tr["seg"][0, :2])
    h = p.shape[0] // 2
    box = (slice(cy - h, cy + h + 1), slice(cx - h, cx + h + 1))
    var = (var_sci + var_tpl)[box] * k**2
    snr = (p * (science - template)[box]).sum() / np.sqrt((p**2 * var).sum())
    if weighted:
        assert snr == pytest.approx(tr["snr"][0], rel=0.03)
    else:
        assert snr < 0.8 * tr["snr"][0]


# --- small real cut-outs ------------------------------------------------------------------------


def _cutout(src: Path, dst: Path, box: tuple[slice, slice], hdu: int = 0) -> Path:
    with fits.open(src) as hdus:
        data = np.asarray(hdus[hdu].data)[box]
        header = hdus[hdu].header.copy()
    for key in ("BZERO", "BSCALE"):
        header.remove(key, ignore_missing=True)
    fits.PrimaryHDU(data.astype(np.float32), header=header).writeto(dst)
    return dst


def test_saao_cutouts(shared_data: Path, tmp_path: Path) -> None:
    """Three real SAAO frames cut to 300 x 300: template of two, fakes into the third."""
    d = shared_data / "images" / "saao-1m"
    box = (slice(100, 400), slice(100, 400))
    names = ["AKB13475I0100", "AKB13475I0091", "AKB13475I0146"]
    paths = [_cutout(d / f"{n}.fits", tmp_path / f"{n}.fits", box) for n in names]
    tmpl = build_template([read_frame(p) for p in paths[:2]], best=2)
    assert tmpl.frames["dx"].iloc[1] == pytest.approx(21.1, abs=0.5)  # the frames' real offset
    write_template(tmpl, tmp_path / "T.fits")
    out = inject_dataset(
        paths[2:],
        tmp_path / "T.fits",
        tmp_path / "ds",
        config=InjectConfig(n_fakes=40),
        seed=1,
        workers=1,
        preview=False,
    )
    table = open_dataset(out).table()
    truth = pd.read_parquet(out / "truth.parquet")
    assert set(table["label"]) == {0, 1} and table["survey"].iat[0] == "SAAO 1.0m"
    assert truth[truth["snr"] >= 6]["detected"].mean() >= 0.75


def test_nircam_cutouts(shared_data: Path, tmp_path: Path) -> None:
    """The JWST pair (one grid, WCS, noise maps, WebbPSF): identity registration, PSF given."""
    d = shared_data / "images" / "jwst-nircam"
    stem_t = "jw01324001001-01324-o001_t001_nircam_clear-f200w_i2d_stamp"
    stem_s = "jw02561001002-02561-o001_t003_nircam_clear-f200w_i2d_stamp"
    box = (slice(200, 600), slice(200, 600))
    files = {}
    for key, stem in (("t", stem_t), ("s", stem_s)):
        files[key] = _cutout(d / f"{stem}.fits", tmp_path / f"{key}.fits", box)
        files[key + "n"] = _cutout(d / f"{stem}.noise.fits", tmp_path / f"{key}n.fits", box)
    tframe = read_frame(files["t"], noise=files["tn"])
    assert tframe.wcs is not None and tframe.gain is None
    tmpl = build_template([tframe], best=1)
    write_template(tmpl, tmp_path / "T.fits")
    out = inject_dataset(
        [files["s"]],
        tmp_path / "T.fits",
        tmp_path / "ds",
        config=InjectConfig(n_fakes=40, stamp_size=31),
        options=__import__("realbogus.injection.run", fromlist=["FrameOptions"]).FrameOptions(
            noise=(str(files["sn"]),),
            psf=str(d / f"{stem_s}.WebbPSF.fits"),
            template_psf=str(d / f"{stem_t}.WebbPSF.fits"),
        ),
        seed=2,
        workers=1,
        preview=False,
    )
    visits = pd.read_parquet(out / "visits.parquet")
    assert visits["registration"].iat[0] == "identity"
    truth = pd.read_parquet(out / "truth.parquet")
    assert truth[truth["snr"] >= 6]["detected"].mean() >= 0.75


def test_psf_falls_back_to_a_two_fwhm_box_on_a_binned_crowded_frame(
    shared_data: Path, tmp_path: Path
) -> None:
    """SAAO frame AKB13475I0009 summed 2 x 2 (FWHM ~2.8 px, ~50 sources in the bulge field): the
    3-FWHM stack has no positive sum (neighbours in its border), so `measure_psf` used to refuse
    it; the 2-FWHM box gives a centred PSF near the header seeing."""
    from realbogus.injection.psf import _measure

    path = shared_data / "images" / "saao-1m" / "AKB13475I0009.fits"
    with fits.open(path) as hdus:
        image, header = hdus[0].data.astype(np.float64), hdus[0].header.copy()
    binned = image.reshape(256, 2, 256, 2).sum(axis=(1, 3))
    header["RDNOISE"] = 2 * header["RDNOISE"]
    header["PFWHM"] = header["PFWHM"] / 2
    for key in ("BSCALE", "BZERO"):
        header.remove(key, ignore_missing=True)
    fits.PrimaryHDU(binned.astype(np.float32), header=header).writeto(tmp_path / "b.fits")
    frame = read_frame(tmp_path / "b.fits", saturation=4 * 65300)
    p = prepare(frame)
    with pytest.raises(InputError, match="--psf"):
        _measure(p.image, p.stars, frame.seeing_px, 3.0, 40, 2, "median")
    psf = measure_psf(p.image, p.stars, fwhm_guess=frame.seeing_px)
    c = psf.array.shape[0] // 2
    assert np.unravel_index(np.argmax(psf.array), psf.array.shape) == (c, c)
    assert psf.array.shape[0] == 2 * int(np.ceil(2 * frame.seeing_px)) + 1
    assert psf.fwhm_px() == pytest.approx(frame.seeing_px, rel=0.2)


def test_template_without_a_psf_is_written(
    tmp_path: Path, field: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A coadd whose PSF cannot be measured warns and writes no FWHM key (FITS holds no NaN)."""
    import realbogus.injection.template as template_module

    def refuse(*args, **kwargs):
        raise InputError("the PSF cannot be measured; pass a PSF model with --psf")

    frames = [
        _frame(tmp_path, field, n, fwhm=3.0, shift=s, seed=i)
        for i, (n, s) in enumerate([("a", (0, 0)), ("b", (4.2, -3.1))])
    ]
    monkeypatch.setattr(template_module, "measure_psf", refuse)
    with pytest.warns(UserWarning, match="template PSF not measured"):
        tmpl = build_template(frames, best=2)
    assert tmpl.psf is None and "FWHM" not in tmpl.header
    write_template(tmpl, tmp_path / "T.fits")
    assert read_template(tmp_path / "T.fits").psf is None
