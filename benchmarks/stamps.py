"""Stamps per second: cutting 10,000 triplets from a 4096x4096 image triplet.

Compares, in one run: realbogus.stamps.cut_stamps (vectorised gather) against an astropy
Cutout2D loop (one source at a time, the way per-source pipelines cut) and against the loop
of Rubin's production task (slice + nan_to_num per source, all-zero stamps at edges).

    python benchmarks/stamps.py [--n 10000] [--size 51] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from astropy.nddata import Cutout2D
from rich.console import Console
from rich.table import Table

from realbogus.stamps import cut_stamps


def astropy_loop(images, x, y, size):
    out = np.zeros((len(x), 3, size, size), np.float32)
    for i in range(len(x)):
        for c, image in enumerate(images):
            cut = Cutout2D(image, (x[i], y[i]), size, mode="partial", fill_value=0.0, copy=False)
            out[i, c] = np.nan_to_num(cut.data, nan=0.0, posinf=0.0, neginf=0.0)
    return out


def rubin_loop(images, x, y, size):
    """meas_transiNet _make_cutouts: per-source box; all zeros when it leaves the image."""
    out = np.zeros((len(x), 3, size, size), np.float32)
    h, w = images[0].shape
    half = size // 2
    for i in range(len(x)):
        cx, cy = int(np.floor(x[i] + 0.5)), int(np.floor(y[i] + 0.5))
        if cx - half < 0 or cy - half < 0 or cx + half >= w or cy + half >= h:
            continue
        for c, image in enumerate(images):
            out[i, c] = np.nan_to_num(image[cy - half : cy + half + 1, cx - half : cx + half + 1])
    return out


def best_time(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=51)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--baseline-n", type=int, default=2_000, help="sources timed for the slow loops"
    )
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = [rng.normal(size=(4096, 4096)).astype(np.float32) for _ in range(3)]
    with_nan_row = [im.copy() for im in images]
    with_nan_row[1][1000, :] = np.nan  # a NaN row, as in real science images (DMTN-337)
    x = rng.uniform(0, 4096, args.n)
    y = rng.uniform(0, 4096, args.n)
    bx, by = x[: args.baseline_n], y[: args.baseline_n]

    rows = []
    for label, planes in (("clean images", images), ("a NaN row in science", with_nan_row)):
        ours = lambda planes=planes: cut_stamps(*planes, x, y, size=args.size)  # noqa: E731
        ours()  # warm-up: first touch of the output memory
        best, median = best_time(ours, args.repeat)
        rows.append((f"realbogus cut_stamps, {label}", args.n, best, median))
    images = with_nan_row
    for name, fn in (
        ("astropy Cutout2D loop", astropy_loop),
        ("Rubin meas_transiNet-style loop", rubin_loop),
    ):
        best, median = best_time(
            lambda fn=fn: fn(images, bx, by, args.size), max(1, args.repeat // 2)
        )
        rows.append((name, args.baseline_n, best, median))

    table = Table(title=f"{args.size}x{args.size} triplets from a 4096x4096 image triplet")
    for column in ("method", "stamps", "best s", "median s", "stamps/s (best)", "vs astropy"):
        table.add_column(column, justify="right")
    astropy_rate = rows[2][1] / rows[2][2]
    for name, n, best, median in rows:
        table.add_row(
            name,
            f"{n}",
            f"{best:.4f}",
            f"{median:.4f}",
            f"{n / best:,.0f}",
            f"{n / best / astropy_rate:.1f}x",
        )
    console = Console(width=120)
    console.print(table)
    console.print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}"
    )


if __name__ == "__main__":
    main()
