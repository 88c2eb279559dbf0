"""Point-spread functions that vary between epochs and across the image, drawn with GalSim.

A PSF is a GalSim profile (Kolmogorov for single science exposures, Moffat for coadded templates)
whose FWHM and shear change linearly with the normalised position u = 2 x / (W - 1) - 1,
v = 2 y / (H - 1) - 1 (both in [-1, 1]). Pixel convention: 0-based numpy (x = column, y = row,
pixel centres at integers); GalSim's 1-based positions never leave this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import galsim
import numpy as np

__all__ = ["PSFModel", "add_point_sources", "point_source_size"]

_GSP = galsim.GSParams(folding_threshold=5e-3, maxk_threshold=2e-3)


@dataclass(frozen=True)
class PSFModel:
    """A spatially varying PSF of one image.

    Attributes
    ----------
    profile : {"kolmogorov", "moffat"}
        Radial profile.
    fwhm : float
        FWHM at the image centre, arcsec.
    beta : float
        Moffat index (ignored for Kolmogorov).
    g1, g2 : float
        Reduced shear at the image centre.
    grad_fwhm : (float, float)
        Fractional FWHM change per unit u and v.
    grad_g : (float, float, float, float)
        d g1/du, d g1/dv, d g2/du, d g2/dv.
    shift : (float, float)
        Global (dx, dy) offset of every source drawn with this PSF, pixels (residual misregistration).
    shape : (int, int)
        Image shape (H, W), pixels.
    pixel_scale : float
        arcsec / pixel.
    """

    profile: str
    fwhm: float
    beta: float
    g1: float
    g2: float
    grad_fwhm: tuple[float, float]
    grad_g: tuple[float, float, float, float]
    shift: tuple[float, float]
    shape: tuple[int, int]
    pixel_scale: float

    def _uv(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.shape
        return 2.0 * np.asarray(x, float) / (w - 1) - 1.0, 2.0 * np.asarray(y, float) / (
            h - 1
        ) - 1.0

    def params_at(self, x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """FWHM (arcsec), g1, g2 at pixel positions (x, y); arrays of the broadcast shape."""
        u, v = self._uv(x, y)
        fwhm = self.fwhm * (1.0 + self.grad_fwhm[0] * u + self.grad_fwhm[1] * v)
        g1 = self.g1 + self.grad_g[0] * u + self.grad_g[1] * v
        g2 = self.g2 + self.grad_g[2] * u + self.grad_g[3] * v
        return fwhm, g1, g2

    def fwhm_px(self, x: float | None = None, y: float | None = None) -> float:
        """FWHM in pixels at (x, y) (default the centre)."""
        if x is None:
            return self.fwhm / self.pixel_scale
        return float(self.params_at(x, y)[0]) / self.pixel_scale

    def gsobject(self, x: float, y: float, flux: float = 1.0) -> galsim.GSObject:
        """The GalSim profile at pixel (x, y) with total `flux` (sky units, arcsec)."""
        fwhm, g1, g2 = (float(a) for a in self.params_at(x, y))
        if self.profile == "moffat":
            obj = galsim.Moffat(beta=self.beta, fwhm=fwhm, flux=flux, gsparams=_GSP)
        else:
            obj = galsim.Kolmogorov(fwhm=fwhm, flux=flux, gsparams=_GSP)
        return obj.shear(g1=g1, g2=g2)

    def image(
        self, x: float, y: float, *, size: int, dx: float = 0.0, dy: float = 0.0, pixel: bool = True
    ) -> np.ndarray:
        """Unit-flux PSF image of shape (size, size) centred at pixel size // 2 plus (dx, dy).

        `pixel=False` leaves out the pixel response (for convolving an already pixelated scene).
        The global `shift` is *not* applied here; callers add it where a source is drawn.
        """
        obj = self.gsobject(x, y)
        method = "auto" if pixel else "no_pixel"
        img = obj.drawImage(
            nx=size, ny=size, scale=self.pixel_scale, offset=(dx, dy), method=method
        )
        return img.array.astype(np.float64)

    def images_at(self, x: np.ndarray, y: np.ndarray, *, size: int) -> np.ndarray:
        """Unit-flux PSF images of shape (N, size, size) centred on the sub-pixel positions (x, y).

        Image n is centred on pixel (round(x_n), round(y_n)) and offset by the fractional part,
        as a source at (x_n, y_n) lands in a box cut at its rounded position.
        """
        x = np.atleast_1d(np.asarray(x, float))
        y = np.atleast_1d(np.asarray(y, float))
        out = np.empty((len(x), size, size))
        ix, iy = np.floor(x + 0.5), np.floor(y + 0.5)
        for n in range(len(x)):
            out[n] = self.image(x[n], y[n], size=size, dx=x[n] - ix[n], dy=y[n] - iy[n])
        return out


def point_source_size(flux_e: float, fwhm_px: float, sky_sigma_e: float) -> int:
    """Odd stamp side (pixels) that holds a point source of `flux_e` electrons down to ~sky noise/3."""
    # Wings of a Kolmogorov/Moffat PSF fall roughly as r**-3.7 beyond the core.
    peak = max(flux_e, 1.0) / (1.13 * fwhm_px**2)
    ratio = max(peak / max(sky_sigma_e / 3.0, 1e-3), 1.0)
    radius = fwhm_px * (0.8 + ratio ** (1 / 3.7) * 0.6)
    radius = float(np.clip(radius, 2.5 * fwhm_px, 120))
    return 2 * int(np.ceil(radius)) + 1


def add_point_sources(
    image: np.ndarray,
    psf: PSFModel,
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    *,
    sky_sigma: float,
    jitter: np.ndarray | None = None,
) -> None:
    """Add point sources (flux in the image's units) drawn with the local PSF, in place.

    Parameters
    ----------
    image : ndarray of shape (H, W), float64
        Image to add to (units of `flux` per pixel).
    psf : PSFModel
        The image's PSF; its global `shift` is applied.
    x, y : ndarray of shape (N,)
        Source positions, pixels (0-based).
    flux : ndarray of shape (N,)
        Total fluxes; zero or negative fluxes are skipped.
    sky_sigma : float
        Sky noise per pixel in the image's units (sets the drawn stamp size).
    jitter : ndarray of shape (N, 2), optional
        Extra per-source (dx, dy) offsets, pixels.
    """
    h, w = image.shape
    fwhm_px = psf.fwhm_px()
    for n in range(len(x)):
        f = float(flux[n])
        if not f > 0:
            continue
        sx = x[n] + psf.shift[0] + (0.0 if jitter is None else jitter[n, 0])
        sy = y[n] + psf.shift[1] + (0.0 if jitter is None else jitter[n, 1])
        size = point_source_size(f, fwhm_px, sky_sigma)
        ix, iy = int(np.floor(sx + 0.5)), int(np.floor(sy + 0.5))
        half = size // 2
        r0, r1 = max(iy - half, 0), min(iy + half + 1, h)
        c0, c1 = max(ix - half, 0), min(ix + half + 1, w)
        if r1 <= r0 or c1 <= c0:
            continue
        stamp = (
            psf.gsobject(x[n], y[n], flux=f)
            .drawImage(nx=size, ny=size, scale=psf.pixel_scale, offset=(sx - ix, sy - iy))
            .array
        )
        image[r0:r1, c0:c1] += stamp[
            r0 - (iy - half) : r1 - (iy - half), c0 - (ix - half) : c1 - (ix - half)
        ]
