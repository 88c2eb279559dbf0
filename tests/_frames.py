"""Generated star-field frames with known shifts and PSFs, for the injection tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy.special import erf


def star_field(rng: np.random.Generator, n: int, size: int, pad: int = 40) -> np.ndarray:
    """(n, 3) x, y, flux (electrons) of stars over a field `pad` px larger than the frames."""
    x = rng.uniform(-pad, size + pad, n)
    y = rng.uniform(-pad, size + pad, n)
    flux = 3e3 * (1 - rng.random(n)) ** (-1 / 0.8)  # a power law: many faint, few bright
    return np.c_[x, y, np.minimum(flux, 3e6)]


def render(
    stars: np.ndarray,
    *,
    size: int,
    fwhm: float,
    shift: tuple[float, float] = (0.0, 0.0),
    sky: float = 2000.0,
    gain: float = 2.0,
    read_noise: float = 5.0,
    rng: np.random.Generator,
    saturation: float = 60000.0,
) -> np.ndarray:
    """A frame in ADU: Gaussian stars (pixel-integrated) at star positions + `shift`, sky,
    Poisson and read noise, clipped at `saturation`."""
    sigma = fwhm / 2.3548
    img = np.zeros((size, size))
    edges = np.arange(size + 1) - 0.5
    for x, y, f in stars:
        cx, cy = x + shift[0], y + shift[1]
        r = int(6 * sigma) + 2
        ix, iy = int(round(cx)), int(round(cy))
        if ix + r < 0 or iy + r < 0 or ix - r >= size or iy - r >= size:
            continue
        x0, x1 = max(ix - r, 0), min(ix + r + 1, size)
        y0, y1 = max(iy - r, 0), min(iy + r + 1, size)
        ex = erf((edges[x0 : x1 + 1] - cx) / (np.sqrt(2) * sigma))
        ey = erf((edges[y0 : y1 + 1] - cy) / (np.sqrt(2) * sigma))
        img[y0:y1, x0:x1] += f * 0.25 * np.outer(np.diff(ey), np.diff(ex))
    electrons = rng.poisson(np.maximum(img + sky * gain, 0)).astype(float)
    electrons += rng.normal(0, read_noise, img.shape)
    return np.minimum(electrons / gain, saturation)


def write_frame(path: Path, image: np.ndarray, **header) -> Path:
    """Write `image` as a FITS frame with GAIN, RDNOISE and the given header keys."""
    h = fits.Header()
    h["GAIN"] = 2.0
    h["RDNOISE"] = 5.0
    h["TELESCOP"] = "TEST"
    for key, value in header.items():
        h[key] = value
    fits.PrimaryHDU(image.astype(np.float32), header=h).writeto(path, overwrite=True)
    return path
