"""Throughput of `inject` on real frames: labelled detections per second.

Builds a template from the SAAO 1.0 m frames in ../shared/data/images/saao-1m (the --best
best-seeing ones), then injects into --frames of the others with 1 and 2 worker processes and
prints wall-clock and CPU-normalised rates. The machine is shared, so both are given: "det/s" is
wall clock (what a user waits), "det/CPU-s" divides by the CPU seconds the run got (parent plus
workers): what one idle core delivers. The 1-minute load average before and after each run is
printed with it. Target (issue 18): >= 150 labelled detections/s on 2 cores.

    PYTHONPATH=src python benchmarks/inject.py --frames 12
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from realbogus.injection import build_template, read_frame, write_template
from realbogus.injection.inject import InjectConfig
from realbogus.injection.run import inject_dataset
from realbogus.io.dataset import open_dataset

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images" / "saao-1m"
TARGET = 150.0


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run(
    science: list[Path],
    template: Path,
    workers: int,
    fakes: int,
    rescale: bool = True,
    density: bool = True,
) -> dict:
    out = Path(tempfile.mkdtemp(prefix="rb-bench-inject-")) / "data"
    load0 = os.getloadavg()[0]
    try:
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        inject_dataset(
            science,
            template,
            out,
            config=InjectConfig(n_fakes=fakes, rescale_noise=rescale, noise_density=density),
            seed=1,
            workers=workers,
            preview=False,
        )
        wall = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0
        n = len(open_dataset(out))
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
    return {
        "frames": len(science),
        "workers": workers,
        "detections": n,
        "wall": wall,
        "cpu": cpu,
        "rate": n / wall,
        "rate_cpu": n / cpu,
        "load": (load0, os.getloadavg()[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12, help="science frames per run")
    parser.add_argument("--best", type=int, default=10, help="template frames")
    parser.add_argument("--fakes", type=int, default=60, help="fakes per frame")
    parser.add_argument(
        "--no-noise-rescale",
        action="store_true",
        help="inject as `realbogus inject --no-noise-rescale` (the variance plane as given)",
    )
    parser.add_argument(
        "--no-noise-density",
        action="store_true",
        help="inject as `realbogus inject --no-noise-density` (one noise factor per frame)",
    )
    args = parser.parse_args()
    paths = sorted(DATA.glob("*.fits"))
    if not paths:
        raise SystemExit(f"no SAAO frames under {DATA}")
    tmp = Path(tempfile.mkdtemp(prefix="rb-bench-template-"))
    try:
        t0 = time.perf_counter()
        template = build_template([read_frame(p) for p in paths], best=args.best)
        t_template = time.perf_counter() - t0
        write_template(template, tmp / "T.fits")
        used = set(template.frames["name"])
        science = [p for p in paths if p.stem not in used][: args.frames]
        rows = [
            run(
                science,
                tmp / "T.fits",
                w,
                args.fakes,
                not args.no_noise_rescale,
                not args.no_noise_density,
            )
            for w in (1, 2)
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"template of {args.best} from {len(paths)} frames: {t_template:.1f} s")
    print(
        f"noise rescaling: {'off' if args.no_noise_rescale else 'on'}, "
        f"by density: {'off' if args.no_noise_density else 'on'}"
    )
    print("| frames | workers | detections | wall s | CPU s | det/s | det/CPU-s | load 1-min |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['frames']} | {r['workers']} | {r['detections']} | {r['wall']:.1f} | "
            f"{r['cpu']:.1f} | {r['rate']:.0f} | {r['rate_cpu']:.0f} | "
            f"{r['load'][0]:.1f} -> {r['load'][1]:.1f} |"
        )
    print(f"target: >= {TARGET:.0f} det/s on 2 cores (cores: {os.cpu_count()})")


if __name__ == "__main__":
    main()
