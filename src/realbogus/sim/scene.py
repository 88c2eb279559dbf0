"""The static sky of a field: star and galaxy catalogues, and galaxies rendered with GalSim.

Galaxies (parametric bulge + disk, some with star-forming knots, optionally real HST COSMOS
shapes) are drawn once per field into an *intrinsic* image (no seeing; a 0.6 px Gaussian keeps
cusps finite and drawing fast), then each epoch convolves it with its own spatially varying PSF by blending the
convolutions with the PSFs at the four image corners. Stars are drawn per epoch as point sources
(`psf.add_point_sources`). Fluxes are in nJy; positions are 0-based pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import galsim
import numpy as np
import scipy.fft as sfft

from .config import AB_NJY_ZERO, SimConfig
from .psf import PSFModel

__all__ = [
    "FieldCatalog",
    "make_field_catalog",
    "render_galaxies",
    "convolve_varying",
    "mag_to_njy",
    "njy_to_mag",
]

_GSP = galsim.GSParams(folding_threshold=2e-2, maxk_threshold=1e-2)
_SMOOTH_PX = 0.6  # sigma of the Gaussian that keeps galaxy cusps finite, pixels


def mag_to_njy(mag):
    """AB magnitude -> flux in nJy."""
    return 10.0 ** ((AB_NJY_ZERO - np.asarray(mag, float)) / 2.5)


def njy_to_mag(flux):
    """Flux in nJy -> AB magnitude (NaN for non-positive flux)."""
    flux = np.asarray(flux, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            flux > 0, AB_NJY_ZERO - 2.5 * np.log10(np.where(flux > 0, flux, 1.0)), np.nan
        )


@dataclass(frozen=True)
class FieldCatalog:
    """Truth catalogue of a field's static sky (all arrays 1-D, one entry per object).

    star_x, star_y : pixels; star_flux : template-epoch flux, nJy; star_variable : bool;
    star_var_amp : rms magnitude change per sqrt(year) for variables (0 otherwise);
    gal_x, gal_y : centre, pixels; gal_flux : nJy; gal_hlr : half-light radius, arcsec;
    gal_kind : 0 parametric, 1 with knots, 2 real HST host.
    """

    star_x: np.ndarray
    star_y: np.ndarray
    star_flux: np.ndarray
    star_variable: np.ndarray
    star_var_amp: np.ndarray
    gal_x: np.ndarray
    gal_y: np.ndarray
    gal_flux: np.ndarray
    gal_hlr: np.ndarray
    gal_q: np.ndarray
    gal_beta: np.ndarray
    gal_bulge: np.ndarray
    gal_kind: np.ndarray


def _power_law_mags(
    rng: np.random.Generator, n: int, lo: float, hi: float, slope: float
) -> np.ndarray:
    """Magnitudes with dN/dm ~ 10**(slope m) on [lo, hi]."""
    a = slope * np.log(10.0)
    u = rng.random(n)
    return np.log(np.exp(a * lo) + u * (np.exp(a * hi) - np.exp(a * lo))) / a


def make_field_catalog(config: SimConfig, rng: np.random.Generator) -> FieldCatalog:
    """Draw the stars and galaxies of one field.

    Objects fill the image plus a margin of 20 pixels, so sources straddle the edges.
    """
    scene = config.scene
    size = config.image_size
    margin = 20.0
    n_bright = rng.poisson(scene.n_bright_stars)
    n_stars = scene.n_stars + n_bright
    mags = np.concatenate(
        [
            _power_law_mags(rng, scene.n_stars, *scene.star_mag, 0.12),
            rng.uniform(*scene.bright_star_mag, n_bright),
        ]
    )
    star_x = rng.uniform(-margin, size - 1 + margin, n_stars)
    star_y = rng.uniform(-margin, size - 1 + margin, n_stars)
    variable = rng.random(n_stars) < scene.variable_fraction
    var_amp = np.where(variable, scene.variable_amp_mag * rng.lognormal(0.0, 0.7, n_stars), 0.0)

    n_gal = scene.n_galaxies
    gal_mag = _power_law_mags(rng, n_gal, *scene.galaxy_mag, 0.3)
    gal_flux = mag_to_njy(gal_mag)
    # Fainter galaxies are smaller: hlr shrinks by ~x0.5 over the magnitude range.
    lo, hi = scene.galaxy_hlr
    frac = (gal_mag - scene.galaxy_mag[0]) / max(scene.galaxy_mag[1] - scene.galaxy_mag[0], 1e-9)
    hlr = np.exp(rng.uniform(np.log(lo), np.log(hi), n_gal)) * (1.0 - 0.5 * frac)
    hlr = np.maximum(hlr, 0.6 * lo)
    kind = np.where(rng.random(n_gal) < scene.knot_fraction, 1, 0)
    if scene.real_host_fraction > 0 and scene.hosts_dir:
        kind = np.where(rng.random(n_gal) < scene.real_host_fraction, 2, kind)
    return FieldCatalog(
        star_x=star_x,
        star_y=star_y,
        star_flux=mag_to_njy(mags),
        star_variable=variable,
        star_var_amp=var_amp,
        gal_x=rng.uniform(-margin, size - 1 + margin, n_gal),
        gal_y=rng.uniform(-margin, size - 1 + margin, n_gal),
        gal_flux=gal_flux,
        gal_hlr=hlr,
        gal_q=rng.uniform(0.25, 1.0, n_gal),
        gal_beta=rng.uniform(0.0, np.pi, n_gal),
        gal_bulge=rng.beta(1.2, 3.0, n_gal),
        gal_kind=kind,
    )


_REAL_HOSTS: dict[str, list[galsim.GSObject]] = {}
_HST_SCALE = 0.03  # arcsec / pixel of the COSMOS ACS images


def _real_hosts(hosts_dir: str) -> list[galsim.GSObject]:
    """Unit-flux, unit-half-light-radius profiles of the real HST galaxy images in `hosts_dir`.

    Every single-HDU FITS file with a 2-D image of at least 40 x 40 pixels is used (GalSim's
    example COSMOS images); its median is subtracted and it is cut to 160 x 160 around the peak.
    Cached per process; an empty list if none is found.
    """
    if hosts_dir in _REAL_HOSTS:
        return _REAL_HOSTS[hosts_dir]
    from astropy.io import fits

    profiles = []
    for path in sorted(Path(hosts_dir).glob("*.fits")):
        try:
            with fits.open(path, memmap=False) as hdus:
                if len(hdus) != 1 or hdus[0].data is None or hdus[0].data.ndim != 2:
                    continue
                data = np.asarray(hdus[0].data, dtype=np.float64)
        except OSError:
            continue
        if min(data.shape) < 40 or not np.isfinite(data).all():
            continue
        data = data - np.median(data)
        py, px = np.unravel_index(np.argmax(ndimage_smooth(data)), data.shape)
        half = 80
        cut = data[max(py - half, 0) : py + half, max(px - half, 0) : px + half]
        if cut.sum() <= 0:
            continue
        obj = galsim.InterpolatedImage(
            galsim.ImageD(cut, scale=_HST_SCALE), flux=1.0, gsparams=_GSP
        )
        hlr = obj.calculateHLR()
        profiles.append(obj.dilate(1.0 / max(hlr, 1e-3)))
    _REAL_HOSTS[hosts_dir] = profiles
    return profiles


def ndimage_smooth(data: np.ndarray) -> np.ndarray:
    """Data smoothed by a 3-pixel Gaussian (to find a galaxy's peak, not a noise spike)."""
    from scipy import ndimage

    return ndimage.gaussian_filter(data, 3.0)


def _galaxy(cat: FieldCatalog, n: int, config: SimConfig, seed: int) -> galsim.GSObject:
    hlr = float(cat.gal_hlr[n])
    flux = float(cat.gal_flux[n])
    shear = galsim.Shear(q=float(cat.gal_q[n]), beta=float(cat.gal_beta[n]) * galsim.radians)
    if cat.gal_kind[n] == 2 and config.scene.hosts_dir:
        hosts = _real_hosts(config.scene.hosts_dir)
        if hosts:
            # A real HST galaxy, resized to the drawn half-light radius and rotated.
            real = hosts[seed % len(hosts)].dilate(hlr).withFlux(flux)
            return real.rotate(float(cat.gal_beta[n]) * galsim.radians)
    disk = galsim.Exponential(half_light_radius=hlr, gsparams=_GSP).shear(shear)
    bulge_frac = float(cat.gal_bulge[n])
    parts = [disk * (1.0 - bulge_frac)]
    if bulge_frac > 0.02:
        bulge = galsim.DeVaucouleurs(half_light_radius=max(0.25 * hlr, 0.05), gsparams=_GSP)
        parts.append(
            bulge.shear(q=min(1.0, float(cat.gal_q[n]) + 0.3), beta=shear.beta) * bulge_frac
        )
    if cat.gal_kind[n] == 1:
        knot_frac = 0.25
        parts[0] = parts[0] * (1.0 - knot_frac)
        knots = galsim.RandomKnots(
            npoints=12,
            half_light_radius=hlr,
            flux=knot_frac,
            rng=galsim.BaseDeviate(seed),
            gsparams=_GSP,
        ).shear(shear)
        parts.append(knots)
    return galsim.Add(parts).withFlux(flux)


def render_galaxies(
    cat: FieldCatalog, config: SimConfig, *, seed: int, progress=None
) -> np.ndarray:
    """Draw all galaxies of `cat` without seeing into an (H, W) float64 image in nJy per pixel.

    Each galaxy is convolved with a 0.6-pixel Gaussian (drawn with the pixel response); the
    epoch PSF is applied later by `convolve_varying` without a second pixel response.
    """
    size = config.image_size
    scale = config.pixel_scale
    smooth = galsim.Gaussian(sigma=_SMOOTH_PX * scale, gsparams=_GSP)
    image = galsim.ImageD(size, size, scale=scale)
    for n in range(len(cat.gal_x)):
        obj = galsim.Convolve(_galaxy(cat, n, config, seed * 100_003 + n), smooth, gsparams=_GSP)
        # numpy pixel (x, y) is GalSim position (x + 1, y + 1).
        pos = galsim.PositionD(cat.gal_x[n] + 1.0, cat.gal_y[n] + 1.0)
        stamp = obj.drawImage(scale=scale, center=pos)
        bounds = stamp.bounds & image.bounds
        if bounds.isDefined():
            image[bounds] += stamp[bounds]
    return image.array.copy()


def convolve_varying(
    image: np.ndarray, psf: PSFModel, *, corner_shifts: np.ndarray | None = None
) -> np.ndarray:
    """Convolve `image` with a spatially varying PSF: bilinear blend of the four corner convolutions.

    Parameters
    ----------
    image : ndarray of shape (H, W)
        Pixelated scene without seeing (already includes the pixel response).
    psf : PSFModel
        The epoch PSF; its global shift is applied.
    corner_shifts : ndarray of shape (4, 2), optional
        Extra (dx, dy) at corners (0,0), (W,0), (0,H), (W,H), pixels: a smooth astrometric residual.

    Returns
    -------
    ndarray of shape (H, W), float64
    """
    h, w = image.shape
    fwhm = psf.fwhm_px() * 1.1
    half = int(np.ceil(5.0 * fwhm)) + 2
    size = 2 * half + 1
    ph, pw = (
        sfft.next_fast_len(h + 2 * half, real=True),
        sfft.next_fast_len(w + 2 * half, real=True),
    )
    padded = np.zeros((ph, pw))
    padded[:h, :w] = image
    spec = sfft.rfft2(padded)
    corners = [(0.0, 0.0), (w - 1.0, 0.0), (0.0, h - 1.0), (w - 1.0, h - 1.0)]
    u = np.linspace(0.0, 1.0, w)[None, :]
    v = np.linspace(0.0, 1.0, h)[:, None]
    weights = [(1 - u) * (1 - v), u * (1 - v), (1 - u) * v, u * v]
    out = np.zeros((h, w))
    for c, (cx, cy) in enumerate(corners):
        dx, dy = psf.shift
        if corner_shifts is not None:
            dx, dy = dx + corner_shifts[c, 0], dy + corner_shifts[c, 1]
        kernel = psf.image(cx, cy, size=size, dx=dx, dy=dy, pixel=False)
        kpad = np.zeros((ph, pw))
        kpad[:size, :size] = kernel
        kpad = np.roll(kpad, (-half, -half), axis=(0, 1))
        conv = sfft.irfft2(spec * sfft.rfft2(kpad), s=(ph, pw))[:h, :w]
        out += conv * weights[c]
    return out
