"""PSF fakes injected into one real science frame, then the simulation's DIA chain.

For one frame: take off the sky, register the template onto it and match its flux scale,
measure the PSF (unless given), inject PSF fakes (hostless, or on a source of the frame; a
fraction negative, i.e. put into the template), subtract (A&L + decorrelation, or ZOGY),
detect both polarities, measure and cut stamps with `realbogus.sim.dia`, then label: a
detection is Real when an injected fake of the same polarity lies within the match radius,
and Bogus otherwise (real variables and asteroids included: see docs/real-images.md), unless a
catalogue of known sources says otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage

from ..errors import InputError
from ..numeric import mad_sigma
from ..sim.config import InjectionConfig, SubtractionConfig
from ..sim.detect import shift_stamps
from ..sim.dia import (
    DiaResult,
    Difference,
    ImagePSF,
    detection_table,
    make_difference,
    match_truth,
    run_dia,
    truth_frame,
)
from ..sim.field import VisitResult
from ..sim.labels import assign_labels
from ..sim.truth import TruthTable, draw_snr, flux_for_snr
from .frames import Frame
from .noise import (
    NoiseModel,
    NoiseScale,
    check_cells,
    density_map,
    estimate_noise_model,
    estimate_noise_scale,
)
from .psf import measure_psf
from .register import Registration, Stars, find_stars, register, warp
from .template import Prepared, Template, flux_scale, prepare

__all__ = [
    "Aligned",
    "InjectConfig",
    "align_template",
    "fake_free_difference",
    "inject_frame",
    "KNOWN_ACTIONS",
]

#: What `--known` does to detections on a known source.
KNOWN_ACTIONS = ("drop", "real")


@dataclass(frozen=True)
class InjectConfig:
    """How fakes are drawn and how the difference image is made and measured.

    Attributes
    ----------
    n_fakes : int
        Fakes drawn per frame (fewer survive when they would overlap each other or bad pixels).
    snr_range : (float, float)
        True PSF SNR range on the difference image.
    snr_power : float
        dN/dSNR ~ SNR**power (the simulation's -1.3: close to log-uniform, faint-weighted).
    host_fraction : float
        Fraction of fakes put on a source of the frame (within 1.5 FWHM of its centre).
    negative_fraction : float
        Fraction of fakes put into the template (negative in the difference).
    match_fwhm : float
        Match radius in units of the science FWHM (never under 1 pixel).
    method : {"al", "zogy"}
    threshold : float
        Detection threshold on |SNR map|.
    stamp_size : int
        Stamp side, pixels.
    n_candidates : int
        A&L kernel candidate stars at most.
    convolve : {"template", "auto", "science"}
        A&L: which image is convolved. "template" (default) matches the coadd to each frame; on
        the SAAO frames "auto" (the narrower one) convolved frames a little sharper than the
        template and left ringing dipoles on every star (docs/real-images.md).
    difference_background : int or None
        Mesh (pixels) of the background taken off the difference (None: none).
    rescale_noise : bool
        Measure the SNR map's noise on a fake-free first subtraction (`realbogus.injection.noise`)
        and scale the difference's variance plane by its square, so the detection threshold,
        flux errors, ``snr`` and the fakes' true SNR use the measured noise; a fake's true SNR
        is then the matched filter's, against the PSF^2-weighted variance at its position;
        the subtraction with fakes reuses that first subtraction's A&L kernel (fakes on or near
        kernel candidates cannot pull the fit), and negative fakes are drawn in its flux scale
        (flux / kernel sum in the template) (default). False (``--no-noise-rescale``, the
        datasets made before it): the variance plane as given, the fakes' SNR against the
        median variance of a PSF-sized box (which under-counts the variance on a peaked host:
        fakes on galaxies came out fainter than their stated SNR), and the kernel fitted on
        the images with the fakes in.
    noise_density : bool
        With `rescale_noise`: the factor follows the local density of the template's sources
        (`realbogus.injection.noise.estimate_noise_model`; one factor where the density does
        not matter), default; False (``--no-noise-density``): one factor per frame.
    """

    n_fakes: int = 60
    snr_range: tuple[float, float] = InjectionConfig().fake_snr
    snr_power: float = InjectionConfig().fake_snr_power
    host_fraction: float = 0.3
    negative_fraction: float = InjectionConfig().negative_fraction
    match_fwhm: float = 0.5
    method: str = "al"
    threshold: float = 5.0
    stamp_size: int = 51
    n_candidates: int = 80
    convolve: str = "template"
    difference_background: int | None = 64
    rescale_noise: bool = True
    noise_density: bool = True
    subtraction: SubtractionConfig = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.n_fakes < 0:
            msg = f"--fakes-per-image must be >= 0; got {self.n_fakes}"
            raise InputError(msg)
        lo, hi = self.snr_range
        if not 0 < lo < hi:
            msg = f"the fake SNR range must be 0 < low < high; got {self.snr_range}"
            raise InputError(msg)
        if self.convolve not in ("auto", "template", "science"):
            msg = f"convolve must be 'auto', 'template' or 'science'; got {self.convolve!r}"
            raise InputError(msg)
        if self.method not in ("al", "zogy"):
            msg = f"--subtraction must be 'al' or 'zogy'; got {self.method!r}"
            raise InputError(msg)
        if self.stamp_size < 5 or self.stamp_size % 2 == 0:
            msg = f"--stamp-size must be odd and at least 5; got {self.stamp_size}"
            raise InputError(msg)
        for name in ("host_fraction", "negative_fraction"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                msg = f"{name} must lie in [0, 1]; got {value}"
                raise InputError(msg)
        sub = SubtractionConfig(
            method=self.method,
            threshold=self.threshold,
            n_candidates=max(8, self.n_candidates),
        )
        object.__setattr__(self, "subtraction", sub)

    def to_dict(self) -> dict:
        """JSON-serialisable fields (for provenance)."""
        out = asdict(self)
        out.pop("subtraction", None)
        out["snr_range"] = list(self.snr_range)
        return out


@dataclass(frozen=True)
class Aligned:
    """A science frame with the template on its grid and flux scale, ready to subtract.

    Attributes
    ----------
    prep : Prepared
        The frame with its sky taken off (``prep.image``) and its stars.
    science, variance : ndarray of shape (H, W), float
        The sky-subtracted science and its variance (a copy: fakes may be added to both).
    registration : Registration
        Template pixels -> frame pixels.
    template, template_variance : ndarray of shape (H, W)
        The template warped onto the frame and scaled by `template_scale`.
    template_bad : ndarray of shape (H, W), bool
    psf, tpsf : ImagePSF
        The science PSF (measured or given) and the template's.
    fwhm : float
        The science PSF's FWHM, pixels.
    template_scale : float
        Flux of a star in the science over the template (median of bright stars).
    bad : ndarray of shape (H, W), bool
        No data in the science or the template.
    chain : dict
        Keyword arguments of `make_difference` / `run_dia` (masks, kernel stars, options).
    """

    prep: Prepared
    science: np.ndarray
    variance: np.ndarray
    registration: Registration
    template: np.ndarray
    template_variance: np.ndarray
    template_bad: np.ndarray
    psf: ImagePSF
    tpsf: ImagePSF
    fwhm: float
    template_scale: float
    bad: np.ndarray
    chain: dict


def align_template(
    frame: Frame,
    template: Template,
    *,
    config: InjectConfig,
    psf: ImagePSF | None = None,
    template_psf: ImagePSF | None = None,
    template_stars: Stars | None = None,
) -> Aligned:
    """Take the frame's sky off, register the template onto it, measure the PSF (unless given)
    and match the template's flux scale (see `inject_frame` for the parameters and errors)."""
    prep = prepare(frame)
    sci = prep.image
    shape = frame.shape

    # ---- the template on the frame's grid and flux scale
    tprep_stars = template_stars or find_stars(template.image, template.variance, template.bad)
    reg = register(
        tprep_stars,
        prep.stars,
        source_image=template.image,
        target_image=sci,
        source_wcs=template.wcs,
        target_wcs=frame.wcs,
    )
    timg, tvar, tbad = warp(reg, template.image, template.variance, template.bad, shape)

    # ---- PSFs
    if psf is None:
        psf = measure_psf(sci, prep.stars, fwhm_guess=frame.seeing_px)
    tpsf = template_psf or template.psf
    if tpsf is None:
        msg = "the template file has no PSF; pass --template-psf"
        raise InputError(msg)
    tpsf = ImagePSF(tpsf.array, fwhm=tpsf.fwhm_px(), shape=shape)
    fwhm = psf.fwhm_px()
    twide = max(fwhm, tpsf.fwhm_px())
    radius = float(np.clip(2.0 * twide, 3.0, 30.0))
    scale = flux_scale(sci, timg, prep.stars, radius=radius)
    timg, tvar = timg * scale, tvar * scale**2

    cand = _kernel_candidates(prep.stars, shape, twide, config.subtraction.n_candidates)
    chain = {
        "nan_science": frame.bad,
        "nan_template": tbad,
        "kernel_x": prep.stars.x[cand].round(),
        "kernel_y": prep.stars.y[cand].round(),
        "config": config.subtraction,
        "convolve": config.convolve,
        "difference_background": config.difference_background,
    }
    return Aligned(
        prep=prep,
        science=sci,
        variance=frame.variance.copy(),
        registration=reg,
        template=timg,
        template_variance=tvar,
        template_bad=tbad,
        psf=psf,
        tpsf=tpsf,
        fwhm=fwhm,
        template_scale=scale,
        bad=frame.bad | tbad,
        chain=chain,
    )


def fake_free_difference(aligned: Aligned) -> Difference:
    """The difference of the aligned images before any fake (A&L kernel fitted on them)."""
    a = aligned
    nan_sci, nan_tpl = a.chain["nan_science"], a.chain["nan_template"]
    variances = _fill_variances(a.variance, a.template_variance, nan_sci, nan_tpl)
    return make_difference(a.science, a.template, *variances, a.psf, a.tpsf, **a.chain)


def inject_frame(
    frame: Frame,
    template: Template,
    *,
    config: InjectConfig,
    rng: np.random.Generator,
    visit: int,
    survey: str,
    psf: ImagePSF | None = None,
    template_psf: ImagePSF | None = None,
    known: pd.DataFrame | None = None,
    known_action: str = "drop",
    pixel_scale: float | None = None,
    template_stars: Stars | None = None,
) -> tuple[VisitResult, ImagePSF]:
    """Inject fakes into one real frame and make its labelled detections.

    Parameters
    ----------
    frame : Frame
        The science frame (sky included).
    template : Template
        From `build_template` / `read_template`.
    config : InjectConfig
    rng : numpy.random.Generator
        Draws the fakes (positions, SNRs, hosts, polarity) and their photon noise.
    visit : int
        ``visit`` (and ``epoch``) of the rows; ``diaSourceId`` = visit * 100000 + row.
    survey : str
        ``survey`` column.
    psf, template_psf : ImagePSF, optional
        Given PSFs; by default measured on the frame and taken from the template file.
    known : DataFrame, optional
        Known real sources with ``x``, ``y`` in this frame's pixels, or ``template_x``,
        ``template_y`` in the template's (and optional ``origin``).
    known_action : {"drop", "real"}
        Leave detections on a known source out, or label them Real (truthKind ``known``).
    pixel_scale : float, optional
        Arcsec per pixel: ``seeing`` columns in arcsec when known, else in pixels.
    template_stars : Stars, optional
        `find_stars` on the template (it is the same for every frame: `inject_dataset` finds
        them once per process); found here when not given.

    Returns
    -------
    VisitResult
        Table (TABLE_COLUMNS), stamps, truth (one row per fake, ``detected``), metrics.
    ImagePSF
        The science PSF used (measured or given).

    Raises
    ------
    InputError
        The template does not overlap the frame, too few stars to register, or the PSF cannot
        be measured (pass ``--psf``).
    """
    if known_action not in KNOWN_ACTIONS:
        msg = f"--known-action must be one of {KNOWN_ACTIONS}; got {known_action!r}"
        raise InputError(msg)
    a = align_template(
        frame,
        template,
        config=config,
        psf=psf,
        template_psf=template_psf,
        template_stars=template_stars,
    )
    prep, sci, var_sci, reg, shape = a.prep, a.science, a.variance, a.registration, frame.shape
    timg, tvar, tbad, psf, tpsf = a.template, a.template_variance, a.template_bad, a.psf, a.tpsf
    fwhm, scale, bad_any, chain = a.fwhm, a.template_scale, a.bad, a.chain

    # ---- the noise of the difference, measured on a fake-free first subtraction
    check = check_cells(shape, fwhm)
    noise = NoiseModel.from_constant(NoiseScale(scale=1.0, n_pixels=0, iterations=0))
    kernel, kernel_sum = None, 1.0
    if config.rescale_noise:
        first = fake_free_difference(a)
        # The fake-free images' A&L kernel is kept for the subtraction with fakes (fakes on or
        # near kernel candidates would otherwise pull the fit), and its sum is the template's
        # photometric scale in the difference (negative fakes are drawn in that scale).
        kernel = first.subtraction.kernel
        if kernel is not None:
            kernel_sum = first.subtraction.kernel_sum
        # k(x) a function of the local source density D(x) (else one k per frame).
        usable, grow = ~first.mask & ~bad_any & ~check, int(2 * fwhm) + 1
        if config.noise_density:
            noise = estimate_noise_model(
                first.snr,
                usable,
                density_map(tvar, tbad, fwhm),
                threshold=config.threshold,
                grow=grow,
                fwhm=fwhm,
            )
        else:
            constant = estimate_noise_scale(
                first.snr, usable, threshold=config.threshold, grow=grow
            )
            noise = NoiseModel.from_constant(constant, "--no-noise-density")
    k = noise.map() if noise.varying else noise.constant.scale

    # ---- fakes (their SNR against the measured noise)
    truth = TruthTable()
    placement = _inject_fakes(
        config,
        rng,
        sci,
        var_sci,
        timg,
        tvar,
        psf,
        tpsf,
        prep.stars,
        bad_any,
        frame.gain,
        truth,
        noise_scale=k,
        psf_weighted=config.rescale_noise,
        template_scale=kernel_sum,
    )

    # ---- subtraction, detection, measurement, stamps (the simulation's chain)
    dia = run_dia(
        sci,
        timg,
        *_fill_variances(var_sci, tvar, frame.bad, tbad),
        psf,
        tpsf,
        saturated=frame.saturated,
        stamp_size=config.stamp_size,
        noise_scale=k,
        kernel=kernel,
        **chain,
    )

    # ---- labels: matched fakes Real, the rest Bogus (kinds by the nearest star of the frame)
    det = dia.det
    tr = truth.arrays()
    match_px = max(1.0, config.match_fwhm * fwhm)
    stars = _star_causes(prep.stars, sci, frame.variance, fwhm)
    no_galaxies = {
        "x": np.zeros(0),
        "y": np.zeros(0),
        "radius": np.zeros(0),
        "catalogued": np.zeros(0, bool),
    }
    no_artifacts = (np.zeros(0, object), np.zeros((0, 4)), np.zeros(0))
    lab = assign_labels(
        det,
        tr,
        no_artifacts,
        stars,
        no_galaxies,
        shape=shape,
        fwhm_px=fwhm,
        edge_px=float(max(dia.subtraction.psf.shape[0] // 2, 2) + fwhm),
        match_radius=match_px,
    )
    to_arcsec = pixel_scale or 1.0
    ra, dec = _sky(frame, det["x"], det["y"])
    table = detection_table(
        dia,
        lab,
        tr,
        first_id=visit * 100_000,
        ra=ra,
        dec=dec,
        truth_mag=np.full(len(det["x"]), np.nan),
        field=0,
        visit=visit,
        epoch=visit,
        seeing=fwhm * to_arcsec,
        template_seeing=tpsf.fwhm_px() * to_arcsec,
        survey=survey,
    )
    # Labels come from matching injections: Real and Bogus alike.
    table["labelSource"] = "injection"
    keep = np.ones(len(table), bool)
    if known is not None and len(known) and len(table):
        known = _known_on_frame(known, reg, template, frame)
        d = np.hypot(
            table["x"].to_numpy()[:, None] - known["x"].to_numpy()[None, :],
            table["y"].to_numpy()[:, None] - known["y"].to_numpy()[None, :],
        )
        near = d.min(axis=1) <= max(match_px, fwhm)
        near &= table["label"].to_numpy() == 0
        if known_action == "drop":
            keep = ~near
        else:
            j = np.argmin(d, axis=1)
            table.loc[near, "label"] = np.int8(1)
            table.loc[near, "truthKind"] = "known"
            table.loc[near, "labelSource"] = "catalog"
            origins = known["origin"].astype(str).to_numpy() if "origin" in known else None
            table.loc[near, "origin"] = origins[j[near]] if origins is not None else "none"
    found = match_truth(dia, lab, tr, table, match_px=match_px)
    snr_noise, quiet = _snr_noise(dia, sci, timg, frame.variance, tvar, bad_any, tr, fwhm, check)
    stamps = dia.stamps
    if not keep.all():
        table = table[keep].reset_index(drop=True)
        stamps = type(stamps)(
            data=stamps.data[keep],
            valid_fraction=stamps.valid_fraction[keep],
            edge=stamps.edge[keep],
        )
    truth_df = truth_frame(tr, found, field=0, visit=visit, frame=frame.name)
    metrics = {
        "field": 0,
        "visit": visit,
        "epoch": visit,
        "frame": frame.name,
        "seeing": fwhm * to_arcsec,
        "seeing_px": fwhm,
        "templateSeeing": tpsf.fwhm_px() * to_arcsec,
        "registration": reg.method,
        "registration_pairs": reg.n_matches,
        "shift_x": reg.shift[0],
        "shift_y": reg.shift[1],
        "template_scale": scale,
        "n_detections": int(len(table)),
        "n_dropped_known": int((~keep).sum()),
        "n_fakes": int(len(tr["flux"])),
        **placement,
        "kernel_sum": dia.subtraction.kernel_sum,
        "n_candidates": dia.subtraction.n_candidates,
        "convolved": dia.subtraction.convolved,
        "subtraction": dia.method,
        **noise.summary(data=~dia.mask & ~bad_any),
        **snr_noise,
    }
    return VisitResult(
        table=table,
        stamps=stamps,
        truth=truth_df,
        metrics=metrics,
        images={
            "science": np.where(frame.bad, np.nan, sci).astype(np.float32),
            "template": np.where(tbad, np.nan, timg).astype(np.float32),
            "difference": dia.difference.astype(np.float32),
            "variance": dia.subtraction.variance.astype(np.float32),
            "snr": dia.snr.astype(np.float32),
            "quiet_check": quiet,
            "noise_scale": np.broadcast_to(np.float32(k), shape),
        },
    ), psf


def _known_on_frame(
    known: pd.DataFrame, reg: Registration, template: Template, frame: Frame
) -> pd.DataFrame:
    """Known sources with ``x``, ``y`` in this frame's pixels; a catalogue in the template's
    pixels (``template_x``, ``template_y``, as `realbogus variables` writes it) is mapped
    through the frame's registration (or the two WCSs when it is not affine)."""
    if {"x", "y"} <= set(known.columns):
        return known
    tx, ty = known["template_x"].to_numpy(float), known["template_y"].to_numpy(float)
    if reg.matrix is not None:
        m = reg.matrix
        x, y = m[0, 0] * tx + m[0, 1] * ty + m[0, 2], m[1, 0] * tx + m[1, 1] * ty + m[1, 2]
    else:
        x, y = frame.wcs.world_to_pixel_values(*template.wcs.pixel_to_world_values(tx, ty))
    return known.assign(x=np.asarray(x, float), y=np.asarray(y, float))


def _fill_variances(
    var_science: np.ndarray,
    var_template: np.ndarray,
    bad_science: np.ndarray,
    bad_template: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Variance planes with their bad pixels set to the median of the good ones."""
    return (
        np.where(bad_science, np.nanmedian(var_science[~bad_science]), var_science),
        np.where(bad_template, np.nanmedian(var_template[~bad_template]), var_template),
    )


def _sky(frame: Frame, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if frame.wcs is None or not len(x):
        return np.full(len(x), np.nan), np.full(len(x), np.nan)
    ra, dec = frame.wcs.pixel_to_world_values(x, y)
    return np.asarray(ra, float) % 360.0, np.asarray(dec, float)


def _psf_at(psf: ImagePSF, x: float, y: float) -> tuple[np.ndarray, int, int]:
    """The unit-flux PSF (k, k) shifted to the sub-pixel part of (x, y), and its centre pixel."""
    ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
    k = psf.array.shape[0] + 8  # room for the Fourier shift to wrap nothing visible
    img = psf.image(0.0, 0.0, size=k)
    out = shift_stamps(img[None], np.array([x - ix]), np.array([y - iy]))[0]
    return out, ix, iy


def _weighted_variance(variance: np.ndarray, stamp: np.ndarray, ix: int, iy: int) -> float:
    """sum(P^2 V) / sum(P^2) over the finite pixels under `stamp` (k, k) centred on (ix, iy)."""
    h, w = variance.shape
    half = stamp.shape[0] // 2
    r0, c0 = iy - half, ix - half
    rr0, cc0 = max(r0, 0), max(c0, 0)
    rr1, cc1 = min(iy + half + 1, h), min(ix + half + 1, w)
    local = variance[rr0:rr1, cc0:cc1]
    w2 = stamp[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] ** 2
    good = np.isfinite(local)
    w2 = np.where(good, w2, 0.0)
    total = w2.sum()
    return float((w2 * np.where(good, local, 0.0)).sum() / total) if total > 0 else float("nan")


def _at(value: float | np.ndarray, ix: int, iy: int) -> float:
    """A number, or an (H, W) map's value at pixel (ix, iy)."""
    return float(value[iy, ix]) if np.ndim(value) else float(value)


def _add(image: np.ndarray, stamp: np.ndarray, ix: int, iy: int) -> None:
    h, w = image.shape
    half = stamp.shape[0] // 2
    r0, r1 = iy - half, iy + half + 1
    c0, c1 = ix - half, ix + half + 1
    sr0, sc0 = max(0, -r0), max(0, -c0)
    sr1 = stamp.shape[0] - max(0, r1 - h)
    sc1 = stamp.shape[1] - max(0, c1 - w)
    image[max(r0, 0) : min(r1, h), max(c0, 0) : min(c1, w)] += stamp[sr0:sr1, sc0:sc1]


def _inject_fakes(
    config: InjectConfig,
    rng: np.random.Generator,
    science: np.ndarray,
    var_science: np.ndarray,
    template: np.ndarray,
    var_template: np.ndarray,
    psf: ImagePSF,
    tpsf: ImagePSF,
    stars: Stars,
    bad: np.ndarray,
    gain: float | None,
    truth: TruthTable,
    *,
    noise_scale: float | np.ndarray = 1.0,
    psf_weighted: bool = False,
    template_scale: float = 1.0,
) -> dict[str, int]:
    """Draw fakes and add them to the science (positive) or template (negative), in place.

    The flux of a fake of target SNR s solves F^2 = s^2 (n_eff V k^2 + F / gain), with V the
    summed science + template variance around it (so fakes on hosts are brighter for the same
    SNR), k = `noise_scale` (the measured noise of the difference over the variance plane's; a
    number, or an (H, W) map read at the fake's pixel)
    and n_eff = 1 / sum(P^2) of the wider PSF P; positive fakes get their photon noise when the
    gain is known. V is sum(P^2 V) / sum(P^2) at the fake when `psf_weighted` (what the
    matched-filter SNR map divides by), else the median over a PSF-sized box. A negative fake of
    flux F is added to the template as F / `template_scale` (the A&L kernel sum: what the
    subtraction multiplies template fluxes by), so it has flux F in the difference.

    Returns the placement counts: ``n_fakes_drawn``, and the drawn fakes refused for lying
    near bad pixels (``n_fakes_refused_bad``), within 3 FWHM of an earlier fake
    (``n_fakes_refused_spacing``) or on pixels without variance (``n_fakes_refused_variance``).
    """
    n = config.n_fakes
    counts = {
        "n_fakes_drawn": n,
        "n_fakes_refused_bad": 0,
        "n_fakes_refused_spacing": 0,
        "n_fakes_refused_variance": 0,
    }
    if n == 0:
        return counts
    h, w = science.shape
    fwhm = max(psf.fwhm_px(), tpsf.fwhm_px())
    wide = psf if psf.fwhm_px() >= tpsf.fwhm_px() else tpsf
    neff = 1.0 / float((wide.array**2).sum())
    margin = max(config.stamp_size // 2, int(3 * fwhm)) + 2
    snr = draw_snr(rng, n, *config.snr_range, config.snr_power)
    hosted = rng.random(n) < config.host_fraction
    negative = rng.random(n) < config.negative_fraction
    x = rng.uniform(margin, w - 1 - margin, n)
    y = rng.uniform(margin, h - 1 - margin, n)
    hosts = np.flatnonzero(
        ~stars.near_bad
        & (stars.x > margin)
        & (stars.x < w - 1 - margin)
        & (stars.y > margin)
        & (stars.y < h - 1 - margin)
    )
    if len(hosts):
        pick = rng.choice(hosts, size=n)
        r = rng.uniform(0.0, 1.5 * fwhm, n)
        t = rng.uniform(0.0, 2 * np.pi, n)
        x = np.where(hosted, stars.x[pick] + r * np.cos(t), x)
        y = np.where(hosted, stars.y[pick] + r * np.sin(t), y)
    else:
        hosted[:] = False
    # Clear of bad pixels (2 FWHM plus the 16 px the subtraction kernel spreads them) and of
    # each other (3 FWHM).
    near_bad = ndimage.binary_dilation(bad, iterations=int(2 * fwhm) + 16) if bad.any() else bad
    ix = np.clip(np.floor(x + 0.5).astype(int), 0, w - 1)
    iy = np.clip(np.floor(y + 0.5).astype(int), 0, h - 1)
    ok = ~near_bad[iy, ix]
    kept: list[int] = []
    for j in np.flatnonzero(ok):
        if all(np.hypot(x[j] - x[k], y[j] - y[k]) >= 3 * fwhm for k in kept):
            kept.append(j)
    counts["n_fakes_refused_bad"] = int((~ok).sum())
    counts["n_fakes_refused_spacing"] = int(ok.sum() - len(kept))
    half = wide.array.shape[0] // 2
    var_sum = var_science + var_template
    for j in kept:
        r0, c0 = max(iy[j] - half, 0), max(ix[j] - half, 0)
        box = (slice(r0, iy[j] + half + 1), slice(c0, ix[j] + half + 1))
        local = var_sum[box]
        good = np.isfinite(local)
        if not good.any():
            counts["n_fakes_refused_variance"] += 1
            continue
        if psf_weighted:
            # The variance the matched filter sees at the fake: sum(P^2 V) / sum(P^2), P the
            # wider PSF at the fake's sub-pixel position.
            v = _weighted_variance(var_sum, *_psf_at(wide, x[j], y[j]))
            if not np.isfinite(v):
                counts["n_fakes_refused_variance"] += 1
                continue
        else:
            v = float(np.median(local[good]))
        flux = float(
            flux_for_snr(
                snr[j],
                sky_var_sum=v * _at(noise_scale, ix[j], iy[j]) ** 2,
                neff=neff,
                njy_per_e=(1.0 / gain) if gain else 0.0,
            )
        )
        if negative[j]:
            stamp, cx, cy = _psf_at(tpsf, x[j], y[j])
            _add(template, (flux / template_scale) * stamp, cx, cy)
        else:
            stamp, cx, cy = _psf_at(psf, x[j], y[j])
            model = flux * stamp
            if gain:
                photon_var = np.maximum(model, 0.0) / gain
                model = model + rng.standard_normal(model.shape) * np.sqrt(photon_var)
                _add(var_science, photon_var, cx, cy)
            _add(science, model, cx, cy)
        truth.add(
            "injection",
            "injection",
            x[j],
            y[j],
            -flux if negative[j] else flux,
            snr[j],
            hosted=bool(hosted[j]),
        )
    return counts


def _kernel_candidates(stars: Stars, shape: tuple[int, int], fwhm: float, n: int) -> np.ndarray:
    """Bright, unsaturated, isolated stars clear of the edges, brightest first (indices).

    Isolated: no neighbour above 30 % of the star's flux within 2.5 FWHM; in a field with
    fewer than 30 such stars, within 1.5 FWHM and 50 % (A&L's clipping copes).
    """
    h, w = shape
    margin = int(2.5 * fwhm) + 16  # the A&L stamp half-size plus the kernel half-size
    x, y, f = stars.x, stars.y, stars.flux
    inside = (x > margin) & (x < w - margin) & (y > margin) & (y < h - margin)
    ok = np.flatnonzero(inside & ~stars.near_bad)
    if not len(ok):
        return ok
    d = np.hypot(x[ok, None] - x[None, :], y[ok, None] - y[None, :])
    d[np.arange(len(ok)), ok] = np.inf
    picked = ok[~((d < 2.5 * fwhm) & (f[None, :] > 0.3 * f[ok, None])).any(axis=1)]
    if len(picked) < 30:
        picked = ok[~((d < 1.5 * fwhm) & (f[None, :] > 0.5 * f[ok, None])).any(axis=1)]
    return picked[:n]


def _star_causes(stars: Stars, image: np.ndarray, variance: np.ndarray, fwhm: float) -> dict:
    """The frame's sources as `assign_labels` stars: capture radius from their peak S/N;
    ``saturated`` = touches a bad pixel; none variable or catalogued (unknown here)."""
    sigma = np.sqrt(np.nanmedian(variance[np.isfinite(variance)]))
    ratio = np.maximum(stars.peak / max(sigma, 1e-30), 1.0)
    radius = np.where(
        stars.near_bad,
        3.0 * fwhm,
        fwhm * np.clip(1.2 + 0.6 * np.log10(ratio), 1.5, 5.0),
    )
    n = len(stars.x)
    return {
        "x": stars.x,
        "y": stars.y,
        "radius": radius,
        "saturated": stars.near_bad.copy(),
        "variable": np.zeros(n, bool),
        "gaia": np.zeros(n, bool),
    }


def _snr_noise(
    dia: DiaResult,
    science: np.ndarray,
    template: np.ndarray,
    var_science: np.ndarray,
    var_template: np.ndarray,
    bad: np.ndarray,
    truth: dict,
    fwhm: float,
    check: np.ndarray,
) -> tuple[dict, np.ndarray]:
    """Robust std and median of the SNR map away from sources (template pixels above 1 sigma and
    science objects, dilated by 1.5 FWHM), fakes (3 FWHM) and bad pixels; and its robust std
    away from detections only (``snr_robust_std_nodet``). Both only on the `check` cells
    (`realbogus.injection.noise.check_cells`: pixels the noise factor was not measured on).
    ``snr_robust_std`` is centred on the pixels' own median (as before), ``snr_robust_std0`` on
    0 (the background-subtracted map's mean): on ~100 PSF-correlated pixels the own median
    follows the few clumps and the first reads low. Also returns the quiet mask, (H, W) bool
    (`inject_dataset` pools those pixels over frames)."""
    import sep

    grow = max(1, int(round(1.5 * fwhm)))
    # Sources: the (deep) template above 1 sigma, and objects of the science frame (sep
    # segmentation at 3 sigma): objects, not noise-selected pixels, so the noise is unbiased.
    sig_t = np.sqrt(np.where(np.isfinite(var_template), var_template, np.inf))
    src = ndimage.binary_opening(np.nan_to_num(template) > sig_t, iterations=1)
    data = np.ascontiguousarray(np.nan_to_num(science), dtype=np.float64)
    err = np.ascontiguousarray(np.sqrt(np.where(np.isfinite(var_science), var_science, 1e30)))
    _, seg = sep.extract(
        data, 3.0, err=err, mask=np.ascontiguousarray(bad), minarea=5, segmentation_map=True
    )
    src |= seg > 0
    near = ndimage.binary_dilation(src | bad | dia.mask, iterations=grow)
    fake = np.zeros_like(near)
    for x0, y0 in truth["seg"][:, :2]:
        ix, iy = int(round(x0)), int(round(y0))
        r = int(3 * fwhm)
        fake[max(iy - r, 0) : iy + r + 1, max(ix - r, 0) : ix + r + 1] = True
    quiet = ~near & ~fake & check
    # Second view, with far more pixels in a crowded field: every pixel with data except those
    # within 2 FWHM of a detection (|SNR| > threshold) or a fake.
    det = ndimage.binary_dilation(np.abs(dia.snr) > 5.0, iterations=int(2 * fwhm) + 1)
    rest = dia.snr[~dia.mask & ~bad & ~det & ~fake & check]
    rest_std = mad_sigma(rest) if rest.size else np.nan
    vals = dia.snr[quiet]
    if not vals.size:
        nan = float("nan")
        return {
            "snr_robust_std": nan,
            "snr_robust_std0": nan,
            "snr_robust_std_with_patches": nan,
            "snr_median": nan,
            "quiet_pixels": 0,
            "snr_robust_std_nodet": rest_std,
            "nodet_pixels": int(rest.size),
        }, quiet
    med = float(np.median(vals))
    std = mad_sigma(vals, med)
    return {
        "snr_robust_std": std,
        "snr_robust_std0": mad_sigma(vals, 0.0),
        "snr_robust_std_with_patches": std,  # the simulation's column; no noise patches here
        "snr_median": med,
        "quiet_pixels": int(vals.size),
        "snr_robust_std_nodet": rest_std,
        "nodet_pixels": int(rest.size),
    }, quiet
