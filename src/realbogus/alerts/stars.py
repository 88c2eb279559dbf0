"""Training samples from real alert cutouts: the field stars in them, as they are and made variable.

Besides its candidate, a real cutout holds field stars with the survey's own subtraction
residuals around them, on its real noise, masks and PSF, which a simulation only approximates.
Centred on such a star (`find_stars`), the stamp as the survey left it is a Bogus sample (the
residual of a star that did not vary; `truthKind` ``star_residual``), and the same stamp with the
star brightened or faded is a Real one (``variable``): a times the star's own background-subtracted
science image is added to the science and difference planes, so the change has the real PSF and
sits on the real residual. The amplitude a gives the change a chosen matched-filter SNR in the
difference. The candidate itself is never used: its label is what we are trying to learn.

This is DMTN-337's "real images + injections" route for surveys whose alerts are all we have.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..numeric import mad_sigma
from ..stamps import Stamps, cut_stamps, stamp_noise_array

__all__ = ["StarConfig", "find_stars", "star_samples"]


@dataclass(frozen=True)
class StarConfig:
    """Which stars are used and how they are made variable.

    Attributes
    ----------
    min_peak_snr : float
        Least peak of a star over the science plane's noise, in both science and template.
    box : int
        Half-width of the box (pixels) taken as the star's image for the injection.
    border : int
        Stars closer than this to the cutout edge are skipped (their box would be cut).
    avoid_centre : int
        Stars closer than this to the cutout centre (the candidate) are skipped.
    snr : (float, float)
        Range of the injected change's SNR in the difference, drawn log-uniformly.
    max_amplitude : float
        Largest brightening, as a fraction of the star's flux (fadings stay under 0.9).
    negative_fraction : float
        Fraction of the variable samples that fade.
    """

    min_peak_snr: float = 15.0
    box: int = 6
    border: int = 8
    avoid_centre: int = 6
    snr: tuple[float, float] = (6.0, 100.0)
    max_amplitude: float = 2.0
    negative_fraction: float = 0.3

    def __post_init__(self) -> None:
        if not (
            self.min_peak_snr > 0
            and self.box >= 1
            and self.border >= self.box
            and 0 < self.snr[0] < self.snr[1]
        ):
            msg = f"StarConfig out of range: {self}"
            raise ConfigError(msg)


def find_stars(stamps: np.ndarray, config: StarConfig = StarConfig()) -> pd.DataFrame:
    """Field stars in cutouts: local maxima of the science plane present in the template too.

    Parameters
    ----------
    stamps : ndarray of shape (N, 3, S, S)
        [difference, science, template] in one pixel unit, sky subtracted, 0 = invalid.

    Returns
    -------
    DataFrame
        One row per star: `cutout` (index into `stamps`), `x`, `y` (pixels), `peak_snr`.
    """
    rows = []
    size = stamps.shape[-1]
    centre = size // 2
    for i, (diff, sci, tmpl) in enumerate(stamps):
        valid = (diff != 0) & (sci != 0) & (tmpl != 0)
        if valid.mean() < 0.5:
            continue
        noise = mad_sigma(sci[valid])
        if not noise > 0:
            continue
        b = config.border
        inner = sci[b : size - b, b : size - b]
        around = np.stack(
            [
                np.roll(np.roll(sci, dy, 0), dx, 1)[b : size - b, b : size - b]
                for dy in (-1, 0, 1)
                for dx in (-1, 0, 1)
                if dy or dx
            ]
        )
        peaks = (inner > around.max(axis=0)) & (inner > config.min_peak_snr * noise)
        peaks &= tmpl[b : size - b, b : size - b] > config.min_peak_snr * noise
        for y, x in zip(*np.nonzero(peaks), strict=True):
            y, x = y + b, x + b
            if np.hypot(x - centre, y - centre) < config.avoid_centre:
                continue
            box = valid[y - config.box : y + config.box + 1, x - config.box : x + config.box + 1]
            if not box.all():  # flagged pixels near the star: its image is not whole
                continue
            rows.append((i, int(x), int(y), float(sci[y, x] / noise)))
    return pd.DataFrame(rows, columns=["cutout", "x", "y", "peak_snr"])


def star_samples(
    stamps: np.ndarray,
    stars: pd.DataFrame,
    *,
    size: int,
    seed: int,
    config: StarConfig = StarConfig(),
) -> tuple[pd.DataFrame, Stamps]:
    """Two samples per star, centred on it: as it is (Bogus) and made variable (Real).

    Parameters
    ----------
    stamps : ndarray of shape (N, 3, S, S)
        The cutouts `stars` were found in (as for `find_stars`).
    stars : DataFrame from `find_stars`
    size : int
        Side of the samples, pixels (windows beyond the cutout are zero: `valid_fraction` < 1).
    seed : int
        Seeds the SNR and sign of each injection.

    Returns
    -------
    table : DataFrame
        Per sample: `cutout`, `x`, `y` (star in the cutout), `label` (1 variable, 0 as is),
        `truthKind`, `snr` (injected SNR; NaN for Bogus), `amplitude` (signed fraction of the
        star's flux; 0 for Bogus). Bogus then Real for each star, in `stars` order.
    samples : Stamps of 2 x len(stars)
    """
    rng = np.random.default_rng(seed)
    r = config.box
    noise = stamp_noise_array(stamps) if len(stamps) else np.zeros(0, np.float32)
    rows, pieces = [], []
    for star in stars.itertuples(index=False):
        diff, sci, tmpl = (
            np.where(p == 0, np.nan, p).astype(np.float32) for p in stamps[star.cutout]
        )
        image = np.nan_to_num(sci[star.y - r : star.y + r + 1, star.x - r : star.x + r + 1])
        snr = float(np.exp(rng.uniform(*np.log(config.snr))))
        negative = rng.random() < config.negative_fraction
        amplitude = snr * float(noise[star.cutout]) / float(np.sqrt(np.sum(image**2)))
        amplitude = min(amplitude, 0.9 if negative else config.max_amplitude)
        signed = -amplitude if negative else amplitude
        varied_sci, varied_diff = sci.copy(), diff.copy()
        window = np.s_[star.y - r : star.y + r + 1, star.x - r : star.x + r + 1]
        varied_sci[window] += signed * image
        varied_diff[window] += signed * image
        x, y = np.array([star.x], float), np.array([star.y], float)
        pieces.append(cut_stamps(diff, sci, tmpl, x, y, size=size))
        pieces.append(cut_stamps(varied_diff, varied_sci, tmpl, x, y, size=size))
        achieved = amplitude * float(np.sqrt(np.sum(image**2))) / float(noise[star.cutout])
        rows.append((star.cutout, star.x, star.y, 0, "star_residual", np.nan, 0.0))
        rows.append((star.cutout, star.x, star.y, 1, "variable", achieved, signed))
    table = pd.DataFrame(
        rows, columns=["cutout", "x", "y", "label", "truthKind", "snr", "amplitude"]
    )
    return table, Stamps.concat(pieces, size)
