"""Image subtraction: Alard & Lupton (1998) with a spatially varying kernel and DMTN-021
decorrelation (Rubin's default), and ZOGY (Zackay, Ofek & Gal-Yam 2016).

Images are registered, background-subtracted, float64 arrays of shape (H, W) in the same flux
units (nJy per pixel); NaN pixels must already be replaced by 0 (callers keep the mask).
Differences are science minus template (positive = brighter now). See
../shared/reference/dia-simulation.md for the formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy import signal

from ..errors import InputError
from ..numeric import mad_sigma

__all__ = [
    "Subtraction",
    "ALKernel",
    "al_basis",
    "fit_al_kernel",
    "subtract_al",
    "subtract_zogy",
    "decorrelation_kernel",
]


@dataclass(frozen=True)
class ALKernel:
    """A fitted Alard-Lupton kernel, to subtract again with the same kernel.

    Attributes
    ----------
    coeffs : ndarray of shape (nb, n_terms)
        Coefficients per basis and spatial term (`fit_al_kernel`).
    bases : ndarray of shape (nb, k, k)
        The bases they multiply (`al_basis`).
    background : ndarray of shape (n_terms,)
        Differential background polynomial.
    n_used : int
        Candidates kept by the fit.
    convolved : {"template", "science"}
        Which image the kernel convolves.
    """

    coeffs: np.ndarray
    bases: np.ndarray
    background: np.ndarray
    n_used: int
    convolved: str


@dataclass(frozen=True)
class Subtraction:
    """A difference image with what is needed to measure on it.

    Attributes
    ----------
    difference : ndarray of shape (H, W)
        Science minus PSF-matched template (flux units).
    variance : ndarray of shape (H, W)
        Per-pixel variance of `difference`.
    psf : ndarray of shape (k, k)
        Extra kernel that maps the *science* PSF (``convolved="template"``) or the *template*
        PSF (``convolved="science"``) to the difference image's PSF (a decorrelation kernel, or
        for ZOGY the full PSF of D; see `psf_is_full`).
    psf_is_full : bool
        True when `psf` is the whole PSF of the difference image (ZOGY), not a kernel to apply.
    convolved : {"template", "science"}
        Which image was convolved.
    kernel_sum : float
        Photometric ratio fitted by A&L (1 for ZOGY).
    n_candidates : int
        Kernel candidates kept after clipping (0 for ZOGY).
    kernel : ALKernel or None
        The A&L kernel used (None for ZOGY).
    """

    difference: np.ndarray
    variance: np.ndarray
    psf: np.ndarray
    psf_is_full: bool
    convolved: str
    kernel_sum: float
    n_candidates: int
    kernel: ALKernel | None = None


def al_basis(
    match_sigma: float, *, half: int, degrees: tuple[int, int, int] = (4, 2, 2)
) -> np.ndarray:
    """Alard-Lupton basis of shape (n_basis, 2 half + 1, 2 half + 1); 27 bases by default.

    Gaussians of width (0.5, 1, 2) x `match_sigma` (at least 0.7 px) times polynomials of degree
    `degrees`. B_0 sums to 1 and every other basis sums to 0, so the kernel sum is the first
    coefficient (the photometric ratio).
    """
    y, x = np.mgrid[-half : half + 1, -half : half + 1].astype(float)
    sigmas = [max(0.7, f * match_sigma) for f in (0.5, 1.0, 2.0)]
    bases = []
    for s, d in zip(sigmas, degrees, strict=True):
        g = np.exp(-(x**2 + y**2) / (2 * s**2))
        for i in range(d + 1):
            for j in range(d + 1 - i):
                b = g * (x / s) ** i * (y / s) ** j
                bases.append(b)
    bases = np.array(bases)
    bases[0] /= bases[0].sum()
    for n in range(1, len(bases)):
        bases[n] -= bases[n].sum() * bases[0]
        bases[n] /= np.sqrt((bases[n] ** 2).sum())
    return bases


def _poly_terms(u: np.ndarray, v: np.ndarray, order: int) -> list[np.ndarray]:
    terms = [np.ones_like(u)]
    if order >= 1:
        terms += [u, v]
    if order >= 2:
        terms += [u * u, u * v, v * v]
    return terms


def fit_al_kernel(
    target: np.ndarray,
    source: np.ndarray,
    variance: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    *,
    bases: np.ndarray,
    spatial_order: int = 1,
    stamp_half: int = 10,
    clip_sigma: float = 3.0,
    n_iter: int = 3,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Fit target ~ source (x) K(x, y) + b(x, y) on stamps around candidate stars.

    Parameters
    ----------
    target, source : ndarray of shape (H, W)
        The image to match (e.g. science) and the image convolved (e.g. template).
    variance : ndarray of shape (H, W)
        Variance of the residual per pixel, used as least-squares weights.
    xs, ys : ndarray of shape (n,)
        Integer pixel positions of kernel candidates (bright, unsaturated, isolated stars).
    bases : ndarray of shape (nb, k, k)
        From `al_basis`.
    spatial_order : int
        Polynomial order of the kernel's spatial variation (the kernel sum stays constant).
    stamp_half : int
        Half-size of the fitted stamps, pixels.
    clip_sigma : float
        Candidates whose reduced chi^2 exceeds median + clip_sigma * `mad_sigma` are dropped.

    Returns
    -------
    coeffs : ndarray of shape (nb, n_terms)
        (n_terms follows the order actually used: it is lowered when there are fewer than
        12 candidates per spatial term.)
        Kernel coefficients per basis and spatial term (terms 1, u, v, ... in normalised
        coordinates u = 2 x / (W - 1) - 1); coefficient [0, 1:] is zero.
    bg : ndarray of shape (n_terms,)
        Differential background polynomial.
    n_used : int
        Candidates kept.
    """
    h, w = target.shape
    nb, k, _ = bases.shape
    kh = k // 2
    s = stamp_half
    ok = (xs - s - kh >= 0) & (xs + s + kh < w) & (ys - s - kh >= 0) & (ys + s + kh < h)
    xs, ys = xs[ok].astype(int), ys[ok].astype(int)
    n = len(xs)
    # Few candidates cannot constrain a spatially varying kernel: lower the order (Rubin
    # likewise falls back to fewer spatial terms when candidates are scarce).
    while spatial_order > 0 and n < 12 * len(_poly_terms(np.zeros(1), np.zeros(1), spatial_order)):
        spatial_order -= 1
    n_terms = len(_poly_terms(np.zeros(1), np.zeros(1), spatial_order))
    if n < max(4, n_terms + 2):
        msg = f"only {n} usable kernel candidates; need at least {max(4, n_terms + 2)}"
        raise InputError(msg)
    src = np.stack(
        [
            source[y - s - kh : y + s + kh + 1, x - s - kh : x + s + kh + 1]
            for x, y in zip(xs, ys, strict=True)
        ]
    )
    tgt = np.stack(
        [target[y - s : y + s + 1, x - s : x + s + 1] for x, y in zip(xs, ys, strict=True)]
    )
    wgt = np.stack(
        [
            1.0 / np.maximum(variance[y - s : y + s + 1, x - s : x + s + 1], 1e-30)
            for x, y in zip(xs, ys, strict=True)
        ]
    )
    # conv[c, b] = source stamp c convolved with basis b, valid part (2s+1)^2.
    conv = signal.fftconvolve(src[:, None], bases[None], mode="valid", axes=(-2, -1))
    u = 2.0 * xs / (w - 1) - 1.0
    v = 2.0 * ys / (h - 1) - 1.0
    terms = np.array(_poly_terms(u, v, spatial_order))  # (n_terms, n)
    npix = (2 * s + 1) ** 2
    # Design columns: basis 0 constant; bases 1.. times each spatial term; background terms.
    cols = [conv[:, 0].reshape(n, npix)]
    for b in range(1, nb):
        for t in range(n_terms):
            cols.append(conv[:, b].reshape(n, npix) * terms[t][:, None])
    for t in range(n_terms):
        cols.append(np.broadcast_to(terms[t][:, None], (n, npix)))
    design = np.stack(cols, axis=-1)  # (n, npix, n_par)
    y_all = tgt.reshape(n, npix)
    w_all = wgt.reshape(n, npix)
    # Per-candidate normal equations, summed over the kept candidates.
    n_par = design.shape[-1]
    ata = np.empty((n, n_par, n_par))
    atb = np.empty((n, n_par))
    for c in range(n):  # one BLAS product per candidate (batched matmul on views is not BLAS)
        weighted_t = np.ascontiguousarray((design[c] * w_all[c][:, None]).T)
        ata[c] = weighted_t @ design[c]
        atb[c] = weighted_t @ y_all[c]
    keep = np.ones(n, bool)
    for _ in range(n_iter):
        a = ata[keep].sum(0)
        b = atb[keep].sum(0)
        a += np.eye(len(a)) * 1e-9 * np.trace(a) / len(a)
        params = np.linalg.solve(a, b)
        resid = y_all - design @ params
        chi2 = (resid**2 * w_all).sum(1) / npix
        med = np.median(chi2[keep])
        mad = mad_sigma(chi2[keep], med) + 1e-12
        new_keep = chi2 < med + clip_sigma * mad
        if new_keep.sum() < max(4, n_terms + 2) or (new_keep == keep).all():
            break
        keep = new_keep
    coeffs = np.zeros((nb, n_terms))
    coeffs[0, 0] = params[0]
    coeffs[1:] = params[1 : 1 + (nb - 1) * n_terms].reshape(nb - 1, n_terms)
    bg = params[1 + (nb - 1) * n_terms :]
    return coeffs, bg, int(keep.sum())


def _fft_convolve_same(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Linear (zero-padded, no wrap) convolution with the output the size of `image`."""
    return _convolve_many(image, kernel[None])[0]


def _convolve_many(image: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """`image` (H, W) convolved with each of `kernels` (m, k, k), zero-padded, 'same' size.

    One forward FFT of the image is shared by all kernels.
    """
    h, w = image.shape
    k = kernels.shape[-1]
    half = k // 2
    shape = (sfft.next_fast_len(h + k, real=True), sfft.next_fast_len(w + k, real=True))
    spec = sfft.rfft2(image, s=shape)
    out = np.empty((len(kernels), h, w))
    for i, kern in enumerate(kernels):
        kspec = sfft.rfft2(kern, s=shape)
        full = sfft.irfft2(spec * kspec, s=shape)
        out[i] = full[half : half + h, half : half + w]
    return out


def decorrelation_kernel(
    kernel: np.ndarray, var_fixed: float, var_conv: float, *, size: int
) -> np.ndarray:
    """DMTN-021 decorrelation kernel phi of shape (size, size), unit sum.

    phi_hat = sqrt((var_fixed + var_conv k0^2) / (var_fixed + var_conv |K_hat|^2)), where the
    convolved image has sky variance `var_conv` and the other `var_fixed`, and k0 = sum(K).
    """
    n = max(size, kernel.shape[0]) * 4
    n += n % 2 == 0
    kpad = np.zeros((n, n))
    kh = kernel.shape[0] // 2
    kpad[: kernel.shape[0], : kernel.shape[1]] = kernel
    kpad = np.roll(kpad, (-kh, -kh), axis=(0, 1))
    khat = np.fft.fft2(kpad)
    k0 = kernel.sum()
    phi_hat = np.sqrt((var_fixed + var_conv * k0**2) / (var_fixed + var_conv * np.abs(khat) ** 2))
    phi = np.real(np.fft.ifft2(phi_hat))
    phi = np.fft.fftshift(phi)
    c = n // 2
    half = size // 2
    phi = phi[c - half : c + half + 1, c - half : c + half + 1]
    return phi / phi.sum()


def subtract_al(
    science: np.ndarray,
    template: np.ndarray,
    var_science: np.ndarray,
    var_template: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    *,
    fwhm_science: float,
    fwhm_template: float,
    spatial_order: int = 1,
    clip_sigma: float = 3.0,
    decorrelate: bool = True,
    convolve: str = "auto",
    kernel: ALKernel | None = None,
) -> Subtraction:
    """Alard-Lupton subtraction with a spatially varying kernel, then DMTN-021 decorrelation.

    The image with the narrower PSF is convolved (`convolve` "auto", as Rubin), or the one named
    ("template", "science"). `xs`, `ys` are kernel candidate positions; FWHMs are in pixels.
    `kernel` (from an earlier call's ``Subtraction.kernel``) is used as it is instead of
    fitting one (then `xs`, `ys` and `convolve` are ignored): e.g. the kernel of the images
    before fakes were injected, so the fakes cannot pull the fit.
    """
    if science.shape != template.shape:
        msg = f"science {science.shape} and template {template.shape} must have the same shape"
        raise InputError(msg)
    if convolve not in ("auto", "template", "science"):
        msg = f"convolve must be 'auto', 'template' or 'science'; got {convolve!r}"
        raise InputError(msg)
    if kernel is not None:
        convolve = kernel.convolved
    convolve_template = (
        fwhm_template <= fwhm_science if convolve == "auto" else convolve == "template"
    )
    if convolve_template:
        target, source, var_t, var_s = science, template, var_science, var_template
        wide, narrow = fwhm_science, fwhm_template
    else:
        target, source, var_t, var_s = template, science, var_template, var_science
        wide, narrow = fwhm_template, fwhm_science
    match_sigma = np.sqrt(max(wide**2 - narrow**2, 0.25)) / 2.355
    half = int(np.clip(np.ceil(3.0 * max(2.0 * match_sigma, 0.7) + 1), 5, 15))
    # Few candidates cannot constrain 27 bases without fitting their noise: use 12.
    sky_t, sky_s = float(np.median(var_t)), float(np.median(var_s))
    if kernel is None:
        bases = al_basis(match_sigma, half=half, degrees=(4, 2, 2) if len(xs) >= 15 else (2, 1, 1))
        coeffs, bg, n_used = fit_al_kernel(
            target,
            source,
            var_t + var_s,
            xs,
            ys,
            bases=bases,
            spatial_order=spatial_order,
            stamp_half=max(8, int(2.5 * wide)),
            clip_sigma=clip_sigma,
        )
    else:
        coeffs, bases, bg, n_used = kernel.coeffs, kernel.bases, kernel.background, kernel.n_used
        half = bases.shape[-1] // 2
    h, w = science.shape
    u = np.linspace(-1.0, 1.0, w)[None, :]
    v = np.linspace(-1.0, 1.0, h)[:, None]
    n_terms = coeffs.shape[1]
    terms = _poly_terms(u, v, {1: 0, 3: 1, 6: 2}[n_terms])
    matched = np.zeros_like(science)
    kernels = np.einsum("bt,bij->tij", coeffs, bases)  # one kernel per spatial term
    for term, conv in zip(terms, _convolve_many(source, kernels), strict=True):
        matched += term * conv
    background = sum(bg[t] * terms[t] for t in range(len(terms)))
    k_centre = kernels[0]
    k0 = float(k_centre.sum())
    if convolve_template:
        diff = science - matched - background
        var = var_science + k0**2 * var_template
        var_fixed, var_conv = sky_t, sky_s
    else:
        # Bring the matched science back to the science flux scale, then subtract.
        diff = (matched + background - template) / k0
        var = var_science + var_template / k0**2
        var_fixed, var_conv = sky_t / k0**2, sky_s
        k_centre = k_centre / k0
    phi_size = 2 * half + 1
    if decorrelate:
        phi = decorrelation_kernel(k_centre, var_fixed, var_conv, size=phi_size)
        diff = _fft_convolve_same(diff, phi)
    else:
        phi = np.zeros((phi_size, phi_size))
        phi[half, half] = 1.0
    return Subtraction(
        difference=diff,
        variance=var,
        psf=phi,
        psf_is_full=False,
        convolved="template" if convolve_template else "science",
        kernel_sum=k0,
        n_candidates=n_used,
        kernel=ALKernel(
            coeffs=coeffs,
            bases=bases,
            background=bg,
            n_used=n_used,
            convolved="template" if convolve_template else "science",
        ),
    )


def _pad_psf(psf: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape)
    k = psf.shape[0]
    out[:k, :k] = psf / psf.sum()
    return np.roll(out, (-(k // 2), -(k // 2)), axis=(0, 1))


def subtract_zogy(
    science: np.ndarray,
    template: np.ndarray,
    var_science: np.ndarray,
    var_template: np.ndarray,
    psf_science: np.ndarray,
    psf_template: np.ndarray,
    *,
    psf_size: int = 31,
) -> Subtraction:
    """ZOGY difference (eq. 13) in flux units, D / F_D, with its PSF P_D (eq. 14).

    PSFs are (k, k) images (any odd k) at the image centre; F_r = F_n = 1 (calibrated images).
    Images are zero-padded by the PSF size to avoid wrap-around.
    """
    if science.shape != template.shape:
        msg = f"science {science.shape} and template {template.shape} must have the same shape"
        raise InputError(msg)
    h, w = science.shape
    pad = max(psf_science.shape[0], psf_template.shape[0])
    shape = (sfft.next_fast_len(h + pad, real=True), sfft.next_fast_len(w + pad, real=True))
    sig_n2 = float(np.median(var_science))
    sig_r2 = float(np.median(var_template))
    pn = sfft.rfft2(_pad_psf(psf_science, shape))
    pr = sfft.rfft2(_pad_psf(psf_template, shape))
    nn = np.zeros(shape)
    nn[:h, :w] = science
    rr = np.zeros(shape)
    rr[:h, :w] = template
    den = np.sqrt(sig_n2 * np.abs(pr) ** 2 + sig_r2 * np.abs(pn) ** 2)
    den = np.maximum(den, 1e-12 * np.sqrt(sig_n2 + sig_r2))
    d_hat = (pr * sfft.rfft2(nn) - pn * sfft.rfft2(rr)) / den
    f_d = 1.0 / np.sqrt(sig_n2 + sig_r2)
    diff = sfft.irfft2(d_hat, s=shape)[:h, :w] / f_d
    pd_hat = pr * pn / (f_d * den)
    pd = np.fft.fftshift(sfft.irfft2(pd_hat, s=shape))
    cy, cx = shape[0] // 2, shape[1] // 2
    half = psf_size // 2
    pd = pd[cy - half : cy + half + 1, cx - half : cx + half + 1]
    pd = pd / pd.sum()
    return Subtraction(
        difference=diff,
        variance=var_science + var_template,
        psf=pd,
        psf_is_full=True,
        convolved="both",
        kernel_sum=1.0,
        n_candidates=0,
    )
