"""Real-class truth of one visit: PSF fakes, asteroids, transients and variable stars.

Each truth source has a segment (x0, y0) - (x1, y1) (a point for all but trailed asteroids), a
signed flux change in the difference image (nJy; negative = brighter in the template), the
expected SNR of that change, its kind and its catalogue origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import SimConfig
from .scene import FieldCatalog

__all__ = ["TruthTable", "flux_for_snr", "snr_for_flux", "draw_snr", "host_offsets", "pick_hosts"]


@dataclass
class TruthTable:
    """Columns of the truth sources of a visit (lists while building, see `arrays`)."""

    kind: list[str] = field(default_factory=list)
    origin: list[str] = field(default_factory=list)
    seg: list[tuple[float, float, float, float]] = field(default_factory=list)
    flux: list[float] = field(default_factory=list)
    snr: list[float] = field(default_factory=list)
    hosted: list[bool] = field(default_factory=list)

    def add(
        self,
        kind: str,
        origin: str,
        x0: float,
        y0: float,
        flux: float,
        snr: float,
        *,
        x1: float | None = None,
        y1: float | None = None,
        hosted: bool = False,
    ) -> None:
        """Append one truth source."""
        self.kind.append(kind)
        self.origin.append(origin)
        self.seg.append(
            (float(x0), float(y0), float(x0 if x1 is None else x1), float(y0 if y1 is None else y1))
        )
        self.flux.append(float(flux))
        self.snr.append(float(snr))
        self.hosted.append(bool(hosted))

    def __len__(self) -> int:
        return len(self.kind)

    def arrays(self) -> dict[str, np.ndarray]:
        """Columns as arrays: kind, origin (object), seg (n, 4), flux, snr (float), hosted (bool)."""
        return {
            "kind": np.asarray(self.kind, dtype=object),
            "origin": np.asarray(self.origin, dtype=object),
            "seg": np.asarray(self.seg, float).reshape(-1, 4),
            "flux": np.asarray(self.flux, float),
            "snr": np.asarray(self.snr, float),
            "hosted": np.asarray(self.hosted, bool),
        }


def flux_for_snr(
    snr: np.ndarray, *, sky_var_sum: float, neff: float, njy_per_e: float
) -> np.ndarray:
    """Flux (nJy) of a point source whose PSF-fit SNR on the difference image is `snr`.

    Noise: sky (science + template) over the PSF's effective area `neff` (pixels) plus the
    source's own Poisson noise: F^2 = SNR^2 (neff * sky_var_sum + F * njy_per_e).
    """
    s2 = np.asarray(snr, float) ** 2
    a = neff * sky_var_sum
    return 0.5 * (s2 * njy_per_e + np.sqrt((s2 * njy_per_e) ** 2 + 4.0 * s2 * a))


def snr_for_flux(
    flux: np.ndarray,
    *,
    sky_var_sum: float,
    neff: float,
    njy_per_e: float,
    extra_flux: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Expected |SNR| of a flux change `flux` on the difference image (inverse of `flux_for_snr`);
    `extra_flux` adds the Poisson noise of unchanged flux underneath (e.g. a variable star)."""
    f = np.abs(np.asarray(flux, float))
    noise = np.sqrt(neff * sky_var_sum + (f + np.abs(extra_flux)) * njy_per_e)
    return f / noise


def draw_snr(rng: np.random.Generator, n: int, lo: float, hi: float, power: float) -> np.ndarray:
    """n SNRs with dN/dSNR ~ SNR**power on [lo, hi]."""
    u = rng.random(n)
    if abs(power + 1.0) < 1e-9:
        return lo * (hi / lo) ** u
    a = power + 1.0
    return (lo**a + u * (hi**a - lo**a)) ** (1.0 / a)


def host_offsets(
    rng: np.random.Generator, cat: FieldCatalog, hosts: np.ndarray, pixel_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (dx, dy) in pixels from host centres, following an exponential disk (r ~ Gamma(2))."""
    rs = cat.gal_hlr[hosts] / 1.678 / pixel_scale
    r = rng.gamma(2.0, 1.0, len(hosts)) * rs * 0.8
    q = cat.gal_q[hosts]
    phi = rng.uniform(0, 2 * np.pi, len(hosts))
    a, b = r * np.cos(phi), r * np.sin(phi) * q
    beta = cat.gal_beta[hosts]
    return a * np.cos(beta) - b * np.sin(beta), a * np.sin(beta) + b * np.cos(beta)


def pick_hosts(
    rng: np.random.Generator, cat: FieldCatalog, n: int, config: SimConfig, *, border: float
) -> np.ndarray:
    """Indices of n host galaxies inside the image (weighted towards brighter galaxies)."""
    size = config.image_size
    inside = np.flatnonzero(
        (cat.gal_x > border)
        & (cat.gal_x < size - 1 - border)
        & (cat.gal_y > border)
        & (cat.gal_y < size - 1 - border)
    )
    if len(inside) == 0 or n == 0:
        return np.zeros(0, int)
    w = cat.gal_flux[inside] ** 0.5
    return rng.choice(inside, size=n, p=w / w.sum())
