"""The difference-imaging chain shared by the simulation and by injection into real images.

Registered science + template (+ variance planes, PSFs, masks) -> subtraction (A&L with
decorrelation, or ZOGY) -> matched-filter SNR map -> detection on both polarities ->
measurements (DiaSource-like columns, docs/design.md 'Detection table') -> triplet stamps.
`realbogus.sim.field` (simulated visits) and `realbogus.injection` (real frames) both call
`run_dia` and `detection_table`, so their datasets have the same columns by construction.

Images are float64 arrays of shape (H, W), background-subtracted, in one flux unit (nJy for the
simulation, the frame's own unit for real images); positions are 0-based pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import pandas as pd
from scipy import ndimage, signal

from ..errors import InputError
from ..stamps import Stamps, cut_stamps
from .config import SubtractionConfig
from .detect import aperture_flux, detect, forced_psf_flux, shift_stamps, snr_map
from .labels import segment_distance
from .subtract import ALKernel, Subtraction, subtract_al, subtract_zogy

__all__ = [
    "TABLE_COLUMNS",
    "PSFLike",
    "ImagePSF",
    "DiaResult",
    "Difference",
    "make_difference",
    "run_dia",
    "detection_table",
    "match_truth",
    "truth_frame",
]

#: Columns of the detection table, in order.
TABLE_COLUMNS = (
    "diaSourceId",
    "x",
    "y",
    "ra",
    "dec",
    "snr",
    "psfFlux",
    "psfFluxErr",
    "apFlux",
    "apFluxErr",
    "scienceFlux",
    "scienceFluxErr",
    "templateFlux",
    "templateFluxErr",
    "isNegative",
    "origin",
    "label",
    "labelSource",
    "truthKind",
    "truthFlux",
    "truthMag",
    "truthSnr",
    "hasNanRowCol",
    "field",
    "visit",
    "epoch",
    "seeing",
    "templateSeeing",
    "subtraction",
    "survey",
)


class PSFLike(Protocol):
    """What the chain needs of a PSF: unit-flux images at a position, a FWHM, the image shape."""

    shape: tuple[int, int]

    def fwhm_px(self) -> float: ...

    def image(self, x: float, y: float, *, size: int) -> np.ndarray: ...


@dataclass(frozen=True)
class ImagePSF:
    """A constant PSF given as an image (a measured ePSF or a supplied model).

    Attributes
    ----------
    array : ndarray of shape (k, k), float64
        PSF sampled on the image's pixels, centred on pixel (k // 2, k // 2), k odd; unit sum.
    fwhm : float
        FWHM, pixels.
    shape : (H, W)
        Shape of the image the PSF belongs to.
    """

    array: np.ndarray
    fwhm: float
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        a = np.asarray(self.array, float)
        if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] % 2 == 0:
            msg = f"a PSF image must be square with an odd side; got shape {a.shape}"
            raise InputError(msg)
        if not np.isfinite(a).all() or a.sum() <= 0:
            msg = "a PSF image must be finite with a positive sum"
            raise InputError(msg)
        object.__setattr__(self, "array", a / a.sum())

    def fwhm_px(self) -> float:
        """FWHM in pixels."""
        return float(self.fwhm)

    def image(self, x: float, y: float, *, size: int) -> np.ndarray:
        """Unit-flux PSF of shape (size, size) centred on pixel size // 2 (same at every x, y)."""
        k = self.array.shape[0]
        out = np.zeros((size, size))
        if size >= k:
            o = (size - k) // 2
            out[o : o + k, o : o + k] = self.array
        else:
            o = (k - size) // 2
            out[:] = self.array[o : o + size, o : o + size]
        return out


@dataclass
class DiaResult:
    """Everything one subtraction + detection + measurement produced.

    Attributes
    ----------
    subtraction : Subtraction
        The difference image, its variance and PSF kernel.
    method : {"al", "zogy"}
        The method used (A&L falls back to ZOGY when kernel candidates are too few).
    difference : ndarray of shape (H, W)
        Difference with NaN where there are no data.
    nan_diff, mask : ndarray of shape (H, W), bool
        No-data pixels; `mask` adds the border where nothing is detected.
    snr : ndarray of shape (H, W)
        Matched-filter SNR map (unit variance on pure noise).
    det : dict of ndarray of shape (n,)
        From `detect`: ``x``, ``y``, ``peak``, ``npix``, ``isNegative``.
    measurements : dict of ndarray of shape (n,)
        ``psfFlux``, ``psfFluxErr``, ``apFlux``, ``apFluxErr``, ``scienceFlux``,
        ``scienceFluxErr``, ``templateFlux``, ``templateFluxErr`` (image flux units).
    stamps : Stamps
        (n, 3, S, S) triplets [difference, science, template].
    has_nan : ndarray of shape (n,), bool
        A stamp holds a whole row or column without data.
    """

    subtraction: Subtraction
    method: str
    difference: np.ndarray
    nan_diff: np.ndarray
    mask: np.ndarray
    snr: np.ndarray
    det: dict[str, np.ndarray]
    measurements: dict[str, np.ndarray]
    stamps: Stamps
    has_nan: np.ndarray


@dataclass
class Difference:
    """A difference image and its matched-filter SNR map (the first stage of `run_dia`).

    Attributes
    ----------
    subtraction : Subtraction
        The subtraction (its ``variance`` multiplied by ``noise_scale**2``).
    method : {"al", "zogy"}
        The method used (A&L falls back to ZOGY when kernel candidates are too few).
    difference : ndarray of shape (H, W)
        Difference (large-scale background taken off when asked), 0 where there are no data.
    nan_diff, mask : ndarray of shape (H, W), bool
        No-data pixels; `mask` adds the border where nothing is detected.
    snr : ndarray of shape (H, W)
        Matched-filter SNR map against the (scaled) variance.
    psf_centre : ndarray of shape (k', k')
        The difference image's PSF at the image centre.
    noise_scale : float
        Factor the subtraction's variance plane was scaled by (its square), 1 for none; the
        median of the map when a map was given.
    """

    subtraction: Subtraction
    method: str
    difference: np.ndarray
    nan_diff: np.ndarray
    mask: np.ndarray
    snr: np.ndarray
    psf_centre: np.ndarray
    noise_scale: float = 1.0


def make_difference(
    science: np.ndarray,
    template: np.ndarray,
    var_science: np.ndarray,
    var_template: np.ndarray,
    psf_science: PSFLike,
    psf_template: PSFLike,
    *,
    nan_science: np.ndarray,
    nan_template: np.ndarray,
    kernel_x: np.ndarray,
    kernel_y: np.ndarray,
    config: SubtractionConfig,
    convolve: str = "auto",
    difference_background: int | None = None,
    noise_scale: float | np.ndarray = 1.0,
    kernel: ALKernel | None = None,
) -> Difference:
    """Subtract and make the matched-filter SNR map (no detection): see `run_dia` for the
    parameters. `noise_scale` (> 0: a number, or an (H, W) map) multiplies the subtraction's
    variance plane by its square before the SNR map (an empirical rescaling of the noise,
    `realbogus.injection.noise`); 1 (the simulation) leaves it untouched."""
    size_y, size_x = science.shape
    nan_sci, nan_tpl = nan_science, nan_template
    fwhm_px = psf_science.fwhm_px()
    tfwhm = psf_template.fwhm_px()

    # ---- subtraction
    sci0 = np.where(nan_sci, 0.0, science)
    tpl0 = np.where(nan_tpl, 0.0, template)
    method = config.method
    if method == "al":
        try:
            result = subtract_al(
                sci0,
                tpl0,
                var_science,
                var_template,
                kernel_x,
                kernel_y,
                fwhm_science=fwhm_px,
                fwhm_template=tfwhm,
                spatial_order=config.spatial_order,
                clip_sigma=config.clip_sigma,
                convolve=convolve,
                kernel=kernel,
            )
        except InputError:
            method = "zogy"  # too few kernel candidates (a sparse field): ZOGY needs none
    if method == "zogy":
        k = 2 * int(4 * max(fwhm_px, tfwhm)) + 1
        cx, cy = (size_x - 1) / 2, (size_y - 1) / 2
        result = subtract_zogy(
            sci0,
            tpl0,
            var_science,
            var_template,
            psf_science.image(cx, cy, size=k),
            psf_template.image(cx, cy, size=k),
            psf_size=k,
        )
    scale = np.asarray(noise_scale, dtype=np.float64)
    if scale.ndim or float(scale) != 1.0:
        if scale.ndim and scale.shape != science.shape:
            msg = f"noise_scale map has shape {scale.shape}; the images have {science.shape}"
            raise InputError(msg)
        if not np.all(scale > 0):
            msg = f"noise_scale must be positive everywhere; got minimum {float(np.min(scale))}"
            raise InputError(msg)
        result = replace(result, variance=result.variance * scale**2)
    diff = result.difference
    if difference_background:
        diff = diff - _background(diff, nan_sci | nan_tpl, difference_background)
    # Pixels without data: NaN in either image (the convolved one dilated by the kernel half-width).
    grow = result.psf.shape[0] // 2 + 1
    spread = {"template": nan_tpl, "science": nan_sci}.get(
        result.convolved, nan_sci | nan_tpl
    )  # ZOGY: both
    nan_diff = ndimage.binary_dilation(nan_sci | nan_tpl, iterations=2) | ndimage.binary_dilation(
        spread, iterations=grow
    )

    # ---- PSF of the difference image and the SNR map
    base_psf = psf_template if result.convolved == "science" else psf_science
    k, kbig = _psf_sizes(fwhm_px, tfwhm, result)
    cx, cy = (size_x - 1) / 2, (size_y - 1) / 2
    if result.psf_is_full:
        pd_centre = result.psf
    else:
        pd_centre = signal.fftconvolve(base_psf.image(cx, cy, size=kbig), result.psf, mode="same")
    snr = snr_map(
        np.where(nan_diff, 0.0, diff), np.where(nan_diff, 0.0, result.variance), pd_centre
    )
    mask = nan_diff.copy()
    b = config.border_px
    if b:
        mask[:b] = mask[-b:] = True
        mask[:, :b] = mask[:, -b:] = True
    return Difference(
        subtraction=result,
        method=method,
        difference=diff,
        nan_diff=nan_diff,
        mask=mask,
        snr=snr,
        psf_centre=pd_centre,
        noise_scale=float(np.median(scale)) if scale.ndim else float(scale),
    )


def run_dia(
    science: np.ndarray,
    template: np.ndarray,
    var_science: np.ndarray,
    var_template: np.ndarray,
    psf_science: PSFLike,
    psf_template: PSFLike,
    *,
    nan_science: np.ndarray,
    nan_template: np.ndarray,
    saturated: np.ndarray,
    kernel_x: np.ndarray,
    kernel_y: np.ndarray,
    config: SubtractionConfig,
    stamp_size: int,
    convolve: str = "auto",
    difference_background: int | None = None,
    noise_scale: float | np.ndarray = 1.0,
    kernel: ALKernel | None = None,
) -> DiaResult:
    """Subtract, detect on both polarities, measure and cut stamps.

    Parameters
    ----------
    science, template : ndarray of shape (H, W), float64
        Registered, background-subtracted images in one flux unit; may hold NaN where
        `nan_science` / `nan_template` are set.
    var_science, var_template : ndarray of shape (H, W)
        Per-pixel variances (flux units squared).
    psf_science, psf_template : PSFLike
        The images' PSFs (`realbogus.sim.psf.PSFModel` or `ImagePSF`).
    nan_science, nan_template : ndarray of shape (H, W), bool
        Pixels without data.
    saturated : ndarray of shape (H, W), bool
        Saturated science pixels (left out of the science forced photometry).
    kernel_x, kernel_y : ndarray of shape (m,)
        Integer pixel positions of A&L kernel candidates (bright, unsaturated, isolated stars).
    config : SubtractionConfig
        Method, kernel spatial order, clipping, detection threshold, border, aperture radius.
    stamp_size : int
        Stamp side, pixels.
    convolve : {"auto", "template", "science"}
        A&L: convolve the image with the narrower PSF ("auto", the simulation's choice), or the
        one named (real frames: "template", see docs/real-images.md).
    difference_background : int, optional
        Mesh (pixels) of a sep background taken off the difference before detection (real
        crowded fields leave large-scale residuals); None (the simulation) takes nothing off.
    noise_scale : float or ndarray of shape (H, W)
        The difference's variance plane is multiplied by its square (pixel by pixel for a map:
        `realbogus.injection.noise.NoiseModel.map`) before the SNR map, so the
        threshold, psfFluxErr, apFluxErr and ``snr`` use it (real frames: the measured noise,
        `realbogus.injection.noise`); 1 (the simulation) changes nothing.
    kernel : ALKernel, optional
        A&L only: subtract with this kernel (an earlier subtraction's ``kernel``) instead of
        fitting one; real frames use the kernel of the fake-free images, so injected fakes
        cannot pull the fit. None (the simulation) fits it.
    """
    d = make_difference(
        science,
        template,
        var_science,
        var_template,
        psf_science,
        psf_template,
        nan_science=nan_science,
        nan_template=nan_template,
        kernel_x=kernel_x,
        kernel_y=kernel_y,
        config=config,
        convolve=convolve,
        difference_background=difference_background,
        noise_scale=noise_scale,
        kernel=kernel,
    )
    result, method, diff, nan_diff, mask, snr = (
        d.subtraction,
        d.method,
        d.difference,
        d.nan_diff,
        d.mask,
        d.snr,
    )
    nan_sci, nan_tpl = nan_science, nan_template
    fwhm_px = psf_science.fwhm_px()
    tfwhm = psf_template.fwhm_px()
    diff_nan = np.where(nan_diff, np.nan, diff)
    base_psf = psf_template if result.convolved == "science" else psf_science
    k, kbig = _psf_sizes(fwhm_px, tfwhm, result)
    det = detect(snr, mask, threshold=config.threshold)
    n = len(det["x"])

    # ---- measurements
    x, y = det["x"], det["y"]
    if result.psf_is_full:
        pd_local = _centre_psf_stamps(result.psf, x, y, k)
    else:
        pd_local = _corner_psf_stamps(base_psf, x, y, kbig)
        if n:
            pd_local = signal.fftconvolve(pd_local, result.psf[None], mode="same", axes=(1, 2))
        trim = (kbig - k) // 2
        pd_local = pd_local[:, trim : trim + k, trim : trim + k]
    psf_flux, psf_err = forced_psf_flux(diff, result.variance, x, y, pd_local, bad=nan_diff)
    sci_flux, sci_err = forced_psf_flux(
        science,
        var_science,
        x,
        y,
        _corner_psf_stamps(psf_science, x, y, k),
        bad=nan_sci | saturated,
    )
    tpl_flux, tpl_err = forced_psf_flux(
        template, var_template, x, y, _corner_psf_stamps(psf_template, x, y, k), bad=nan_tpl
    )
    ap_flux, ap_err = aperture_flux(diff_nan, result.variance, x, y, config.aperture_radius_px)

    # ---- stamps and NaN rows/columns
    stamps = cut_stamps(
        diff_nan,
        np.where(nan_sci, np.nan, science),
        np.where(nan_tpl, np.nan, template),
        x,
        y,
        size=stamp_size,
    )
    has_nan = _nan_rowcol(nan_diff, nan_sci, nan_tpl, x, y, stamp_size)
    return DiaResult(
        subtraction=result,
        method=method,
        difference=diff_nan,
        nan_diff=nan_diff,
        mask=mask,
        snr=snr,
        det=det,
        measurements={
            "psfFlux": psf_flux,
            "psfFluxErr": psf_err,
            "apFlux": ap_flux,
            "apFluxErr": ap_err,
            "scienceFlux": sci_flux,
            "scienceFluxErr": sci_err,
            "templateFlux": tpl_flux,
            "templateFluxErr": tpl_err,
        },
        stamps=stamps,
        has_nan=has_nan,
    )


def detection_table(
    dia: DiaResult,
    labels: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    *,
    first_id: int,
    ra: np.ndarray,
    dec: np.ndarray,
    truth_mag: np.ndarray,
    field: int,
    visit: int,
    epoch: int,
    seeing: float,
    template_seeing: float,
    survey: str,
) -> pd.DataFrame:
    """The detection table (TABLE_COLUMNS, one row per detection of `dia`).

    Parameters
    ----------
    dia : DiaResult
    labels : dict of ndarray of shape (n,)
        From `realbogus.sim.labels.assign_labels`: ``label``, ``truthKind``, ``origin``,
        ``truthIndex``.
    truth : dict
        From `TruthTable.arrays`: ``flux`` (signed, image units) and ``snr`` per truth source.
    first_id : int
        ``diaSourceId`` of the first row; rows count up from it.
    ra, dec : ndarray of shape (n,)
        Sky positions, degrees (NaN without a WCS).
    truth_mag : ndarray of shape (n,)
        AB magnitude of |truthFlux| (NaN where unknown or not calibrated).
    field, visit, epoch : int
    seeing, template_seeing : float
        PSF FWHM of the science and template (the simulation: arcsec; real frames: pixels).
    survey : str
    """
    det, meas = dia.det, dia.measurements
    n = len(det["x"])
    ti = labels["truthIndex"]
    real = ti >= 0
    truth_flux = np.where(
        real, truth["flux"][np.maximum(ti, 0)] if len(truth["flux"]) else 0.0, np.nan
    )
    truth_snr = np.where(
        real, truth["snr"][np.maximum(ti, 0)] if len(truth["snr"]) else 0.0, np.nan
    )
    kinds = labels["truthKind"]
    return pd.DataFrame(
        {
            "diaSourceId": np.int64(first_id) + np.arange(n, dtype=np.int64),
            "x": det["x"],
            "y": det["y"],
            "ra": ra,
            "dec": dec,
            "snr": np.abs(det["peak"]).astype(np.float32),
            **meas,
            "isNegative": det["isNegative"].astype(bool),
            "origin": labels["origin"].astype(str),
            "label": labels["label"].astype(np.int8),
            "labelSource": np.where(kinds == "injection", "injection", "truth"),
            "truthKind": kinds.astype(str),
            "truthFlux": truth_flux,
            "truthMag": truth_mag,
            "truthSnr": truth_snr,
            "hasNanRowCol": dia.has_nan,
            "field": np.full(n, field, np.int32),
            "visit": np.full(n, visit, np.int32),
            "epoch": np.full(n, epoch, np.int32),
            "seeing": np.full(n, seeing, np.float32),
            "templateSeeing": np.full(n, template_seeing, np.float32),
            "subtraction": np.full(n, dia.method),
            "survey": np.full(n, survey),
        }
    )[list(TABLE_COLUMNS)]


def match_truth(
    dia: DiaResult,
    labels: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    table: pd.DataFrame,
    *,
    match_px: float,
) -> dict[str, np.ndarray]:
    """Per truth source: detected or not, and the SNR and PSF flux of its best detection.

    A truth source is detected when any same-polarity detection lies within `match_px` pixels
    (even one that was attributed to another truth source at the same place).

    Returns
    -------
    dict of ndarray of shape (m,)
        ``detected`` (bool), ``measuredSnr``, ``psfFlux`` (NaN when not matched).
    """
    det = dia.det
    m, n = len(truth["flux"]), len(det["x"])
    if m and n:
        dist = segment_distance(det["x"], det["y"], truth["seg"])
        same = (truth["flux"][None, :] < 0) == det["isNegative"][:, None]
        matched = ((dist <= match_px) & same).any(axis=0)
    else:
        matched = np.zeros(m, bool)
    ti = labels["truthIndex"]
    psf_flux = dia.measurements["psfFlux"]
    best_snr = np.full(m, np.nan)
    best_flux = np.full(m, np.nan)
    for row in np.flatnonzero(ti >= 0):
        j = ti[row]
        if not np.isfinite(best_snr[j]) or table["snr"].iat[row] > best_snr[j]:
            best_snr[j] = table["snr"].iat[row]
            best_flux[j] = psf_flux[row]
    return {"detected": matched, "measuredSnr": best_snr, "psfFlux": best_flux}


def truth_frame(
    truth: dict[str, np.ndarray], found: dict[str, np.ndarray], *, field: int, visit: int, **extra
) -> pd.DataFrame:
    """The truth table of one visit, one row per true source (m,): `field`, `visit`, the `extra`
    columns, kind, origin, its segment (x, y) -> (x1, y1) in pixels, flux and SNR, whether it is
    hosted, and `found` (`match_truth`): detected, measuredSnr, psfFlux."""
    return pd.DataFrame(
        {
            "field": field,
            "visit": visit,
            **extra,
            "kind": truth["kind"].astype(str),
            "origin": truth["origin"].astype(str),
            "x": truth["seg"][:, 0],
            "y": truth["seg"][:, 1],
            "x1": truth["seg"][:, 2],
            "y1": truth["seg"][:, 3],
            "flux": truth["flux"],
            "snr": truth["snr"],
            "hosted": truth["hosted"],
            "detected": found["detected"],
            "measuredSnr": found["measuredSnr"],
            "psfFlux": found["psfFlux"],
        }
    )


def _psf_sizes(fwhm_science: float, fwhm_template: float, result: Subtraction) -> tuple[int, int]:
    """Side of the difference PSF stamps (k) and of the base PSF before the kernel (kbig)."""
    k = 2 * int(np.ceil(2.5 * max(fwhm_science, fwhm_template))) + 1
    return k, k + result.psf.shape[0] - 1


def _background(image: np.ndarray, bad: np.ndarray, mesh: int) -> np.ndarray:
    import sep

    data = np.ascontiguousarray(np.where(bad, 0.0, image), dtype=np.float64)
    return sep.Background(data, mask=np.ascontiguousarray(bad), bw=mesh, bh=mesh, fw=3, fh=3).back()


def _corner_psf_stamps(psf: PSFLike, x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """Local unit-flux PSFs (N, size, size) at (x, y): bilinear blend of the corner PSFs, Fourier-shifted."""
    h, w = psf.shape
    corners = [(0.0, 0.0), (w - 1.0, 0.0), (0.0, h - 1.0), (w - 1.0, h - 1.0)]
    imgs = np.array([psf.image(cx, cy, size=size) for cx, cy in corners])
    u = np.clip(np.asarray(x) / (w - 1), 0, 1)
    v = np.clip(np.asarray(y) / (h - 1), 0, 1)
    wts = np.stack([(1 - u) * (1 - v), u * (1 - v), (1 - u) * v, u * v], axis=1)
    local = np.einsum("nc,cij->nij", wts, imgs)
    dx = np.asarray(x) - np.floor(np.asarray(x) + 0.5)
    dy = np.asarray(y) - np.floor(np.asarray(y) + 0.5)
    return shift_stamps(local, dx, dy)


def _centre_psf_stamps(psf: np.ndarray, x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """One PSF image (k, k) as (N, size, size) stamps, Fourier-shifted to the sub-pixel positions."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    k = psf.shape[0]
    big = max(size, k)
    ctr = np.zeros((len(x), big, big))
    h0 = (big - k) // 2
    ctr[:, h0 : h0 + k, h0 : h0 + k] = psf
    out = shift_stamps(ctr, x - np.floor(x + 0.5), y - np.floor(y + 0.5))
    t = (big - size) // 2
    return out[:, t : t + size, t : t + size]


def _nan_rowcol(
    nan_diff: np.ndarray,
    nan_sci: np.ndarray,
    nan_tpl: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    size: int,
) -> np.ndarray:
    """True where a stamp's difference, science or template has a whole row or column of NaN."""
    m = (
        cut_stamps(
            nan_diff.astype(np.float32),
            nan_sci.astype(np.float32),
            nan_tpl.astype(np.float32),
            x,
            y,
            size=size,
        ).data
        > 0.5
    )
    rows = m.all(axis=3).any(axis=(1, 2))
    cols = m.all(axis=2).any(axis=(1, 2))
    return rows | cols
