"""Bin real frames n x n (sum) so that `realbogus template` / `inject` see them at a coarser
pixel scale, with the header still right for the binned data (issue 18 part 3: the SAAO frames at
ZTF-like sampling; docs/real-images.md, "A ZTF version").

    python scripts/bin_frames.py FRAME.fits [FRAME ...] --out DIR [--factor 2]

Per frame, the binned image is the sum of each n x n block (odd rows/columns at the far edge are
dropped), written as float32 with the input's header and:

* ``GAIN`` unchanged (electrons per ADU: a sum of ADU is still ADU), ``RDNOISE`` x n (the read
  noise of n^2 pixels adds in quadrature), so `read_frame`'s variance = counts / gain +
  (read noise / gain)^2 is the sum of the inputs' variances;
* saturation: a block is saturated when any input pixel was (at or above 0.98 x the input's
  `saturation_level`, the rule `read_frame` applies); such blocks are set to a flag value and
  ``SATURATE`` is that value, which no unsaturated block can reach (n^2 x the input level / 0.98),
  so `read_frame` masks exactly them (and grows the mask by one binned pixel as always);
* seeing keys (``PFWHM``, ``PFWHMX``, ``PFWHMY``, ``FWHM``) / n, ``PBKGRND`` x n^2, and
  ``BINFACT`` = n recorded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from astropy.io import fits

from realbogus.injection.frames import read_plane, saturation_level

SEEING = ("PFWHM", "PFWHMX", "PFWHMY", "FWHM")


def bin_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Sum of `factor` x `factor` blocks of `image` (H, W) -> (H // factor, W // factor)."""
    h, w = (s // factor * factor for s in image.shape)
    blocks = image[:h, :w].reshape(h // factor, factor, w // factor, factor)
    return blocks.sum(axis=(1, 3))


def bin_frame(path: Path, out: Path, factor: int) -> dict[str, float]:
    """Write `path` binned by `factor` to `out`; returns its saturated-block count and levels."""
    image, header = read_plane(path, what="frame")
    image = np.asarray(image, dtype=np.float64)
    level = saturation_level(image, header)
    binned = bin_image(image, factor)
    header = header.copy()
    for key in ("BSCALE", "BZERO", "BLANK"):
        header.remove(key, ignore_missing=True)
    n_sat = 0
    if level is not None:
        hit = np.nan_to_num(image, nan=-np.inf) >= 0.98 * level
        sat = bin_image(hit.astype(np.int32), factor) > 0
        flag = float(np.ceil(factor * factor * level / 0.98)) + 1.0
        binned[sat] = flag
        header["SATURATE"] = (flag, "binned: blocks with any saturated input pixel")
        n_sat = int(sat.sum())
    if "RDNOISE" in header:
        header["RDNOISE"] = (
            float(header["RDNOISE"]) * factor,
            f"e-, {factor}x{factor} summed pixels",
        )
    for key in SEEING:
        if key in header:
            header[key] = float(header[key]) / factor
    if "PBKGRND" in header:
        header["PBKGRND"] = float(header["PBKGRND"]) * factor * factor
    header["BINFACT"] = (factor, "summed factor x factor blocks (scripts/bin_frames.py)")
    fits.PrimaryHDU(binned.astype(np.float32), header=header).writeto(out, overwrite=True)
    return {"saturated_blocks": n_sat, "level": level or float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("frames", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--factor", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.frames:
        bin_frame(path, args.out / path.name, args.factor)


if __name__ == "__main__":
    main()
