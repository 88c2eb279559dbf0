"""One field of a simulated survey: a deep template and several science epochs, end to end.

For each epoch: render the science image (galaxies with the epoch's varying PSF, stars with
variability and astrometric jitter, Real truth sources, noise, artifacts, saturation), subtract
the background, subtract the template (A&L + decorrelation, or ZOGY), detect on both polarities,
measure, label, and cut triplet stamps. Every random number comes from
``np.random.default_rng([seed, field, epoch, stream])``, so a field's output does not depend on
which process ran it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import sep
from scipy import ndimage
from threadpoolctl import threadpool_limits

from ..numeric import mad_sigma
from ..stamps import Stamps
from . import artifacts as art
from .config import SimConfig
from .dia import TABLE_COLUMNS, detection_table, match_truth, run_dia, truth_frame
from .labels import assign_labels, segment_distance
from .psf import PSFModel, add_point_sources
from .scene import (
    FieldCatalog,
    convolve_varying,
    mag_to_njy,
    make_field_catalog,
    njy_to_mag,
    render_galaxies,
)
from .truth import TruthTable, draw_snr, flux_for_snr, host_offsets, pick_hosts, snr_for_flux

__all__ = ["VisitResult", "simulate_field", "TABLE_COLUMNS"]


_RNG_STREAMS = {
    "psf": 1,
    "stars": 2,
    "fakes": 3,
    "asteroids": 4,
    "transients": 5,
    "noise": 6,
    "artifacts": 7,
    "template": 8,
    "clouds": 9,
    "crosstalk": 10,
}


@dataclass
class VisitResult:
    """Outputs of one epoch.

    table : detection table (TABLE_COLUMNS); stamps : Stamps aligned with `table`;
    truth : one row per truth source with ``detected`` (matched by a Real detection);
    metrics : per-visit quality numbers; images : dict of (H, W) arrays and header values when
    images were requested, else None.
    """

    table: pd.DataFrame
    stamps: Stamps
    truth: pd.DataFrame
    metrics: dict
    images: dict | None


def _rng(seed: int, field: int, epoch: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, field, epoch, _RNG_STREAMS[stream]])


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def transparency_map(
    rng: np.random.Generator, shape: tuple[int, int], *, rms: float, cells: int = 4
) -> np.ndarray:
    """Relative transparency through patchy cloud, shape `shape`, mean ~1 and spatial rms `rms`.

    Gaussian noise on a `cells` x `cells` grid, cubic-interpolated to the image: patches of about
    a quarter of the image, which a subtraction kernel of spatial order 1 cannot follow, so every
    star leaves a residual of a few to tens of per cent of its flux (as in real cloudy exposures).
    """
    coarse = rng.standard_normal((cells + 2, cells + 2))
    smooth = ndimage.zoom(coarse, (shape[0] / cells, shape[1] / cells), order=3)
    pad = (np.array(smooth.shape) - np.array(shape)) // 2
    smooth = smooth[pad[0] : pad[0] + shape[0], pad[1] : pad[1] + shape[1]]
    smooth = (smooth - smooth.mean()) / max(float(smooth.std()), 1e-12)
    return np.clip(1.0 + rms * smooth, 0.05, None)


def _make_psf(
    rng: np.random.Generator,
    config: SimConfig,
    *,
    profile: str,
    fwhm: float,
    beta: float,
    gradient: float,
    shift: tuple[float, float],
) -> PSFModel:
    e = config.psf_ellipticity
    return PSFModel(
        profile=profile,
        fwhm=fwhm,
        beta=beta,
        g1=float(rng.uniform(-e, e)),
        g2=float(rng.uniform(-e, e)),
        grad_fwhm=(
            float(rng.uniform(-gradient, gradient) / 2),
            float(rng.uniform(-gradient, gradient) / 2),
        ),
        grad_g=tuple(float(v) for v in rng.uniform(-e / 3, e / 3, 4)),
        shift=shift,
        shape=(config.image_size, config.image_size),
        pixel_scale=config.pixel_scale,
    )


def _wcs_header(config: SimConfig, ra0: float, dec0: float) -> dict:
    c = (config.image_size - 1) / 2.0
    s = config.pixel_scale / 3600.0
    return {
        "CTYPE1": "RA---TAN",
        "CTYPE2": "DEC--TAN",
        "CRPIX1": c + 1.0,
        "CRPIX2": c + 1.0,
        "CRVAL1": ra0,
        "CRVAL2": dec0,
        "CD1_1": -s,
        "CD1_2": 0.0,
        "CD2_1": 0.0,
        "CD2_2": s,
        "CUNIT1": "deg",
        "CUNIT2": "deg",
    }


def _pix_to_sky(x: np.ndarray, y: np.ndarray, header: dict) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic (TAN) projection, exactly the WCS in `header` (0-based pixels -> degrees)."""
    xi = np.deg2rad(header["CD1_1"] * (x + 1 - header["CRPIX1"]))
    eta = np.deg2rad(header["CD2_2"] * (y + 1 - header["CRPIX2"]))
    ra0, dec0 = np.deg2rad(header["CRVAL1"]), np.deg2rad(header["CRVAL2"])
    den = np.cos(dec0) - eta * np.sin(dec0)
    ra = ra0 + np.arctan2(xi, den)
    dec = np.arctan2(np.sin(dec0) + eta * np.cos(dec0), np.hypot(xi, den))
    return np.rad2deg(ra) % 360.0, np.rad2deg(dec)


@dataclass
class _Template:
    psf: PSFModel
    image: np.ndarray  # with noise and artifacts, sky-subtracted (nJy)
    model: np.ndarray  # noiseless sources
    variance: np.ndarray
    sky_var: float
    depth: float
    log: art.ArtifactLog
    saturated: np.ndarray  # (H, W) bool: clipped pixels


def _render_template(
    config: SimConfig, cat: FieldCatalog, gal: np.ndarray, *, seed: int, field: int
) -> _Template:
    rng = _rng(seed, field, 0, "template")
    fwhm = float(rng.uniform(*config.template_seeing))
    beta = float(rng.uniform(*config.template_beta))
    psf = _make_psf(
        rng,
        config,
        profile="moffat",
        fwhm=fwhm,
        beta=beta,
        gradient=config.psf_gradient / 3,
        shift=(0.0, 0.0),
    )
    low, high = config.template_depth
    depth = (
        _log_uniform(rng, low, high)
        if config.template_depth_sampling == "log"
        else float(rng.uniform(low, high))
    )
    f = config.njy_per_electron()
    sky = mag_to_njy(float(np.mean(config.sky_mag))) * config.pixel_scale**2
    sky_var = (f * sky + f * f * config.read_noise**2) / depth
    model = convolve_varying(gal, psf)
    add_point_sources(model, psf, cat.star_x, cat.star_y, cat.star_flux, sky_sigma=np.sqrt(sky_var))
    variance = (f * (sky + np.maximum(model, 0)) + f * f * config.read_noise**2) / depth
    image = model + rng.standard_normal(model.shape) * np.sqrt(variance)
    log = art.ArtifactLog()
    a = config.artifacts
    art.add_cosmic_rays(
        image, int(rng.poisson(a.n_template_cosmic_rays)), njy_per_e=f, rng=rng, log=log
    )
    if rng.random() < a.p_template_nan:
        art.add_nan_rowcol(image, rng=rng, log=log, max_segments=2)
    if rng.random() < a.p_satellite / 4:
        art.add_satellite(
            image, fwhm_px=psf.fwhm_px(), sky_sigma=np.sqrt(sky_var), rng=rng, log=log
        )
    saturated = art.saturate(image, config.saturation * f, bleed=False)
    return _Template(
        psf=psf,
        image=image,
        model=model,
        variance=variance,
        sky_var=sky_var,
        depth=depth,
        log=log,
        saturated=saturated,
    )


def simulate_field(
    config: SimConfig,
    *,
    field: int,
    seed: int,
    n_epochs: int,
    first_visit: int,
    keep_images: bool = False,
) -> list[VisitResult]:
    """Simulate one field: its template and `n_epochs` science visits.

    Parameters
    ----------
    config : SimConfig
    field : int
        Field index (part of every random stream and of the ``field`` column).
    seed : int
        Survey seed.
    n_epochs : int
        Science visits of this field.
    first_visit : int
        Visit number of the first epoch (visits are numbered across the survey).
    keep_images : bool
        Return the images (science, template, difference, variance, SNR map) of every epoch.
    """
    # One BLAS thread: fields run in parallel processes, and OpenBLAS threads fighting over
    # busy cores made the kernel fit ~40x slower.
    with threadpool_limits(limits=1):
        return _simulate_field(
            config,
            field=field,
            seed=seed,
            n_epochs=n_epochs,
            first_visit=first_visit,
            keep_images=keep_images,
        )


def _simulate_field(
    config: SimConfig, *, field: int, seed: int, n_epochs: int, first_visit: int, keep_images: bool
) -> list[VisitResult]:
    frng = np.random.default_rng([seed, field])
    cat = make_field_catalog(config, frng)
    ra0 = float(frng.uniform(0, 360))
    dec0 = float(np.rad2deg(np.arcsin(frng.uniform(-1.0, 0.3))))
    gal = render_galaxies(cat, config, seed=seed * 7919 + field)
    tmpl = _render_template(config, cat, gal, seed=seed, field=field)
    header = _wcs_header(config, ra0, dec0)
    out = []
    for epoch in range(n_epochs):
        out.append(
            _simulate_visit(
                config,
                cat,
                gal,
                tmpl,
                seed=seed,
                field=field,
                epoch=epoch,
                visit=first_visit + epoch,
                header=header,
                keep_images=keep_images,
            )
        )
    return out


def _simulate_visit(
    config: SimConfig,
    cat: FieldCatalog,
    gal: np.ndarray,
    tmpl: _Template,
    *,
    seed: int,
    field: int,
    epoch: int,
    visit: int,
    header: dict,
    keep_images: bool,
) -> VisitResult:
    size = config.image_size
    shape = (size, size)
    inj, arts, sub = config.injection, config.artifacts, config.subtraction

    # ---- observing conditions and PSF
    rng = _rng(seed, field, epoch + 1, "psf")
    fwhm = _log_uniform(rng, *config.seeing)
    theta = rng.uniform(0, 2 * np.pi)
    mis = rng.uniform(0, arts.misregistration_px)
    psf = _make_psf(
        rng,
        config,
        profile="kolmogorov",
        fwhm=fwhm,
        beta=0.0,
        gradient=config.psf_gradient,
        shift=(float(mis * np.cos(theta)), float(mis * np.sin(theta))),
    )
    corner_shifts = rng.normal(0, arts.jitter_px, (4, 2))
    cloud_rng = _rng(seed, field, epoch + 1, "clouds")
    cloud = (
        float(cloud_rng.uniform(*config.cloud_extinction))
        if cloud_rng.random() < config.cloudy_fraction
        else 0.0
    )
    zp = config.zeropoint - float(rng.uniform(0, config.zeropoint_scatter)) - cloud
    f = config.njy_per_electron(zp)
    sky = mag_to_njy(float(rng.uniform(*config.sky_mag))) * config.pixel_scale**2
    sky_var = f * sky + f * f * config.read_noise**2
    sky_sigma = float(np.sqrt(sky_var))
    age = float(rng.uniform(*config.template_age_days))
    fwhm_px = psf.fwhm_px()
    # Effective area 1 / sum(P^2) for truth SNRs. The difference image has the PSF of the wider of the two images (the narrower one is
    # convolved), so expected SNRs use that PSF's effective area.
    kp = 2 * int(4 * max(fwhm_px, tmpl.psf.fwhm_px())) + 1
    c0 = (size - 1) / 2
    neff = max(
        1.0 / float((psf.image(c0, c0, size=kp) ** 2).sum()),
        1.0 / float((tmpl.psf.image(c0, c0, size=kp) ** 2).sum()),
    )
    var_sum = sky_var + tmpl.sky_var

    cond = _Conditions(
        psf=psf,
        njy_per_e=f,
        sky_sigma=sky_sigma,
        fwhm_px=fwhm_px,
        neff=neff,
        var_sum=var_sum,
        border=float(sub.border_px + 2),
        size=size,
    )

    truth = TruthTable()

    # ---- science scene: galaxies, stars (variable, jittered)
    science = convolve_varying(gal, psf, corner_shifts=corner_shifts)
    srng = _rng(seed, field, epoch + 1, "stars")
    n_st = len(cat.star_x)
    dmag = srng.normal(0, 1, n_st) * cat.star_var_amp * np.sqrt(age / 365.25)
    star_flux = cat.star_flux * 10 ** (-0.4 * dmag)
    jitter = srng.normal(0, arts.jitter_px, (n_st, 2))
    tail = srng.random(n_st) < arts.jitter_tail_fraction
    jitter[tail] *= 5.0
    add_point_sources(
        science, psf, cat.star_x, cat.star_y, star_flux, sky_sigma=sky_sigma, jitter=jitter
    )
    sat_njy = config.saturation * f
    star_peak_e = cat.star_flux / f / (1.13 * fwhm_px**2)  # rough peak electrons
    in_image = (
        (cat.star_x > -0.5)
        & (cat.star_x < size - 0.5)
        & (cat.star_y > -0.5)
        & (cat.star_y < size - 0.5)
    )
    dflux_star = star_flux - cat.star_flux
    var_snr = cond.snr_of(dflux_star, extra=cat.star_flux)
    gaia = njy_to_mag(cat.star_flux) < config.scene.gaia_limit_mag

    # ---- Real truth: fakes (template copy gets the negative ones), asteroids, transients
    template = tmpl.image.copy()
    tmodel_extra = np.zeros(shape)
    _inject_fakes(
        cond, config, cat, tmpl, _rng(seed, field, epoch + 1, "fakes"), science, tmodel_extra, truth
    )
    _inject_asteroids(cond, config, _rng(seed, field, epoch + 1, "asteroids"), science, truth)
    _inject_transients(
        cond,
        config,
        cat,
        tmpl,
        _rng(seed, field, epoch + 1, "transients"),
        science,
        tmodel_extra,
        truth,
    )
    template += tmodel_extra
    if cloud > 0:
        science *= transparency_map(cloud_rng, shape, rms=config.cloud_patchiness * cloud)

    # ---- noise, artifacts, saturation, NaN
    nrng = _rng(seed, field, epoch + 1, "noise")
    model = science.copy()
    var_sci = f * (sky + np.maximum(model, 0)) + f * f * config.read_noise**2
    image = model + sky + nrng.standard_normal(shape) * np.sqrt(var_sci)
    log = art.ArtifactLog()
    xr = _rng(seed, field, epoch + 1, "artifacts")
    _add_artifacts(cond, config, xr, image, log)
    saturated = art.saturate(image, sat_njy, bleed=True, log=log)
    if arts.crosstalk[1] > 0:
        art.add_crosstalk(
            image,
            saturated,
            background=sky,
            coefficient=arts.crosstalk,
            margin=int(np.ceil(2 * fwhm_px)),
            rng=_rng(seed, field, epoch + 1, "crosstalk"),
            log=log,
        )
    # Stars whose core is clipped in either image (checked on the pixels; off-image stars by
    # their expected peak) cannot be Real variables: their residual is an artifact.
    sx = np.clip(np.floor(cat.star_x + 0.5).astype(int), 0, size - 1)
    sy = np.clip(np.floor(cat.star_y + 0.5).astype(int), 0, size - 1)
    star_saturated = np.where(
        in_image, saturated[sy, sx] | tmpl.saturated[sy, sx], star_peak_e > 0.5 * config.saturation
    )
    for j in np.flatnonzero(
        cat.star_variable & in_image & ~star_saturated & (var_snr >= inj.variable_min_snr)
    ):
        truth.add(
            "variable",
            "gaia" if gaia[j] else "none",
            cat.star_x[j],
            cat.star_y[j],
            dflux_star[j],
            var_snr[j],
        )
    if xr.random() < arts.p_nan_rowcol:
        art.add_nan_rowcol(image, rng=xr, log=log)
    for k, s, r in zip(tmpl.log.kind, tmpl.log.seg, tmpl.log.radius, strict=True):
        log.add(k, *s, radius=r)

    # ---- background subtraction (sep mesh, NaNs masked)
    nan_sci = ~np.isfinite(image)
    mesh = min(128, size // 4)
    bkg = sep.Background(
        np.ascontiguousarray(np.where(nan_sci, 0.0, image)),
        mask=nan_sci,
        bw=mesh,
        bh=mesh,
        fw=3,
        fh=3,
    )
    science_img = image - bkg.back()
    nan_tpl = ~np.isfinite(template)

    # ---- subtraction, detection, measurements, stamps (shared with realbogus.injection)
    cand = _kernel_candidates(config, cat, star_flux, star_saturated, fwhm_px, f)
    dia = run_dia(
        science_img,
        template,
        var_sci,
        tmpl.variance,
        psf,
        tmpl.psf,
        nan_science=nan_sci,
        nan_template=nan_tpl,
        saturated=saturated,
        kernel_x=cat.star_x[cand].round(),
        kernel_y=cat.star_y[cand].round(),
        config=sub,
        stamp_size=config.stamp_size,
    )
    result, method, det, snr, mask = dia.subtraction, dia.method, dia.det, dia.snr, dia.mask
    diff_nan = dia.difference
    x, y = det["x"], det["y"]

    # ---- labels
    star_radius = np.where(
        star_saturated,
        3.0 * fwhm_px * np.maximum(1.0, (star_peak_e / config.saturation)) ** 0.5,
        fwhm_px
        * np.clip(1.2 + 0.6 * np.log10(np.maximum(star_peak_e / sky_sigma * f, 1.0)), 1.5, 5.0),
    )
    gal_mag = njy_to_mag(cat.gal_flux)
    galaxies = {
        "x": cat.gal_x,
        "y": cat.gal_y,
        "radius": np.maximum(1.5 * cat.gal_hlr / config.pixel_scale, 1.5 * fwhm_px),
        "catalogued": gal_mag < config.scene.galaxy_mag[1] - 1.0,
    }
    stars = {
        "x": cat.star_x,
        "y": cat.star_y,
        "radius": star_radius,
        "saturated": star_saturated,
        "variable": cat.star_variable,
        "gaia": gaia,
    }
    edge_px = float(max(result.psf.shape[0] // 2, 2) + fwhm_px)
    tr = truth.arrays()
    match_px = max(1.0, inj.match_radius_arcsec / config.pixel_scale)
    lab = assign_labels(
        det,
        tr,
        log.arrays(),
        stars,
        galaxies,
        shape=shape,
        fwhm_px=fwhm_px,
        edge_px=edge_px,
        match_radius=match_px,
    )

    ti = lab["truthIndex"]
    real = ti >= 0
    truth_flux = np.where(real, tr["flux"][np.maximum(ti, 0)] if len(tr["flux"]) else 0.0, np.nan)
    ra, dec = _pix_to_sky(x, y, header)
    table = detection_table(
        dia,
        lab,
        tr,
        first_id=visit * 100_000,
        ra=ra,
        dec=dec,
        truth_mag=njy_to_mag(np.abs(truth_flux)),
        field=field,
        visit=visit,
        epoch=epoch,
        seeing=fwhm,
        template_seeing=tmpl.psf.fwhm,
        survey=config.name,
    )
    stamps = dia.stamps
    n = len(table)

    # ---- truth table with detection flags, and quality metrics
    found = match_truth(dia, lab, tr, table, match_px=match_px)
    truth_df = truth_frame(tr, found, field=field, visit=visit)
    quiet = (np.abs(model) < 0.05 * sky_sigma) & (
        np.abs(tmpl.model + tmodel_extra) < 0.05 * np.sqrt(tmpl.sky_var)
    )
    quiet &= ~ndimage.binary_dilation(mask | saturated, iterations=int(3 * fwhm_px) + 3)
    # Keep clear of artifacts (they are sources too); the unmodelled-noise patches are reported
    # both ways.
    no_art = ~_artifact_mask(log, shape, pad=3 * fwhm_px, skip=("noise",))
    no_patch = ~_artifact_mask(log, shape, pad=0.0, only=("noise",))
    vals_all = snr[quiet & no_art]
    vals = snr[quiet & no_art & no_patch]

    def _robust(v: np.ndarray) -> tuple[float, float]:
        if not v.size:
            return float("nan"), float("nan")
        m = float(np.median(v))
        return m, mad_sigma(v, m)

    med, robust_std = _robust(vals)
    robust_std_patches = _robust(vals_all)[1]
    metrics = {
        "field": field,
        "visit": visit,
        "epoch": epoch,
        "seeing": fwhm,
        "templateSeeing": tmpl.psf.fwhm,
        "snr_robust_std": robust_std,
        "snr_robust_std_with_patches": robust_std_patches,
        "snr_median": med,
        "quiet_pixels": int(vals.size),
        "n_detections": n,
        "kernel_sum": result.kernel_sum,
        "n_candidates": result.n_candidates,
        "convolved": result.convolved,
        "subtraction": method,
        "zeropoint": zp,
        "cloudExtinction": cloud,
        "templateDepth": tmpl.depth,
        "sky_sigma": sky_sigma,
        "template_age_days": age,
    }
    images = None
    if keep_images:
        images = {
            "science": np.where(nan_sci, np.nan, science_img).astype(np.float32),
            "template": np.where(nan_tpl, np.nan, template).astype(np.float32),
            "difference": diff_nan.astype(np.float32),
            "variance": result.variance.astype(np.float32),
            "snr": snr.astype(np.float32),
            "header": header,
        }
    return VisitResult(table=table, stamps=stamps, truth=truth_df, metrics=metrics, images=images)


@dataclass(frozen=True)
class _Conditions:
    """Observing conditions of one science visit (fluxes nJy, lengths pixels)."""

    psf: PSFModel
    njy_per_e: float
    sky_sigma: float
    fwhm_px: float
    neff: float  # effective area of the difference-image PSF, pixels
    var_sum: float  # science + template sky variance per pixel
    border: float
    size: int

    def snr_of(self, flux, extra=0.0):
        """Expected |SNR| on the difference image of a flux change (see `truth.snr_for_flux`)."""
        return snr_for_flux(
            flux,
            sky_var_sum=self.var_sum,
            neff=self.neff,
            njy_per_e=self.njy_per_e,
            extra_flux=extra,
        )

    def flux_for(self, snr):
        """Flux change (nJy) with expected SNR `snr` on the difference image."""
        return flux_for_snr(snr, sky_var_sum=self.var_sum, neff=self.neff, njy_per_e=self.njy_per_e)


def _inject_fakes(
    cond: _Conditions,
    config: SimConfig,
    cat: FieldCatalog,
    tmpl: _Template,
    frng: np.random.Generator,
    science: np.ndarray,
    template_extra: np.ndarray,
    truth: TruthTable,
) -> None:
    """PSF fakes: hostless or in galaxies; negative ones go into the template (in place)."""
    inj, size, border, psf = config.injection, cond.size, cond.border, cond.psf
    n_f = inj.n_fakes
    snr = draw_snr(frng, n_f, *inj.fake_snr, inj.fake_snr_power)
    flux = cond.flux_for(snr)
    hosted = frng.random(n_f) < inj.host_fraction
    negative = frng.random(n_f) < inj.negative_fraction
    fx = frng.uniform(border + 5, size - 1 - border - 5, n_f)
    fy = frng.uniform(border + 5, size - 1 - border - 5, n_f)
    hosts = pick_hosts(frng, cat, int(hosted.sum()), config, border=border + 10)
    if len(hosts):
        dx, dy = host_offsets(frng, cat, hosts, config.pixel_scale)
        fx[hosted] = np.clip(cat.gal_x[hosts] + dx, border + 2, size - 1 - border - 2)
        fy[hosted] = np.clip(cat.gal_y[hosts] + dy, border + 2, size - 1 - border - 2)
    else:
        hosted[:] = False
    keep = _spread_out(fx, fy, min_sep=3.0 * max(cond.fwhm_px, tmpl.psf.fwhm_px()))
    fx, fy, flux, snr, hosted, negative = (
        fx[keep],
        fy[keep],
        flux[keep],
        snr[keep],
        hosted[keep],
        negative[keep],
    )
    pos = ~negative
    add_point_sources(
        science, psf, fx[pos], fy[pos], flux[pos], sky_sigma=cond.sky_sigma, jitter=None
    )
    add_point_sources(
        template_extra,
        tmpl.psf,
        fx[negative],
        fy[negative],
        flux[negative],
        sky_sigma=np.sqrt(tmpl.sky_var),
    )
    for j in range(len(fx)):
        truth.add(
            "injection",
            "injection",
            fx[j],
            fy[j],
            -flux[j] if negative[j] else flux[j],
            snr[j],
            hosted=bool(hosted[j]),
        )


def _inject_asteroids(
    cond: _Conditions,
    config: SimConfig,
    arng: np.random.Generator,
    science: np.ndarray,
    truth: TruthTable,
) -> None:
    """Asteroids in this visit only; a fraction trailed (a line of point sources)."""
    inj, size, border, psf = config.injection, cond.size, cond.border, cond.psf
    n_a = int(arng.poisson(inj.n_asteroids))
    a_snr = draw_snr(
        arng, n_a, max(inj.fake_snr[0], 3.0), inj.fake_snr[1], inj.fake_snr_power + 0.3
    )
    a_flux = cond.flux_for(a_snr)
    for j in range(n_a):
        ax, ay = arng.uniform(border + 15, size - 1 - border - 15, 2)
        known = arng.random() < inj.known_asteroid_fraction
        if arng.random() < inj.trailed_fraction:
            length = arng.uniform(*inj.trail_length)
            ang = arng.uniform(0, np.pi)
            m = max(int(length * 2) + 1, 2)
            t = np.linspace(-0.5, 0.5, m)
            xs, ys = ax + t * length * np.cos(ang), ay + t * length * np.sin(ang)
            add_point_sources(
                science, psf, xs, ys, np.full(m, a_flux[j] / m), sky_sigma=cond.sky_sigma
            )
            # A trail spreads its flux: the SNR of the whole trail is lower than a point's.
            trail_snr = cond.snr_of(a_flux[j]) / np.sqrt(1.0 + length / cond.fwhm_px)
            truth.add(
                "asteroid",
                "ss" if known else "none",
                xs[0],
                ys[0],
                a_flux[j],
                trail_snr,
                x1=xs[-1],
                y1=ys[-1],
            )
        else:
            add_point_sources(science, psf, [ax], [ay], [a_flux[j]], sky_sigma=cond.sky_sigma)
            truth.add("asteroid", "ss" if known else "none", ax, ay, a_flux[j], a_snr[j])


def _inject_transients(
    cond: _Conditions,
    config: SimConfig,
    cat: FieldCatalog,
    tmpl: _Template,
    trng: np.random.Generator,
    science: np.ndarray,
    template_extra: np.ndarray,
    truth: TruthTable,
) -> None:
    """Transients in galaxies: risen since the template (positive) or faded (negative)."""
    inj, size, border, psf = config.injection, cond.size, cond.border, cond.psf
    n_t = int(trng.poisson(inj.n_transients))
    t_hosts = pick_hosts(trng, cat, n_t, config, border=border + 10)
    if not len(t_hosts):
        return
    dx, dy = host_offsets(trng, cat, t_hosts, config.pixel_scale)
    t_snr = draw_snr(trng, len(t_hosts), *inj.fake_snr, inj.fake_snr_power + 0.3)
    t_flux = cond.flux_for(t_snr)
    tx = np.clip(cat.gal_x[t_hosts] + dx, border + 2, size - 1 - border - 2)
    ty = np.clip(cat.gal_y[t_hosts] + dy, border + 2, size - 1 - border - 2)
    faded = trng.random(len(t_hosts)) < inj.transient_faded_fraction
    # A faded transient was bright in the template and is fainter now; others rose since.
    level = trng.uniform(0.0, 0.6, len(t_hosts))
    sci_flux = np.where(faded, t_flux * level, t_flux * (1 + level * 0.3))
    tpl_flux = np.where(faded, t_flux * (1 + level), t_flux * level * 0.3)
    add_point_sources(science, psf, tx, ty, sci_flux, sky_sigma=cond.sky_sigma)
    add_point_sources(template_extra, tmpl.psf, tx, ty, tpl_flux, sky_sigma=np.sqrt(tmpl.sky_var))
    for j in range(len(t_hosts)):
        d = sci_flux[j] - tpl_flux[j]
        known = trng.random() < inj.known_transient_fraction
        truth.add(
            "transient",
            "tns" if known else "galaxy",
            tx[j],
            ty[j],
            d,
            cond.snr_of(d, extra=min(sci_flux[j], tpl_flux[j])),
            hosted=True,
        )


def _add_artifacts(
    cond: _Conditions,
    config: SimConfig,
    xr: np.random.Generator,
    image: np.ndarray,
    log: art.ArtifactLog,
) -> None:
    """Cosmic rays, hot pixels, a bad column, a satellite, amplifier glow, noise patches (in place)."""
    arts, f = config.artifacts, cond.njy_per_e
    art.add_cosmic_rays(image, int(xr.poisson(arts.n_cosmic_rays)), njy_per_e=f, rng=xr, log=log)
    art.add_hot_pixels(image, int(xr.poisson(arts.n_hot_pixels)), njy_per_e=f, rng=xr, log=log)
    if xr.random() < arts.p_bad_column:
        art.add_bad_column(image, sky_sigma=cond.sky_sigma, rng=xr, log=log)
    if xr.random() < arts.p_satellite:
        art.add_satellite(image, fwhm_px=cond.fwhm_px, sky_sigma=cond.sky_sigma, rng=xr, log=log)
    if xr.random() < arts.p_edge_glow:
        art.add_edge_glow(image, sky_sigma=cond.sky_sigma, rng=xr, log=log)
    art.add_noise_patches(
        image,
        int(xr.poisson(arts.n_noise_patches)),
        fwhm_px=cond.fwhm_px,
        sky_sigma=cond.sky_sigma,
        cfg=arts,
        rng=xr,
        log=log,
    )


def _spread_out(x: np.ndarray, y: np.ndarray, *, min_sep: float) -> np.ndarray:
    """Boolean mask keeping sources (in order) that lie at least `min_sep` pixels from every kept one."""
    keep = np.zeros(len(x), bool)
    for i in range(len(x)):
        kx, ky = x[keep], y[keep]
        keep[i] = not (np.hypot(kx - x[i], ky - y[i]) < min_sep).any()
    return keep


def _kernel_candidates(
    config: SimConfig,
    cat: FieldCatalog,
    star_flux: np.ndarray,
    saturated: np.ndarray,
    fwhm_px: float,
    f: float,
) -> np.ndarray:
    """Indices of bright, unsaturated, isolated stars inside the image, brightest first."""
    size = config.image_size
    margin = 40
    inside = (
        (cat.star_x > margin)
        & (cat.star_x < size - margin)
        & (cat.star_y > margin)
        & (cat.star_y < size - margin)
    )
    peak_e = cat.star_flux / f / (1.13 * fwhm_px**2)
    ok = inside & ~saturated & (peak_e < 0.3 * config.saturation)
    # Isolation: no star or galaxy brighter than 5 % of the candidate within 4 FWHM (or 15 px).
    rad = max(4 * fwhm_px, 15.0)
    allx = np.concatenate([cat.star_x, cat.gal_x])
    ally = np.concatenate([cat.star_y, cat.gal_y])
    allf = np.concatenate([cat.star_flux, cat.gal_flux])
    idx_all = np.flatnonzero(ok)
    d = np.hypot(cat.star_x[idx_all, None] - allx[None], cat.star_y[idx_all, None] - ally[None])
    crowd = ((d < rad) & (d > 0) & (allf[None] > 0.05 * cat.star_flux[idx_all, None])).any(axis=1)
    idx = idx_all[~crowd]
    if len(idx) < 20:
        # Sparse field: accept stars with fainter or farther neighbours (sigma clipping copes).
        crowd = (
            (d < 2.5 * fwhm_px) & (d > 0) & (allf[None] > 0.3 * cat.star_flux[idx_all, None])
        ).any(axis=1)
        idx = idx_all[~crowd]
    idx = idx[np.argsort(-cat.star_flux[idx])]
    return idx[: config.subtraction.n_candidates]


def _artifact_mask(
    log: art.ArtifactLog,
    shape: tuple[int, int],
    *,
    pad: float,
    only: tuple[str, ...] = (),
    skip: tuple[str, ...] = (),
) -> np.ndarray:
    """Pixels within capture radius + pad of logged artifacts (of kinds `only`, if given, minus `skip`)."""
    out = np.zeros(shape, bool)
    kinds, seg, radius = log.arrays()
    h, w = shape
    for kind, s, r in zip(kinds, seg, radius, strict=True):
        if (only and kind not in only) or kind in skip:
            continue
        rr = r + pad
        x0, x1 = int(max(min(s[0], s[2]) - rr, 0)), int(min(max(s[0], s[2]) + rr + 1, w))
        y0, y1 = int(max(min(s[1], s[3]) - rr, 0)), int(min(max(s[1], s[3]) + rr + 1, h))
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d = segment_distance(xx.ravel(), yy.ravel(), s[None]).reshape(yy.shape)
        out[y0:y1, x0:x1] |= d <= rr
    return out
