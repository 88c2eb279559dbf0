"""Instrumental artifacts added to the science (and sometimes the template) image.

Every artifact is recorded as a segment (x0, y0) - (x1, y1) with a capture radius, so that a
detection can later be attributed to the nearest artifact (`labels.py`). Points are zero-length
segments. Images are float64 arrays in nJy per pixel; 0-based pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .config import ArtifactConfig

__all__ = [
    "ArtifactLog",
    "add_cosmic_rays",
    "add_hot_pixels",
    "add_bad_column",
    "add_nan_rowcol",
    "add_satellite",
    "add_edge_glow",
    "add_noise_patches",
    "saturate",
    "add_crosstalk",
]


@dataclass
class ArtifactLog:
    """Segments of artifacts: kind, endpoints (pixels) and capture radius (pixels)."""

    kind: list[str] = field(default_factory=list)
    seg: list[tuple[float, float, float, float]] = field(default_factory=list)
    radius: list[float] = field(default_factory=list)

    def add(
        self,
        kind: str,
        x0: float,
        y0: float,
        x1: float | None = None,
        y1: float | None = None,
        radius: float = 2.0,
    ) -> None:
        """Record one artifact (a point when x1, y1 are omitted)."""
        self.kind.append(kind)
        self.seg.append(
            (float(x0), float(y0), float(x0 if x1 is None else x1), float(y0 if y1 is None else y1))
        )
        self.radius.append(float(radius))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(kind (n,), seg (n, 4), radius (n,)) as numpy arrays."""
        seg = np.asarray(self.seg, float).reshape(-1, 4)
        return np.asarray(self.kind, dtype=object), seg, np.asarray(self.radius, float)


def _deposit(image: np.ndarray, xs: np.ndarray, ys: np.ndarray, values: np.ndarray) -> None:
    h, w = image.shape
    ix, iy = np.floor(xs + 0.5).astype(int), np.floor(ys + 0.5).astype(int)
    ok = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    np.add.at(image, (iy[ok], ix[ok]), values[ok])


def add_cosmic_rays(
    image: np.ndarray,
    n: int,
    *,
    njy_per_e: float,
    rng: np.random.Generator,
    log: ArtifactLog,
    kind: str = "cosmic_ray",
    sign: float = 1.0,
) -> None:
    """Sharp tracks (no PSF) of 0.5-12 pixels with 300-6000 electrons per pixel."""
    h, w = image.shape
    for _ in range(n):
        x0, y0 = rng.uniform(0, w - 1), rng.uniform(0, h - 1)
        length = min(rng.exponential(3.0), 12.0)
        theta = rng.uniform(0, np.pi)
        x1, y1 = x0 + length * np.cos(theta), y0 + length * np.sin(theta)
        m = max(int(length * 3), 1)
        t = np.linspace(0, 1, m)
        per_px = rng.lognormal(np.log(1500.0), 0.7) * njy_per_e
        values = np.full(m, per_px / 3.0) * rng.uniform(0.6, 1.4, m)
        if m == 1:
            values[:] = per_px
        _deposit(image, x0 + t * (x1 - x0), y0 + t * (y1 - y0), sign * values)
        log.add(kind, x0, y0, x1, y1, radius=2.5)


def add_hot_pixels(
    image: np.ndarray, n: int, *, njy_per_e: float, rng: np.random.Generator, log: ArtifactLog
) -> None:
    """Single (sometimes paired) hot pixels of 150-5000 electrons."""
    h, w = image.shape
    for _ in range(n):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        amp = rng.lognormal(np.log(800.0), 0.9) * njy_per_e
        image[y, x] += amp
        if rng.random() < 0.3 and y + 1 < h:
            image[y + 1, x] += amp * rng.uniform(0.2, 0.8)
        log.add("hot_pixel", x, y, radius=2.0)


def add_bad_column(
    image: np.ndarray, *, sky_sigma: float, rng: np.random.Generator, log: ArtifactLog
) -> None:
    """A column segment offset by +-(1.5-8) sky sigma per pixel (hot or dead column)."""
    h, w = image.shape
    x = int(rng.integers(0, w))
    y0 = int(rng.integers(0, h // 2))
    y1 = int(rng.integers(y0 + h // 8, h + 1))
    sign = 1.0 if rng.random() < 0.6 else -1.0
    amp = sign * rng.uniform(1.5, 8.0) * sky_sigma
    image[y0:y1, x] += amp
    log.add("bad_column", x, y0, x, y1 - 1, radius=2.5)


def add_nan_rowcol(
    image: np.ndarray, *, rng: np.random.Generator, log: ArtifactLog, max_segments: int = 3
) -> None:
    """1-`max_segments` full or partial rows/columns of NaN (masked readout, DMTN-337's failure mode)."""
    h, w = image.shape
    for _ in range(int(rng.integers(1, max_segments + 1))):
        width = int(rng.integers(1, 4))
        if rng.random() < 0.5:
            x = int(rng.integers(0, w - width))
            y0 = 0 if rng.random() < 0.5 else int(rng.integers(0, h // 2))
            image[y0:, x : x + width] = np.nan
            log.add(
                "nan_rowcol",
                x + (width - 1) / 2,
                y0,
                x + (width - 1) / 2,
                h - 1,
                radius=1.5 + width / 2,
            )
        else:
            y = int(rng.integers(0, h - width))
            x0 = 0 if rng.random() < 0.5 else int(rng.integers(0, w // 2))
            image[y : y + width, x0:] = np.nan
            log.add(
                "nan_rowcol",
                x0,
                y + (width - 1) / 2,
                w - 1,
                y + (width - 1) / 2,
                radius=1.5 + width / 2,
            )


def add_satellite(
    image: np.ndarray,
    *,
    fwhm_px: float,
    sky_sigma: float,
    rng: np.random.Generator,
    log: ArtifactLog,
    sign: float = 1.0,
) -> None:
    """A straight trail across the image: Gaussian cross-section (1-2.5 x the PSF), 1-20 sigma peak."""
    h, w = image.shape
    x0, y0 = rng.uniform(0, w - 1), rng.uniform(0, h - 1)
    theta = rng.uniform(0, np.pi)
    width = fwhm_px / 2.355 * rng.uniform(1.0, 2.5)
    peak = rng.lognormal(np.log(4.0), 0.8) * sky_sigma
    yy, xx = np.mgrid[0:h, 0:w]
    dist = (xx - x0) * np.sin(theta) - (yy - y0) * np.cos(theta)
    band = np.abs(dist) < 6 * width
    # Brightness flickers along the trail (tumbling satellite).
    along = (xx - x0) * np.cos(theta) + (yy - y0) * np.sin(theta)
    flicker = 1.0 + 0.4 * np.sin(along[band] / rng.uniform(8, 60) + rng.uniform(0, 6.3))
    image[band] += sign * peak * flicker * np.exp(-0.5 * (dist[band] / width) ** 2)
    # Endpoints where the line leaves the image (long segment is enough for attribution).
    big = 2.0 * (h + w)
    log.add(
        "satellite",
        x0 - big * np.cos(theta),
        y0 - big * np.sin(theta),
        x0 + big * np.cos(theta),
        y0 + big * np.sin(theta),
        radius=4 * width + 2,
    )


def add_edge_glow(
    image: np.ndarray, *, sky_sigma: float, rng: np.random.Generator, log: ArtifactLog
) -> None:
    """Amplifier glow: an exponential bump from one corner plus a few bright pixels at the edge."""
    h, w = image.shape
    cx = 0.0 if rng.random() < 0.5 else w - 1.0
    cy = 0.0 if rng.random() < 0.5 else h - 1.0
    scale = rng.uniform(8.0, 30.0)
    amp = rng.uniform(5.0, 40.0) * sky_sigma
    r = int(8 * scale)
    y0, y1 = int(max(cy - r, 0)), int(min(cy + r + 1, h))
    x0, x1 = int(max(cx - r, 0)), int(min(cx + r + 1, w))
    yy, xx = np.mgrid[y0:y1, x0:x1]
    rr = np.hypot(xx - cx, yy - cy)
    # Lumpy glow: a few blobs along the edges near the corner.
    glow = amp * np.exp(-rr / scale)
    for _ in range(int(rng.integers(2, 6))):
        bx = cx + (1 if cx == 0 else -1) * rng.uniform(0, 3 * scale)
        by = cy + (1 if cy == 0 else -1) * rng.uniform(0, 3 * scale)
        glow += (
            amp
            * rng.uniform(0.2, 0.7)
            * np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * rng.uniform(1.5, 4) ** 2))
        )
    image[y0:y1, x0:x1] += glow
    log.add("edge", cx, cy, radius=4 * scale)


def add_noise_patches(
    image: np.ndarray,
    n: int,
    *,
    fwhm_px: float,
    sky_sigma: float,
    cfg: ArtifactConfig,
    rng: np.random.Generator,
    log: ArtifactLog,
) -> None:
    """Regions of extra correlated noise that the variance plane does not know about (scattered light,
    pickup): they make noise peaks that pass 5 sigma and look almost, not quite, like faint sources."""
    h, w = image.shape
    for _ in range(n):
        radius = rng.uniform(40.0, 120.0)
        cx, cy = rng.uniform(0, w - 1), rng.uniform(0, h - 1)
        y0, y1 = int(max(cy - radius, 0)), int(min(cy + radius + 1, h))
        x0, x1 = int(max(cx - radius, 0)), int(min(cx + radius + 1, w))
        if y1 - y0 < 4 or x1 - x0 < 4:
            continue
        sig_p = fwhm_px / 2.355
        corr = sig_p * rng.uniform(0.5, 1.2)
        noise = ndimage.gaussian_filter(
            rng.standard_normal((y1 - y0, x1 - x0)), corr, mode="reflect"
        )
        noise /= noise.std() + 1e-12
        yy, xx = np.mgrid[y0:y1, x0:x1]
        taper = np.clip(1.5 * (1.0 - np.hypot(xx - cx, yy - cy) / radius), 0, 1)
        # Per-pixel rms that gives the requested rms on the matched-filter SNR map (Gaussian
        # approximation: gain = 2 sqrt(pi) sig_p corr / sqrt(sig_p^2 + corr^2)).
        gain = 2.0 * np.sqrt(np.pi) * sig_p * corr / np.hypot(sig_p, corr)
        amp = rng.uniform(*cfg.noise_patch_amp) / gain
        image[y0:y1, x0:x1] += amp * sky_sigma * noise * taper
        log.add("noise", cx, cy, radius=radius)


def saturate(
    image: np.ndarray,
    level: float,
    *,
    bleed: bool,
    log: ArtifactLog | None = None,
    star_xy: np.ndarray | None = None,
) -> np.ndarray:
    """Clip pixels at `level`; with `bleed`, spill each saturated column run's excess along the column.

    Returns the boolean mask of saturated pixels (shape of `image`). Bleed trails are logged as
    ``saturated_star`` segments.
    """
    over = image > level
    if not over.any():
        return over
    if bleed:
        labels, n = ndimage.label(over)
        for sl_index, sl in enumerate(ndimage.find_objects(labels), start=1):
            if sl is None:
                continue
            rows, cols = sl
            block = image[rows, cols]
            mine = labels[rows, cols] == sl_index
            excess = np.where(mine, block - level, 0.0).sum(axis=0)
            ymin, ymax = rows.start, rows.stop
            for j, col in enumerate(range(cols.start, cols.stop)):
                extra = int(excess[j] / level / 2.0)
                if extra <= 0:
                    continue
                image[max(ymin - extra, 0) : ymin, col] = level
                image[ymax : ymax + extra, col] = level
            if log is not None:
                xc = 0.5 * (cols.start + cols.stop - 1)
                ext = int(excess.max() / level / 2.0)
                log.add(
                    "saturated_star",
                    xc,
                    ymin - ext,
                    xc,
                    ymax - 1 + ext,
                    radius=4.0 + (cols.stop - cols.start),
                )
        over = image >= level
    np.minimum(image, level, out=image)
    return over


def add_crosstalk(
    image: np.ndarray,
    saturated: np.ndarray,
    *,
    background: float,
    coefficient: tuple[float, float],
    margin: int,
    rng: np.random.Generator,
    log: ArtifactLog,
) -> None:
    """Crosstalk ghosts of saturated stars, as between the four amplifiers of a CCD.

    The image is read as 2 x 2 amplifiers; each saturated blob (with its bleed trail and `margin`
    pixels around) is copied, times a coefficient drawn log-uniformly in `coefficient`, mirrored
    into the other three at the mirrored positions. The copies carry the clipped, flat-topped
    profile of the saturated star, and are in the science image only (one ghost of the same
    size in each of the other amplifiers: ZTF's "rows of dots").
    """
    h, w = image.shape
    labels, _ = ndimage.label(saturated)
    for rows, cols in ndimage.find_objects(labels):
        y0, y1 = max(rows.start - margin, 0), min(rows.stop + margin, h)
        x0, x1 = max(cols.start - margin, 0), min(cols.stop + margin, w)
        patch = np.clip(image[y0:y1, x0:x1] - background, 0.0, None)
        c = float(np.exp(rng.uniform(np.log(coefficient[0]), np.log(coefficient[1]))))
        for flip_y, flip_x in ((False, True), (True, False), (True, True)):
            gy0, gx0 = (h - y1 if flip_y else y0), (w - x1 if flip_x else x0)
            ghost = patch[:: -1 if flip_y else 1, :: -1 if flip_x else 1]
            image[gy0 : gy0 + ghost.shape[0], gx0 : gx0 + ghost.shape[1]] += c * ghost
            log.add(
                "crosstalk",
                gx0 + (ghost.shape[1] - 1) / 2,
                gy0 + (ghost.shape[0] - 1) / 2,
                radius=max(3.0, (cols.stop - cols.start) / 2 + margin),
            )
