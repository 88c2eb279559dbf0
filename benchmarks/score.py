"""Scoring speed: stamps/s and visit latency, against Rubin's way and ONNX Runtime defaults.

All rows come from one run on the same stamps, timed interleaved (method after method, repeat
after repeat) so that load from other processes hits every row alike; each number is the best
of `--repeat` runs, with the median beside it.

Rows:
  * eager PyTorch, batch 64: Rubin's production way (meas_transiNet): each triplet stacked with
    torch.stack([difference, science, template]), batches of 64 stacked again, model(batch)
    under torch.no_grad(), torch's default threads;
  * ONNX Runtime with default SessionOptions on the plain layer-for-layer graph, at batch 64
    and at its best batch (swept first);
  * ours: realbogus.inference.scorer.Scorer with its defaults (fp32), and its int8 graph (reported with
    its deviation from fp32 and whether the 0.01 gate accepts it for these stamps);
  * an ablation: our cropped graph in one ONNX Runtime session with all cores as intra-op
    threads (no spinning), batch 256, instead of one single-threaded session per core.
Latency: wall time to score a 10,000- and a 40,000-detection visit from stamps in memory.
With `--busy K`, K busy-looping processes run during the timings: a controlled stand-in for the
other work of a production node (or other users of a shared machine).
Then FITS -> scores: a 4096x4096 detector (science, template, difference FITS written to a
temporary directory) with 1,000 detections: `stamps_from_files` + `Scorer.score_stamps`.

    python benchmarks/score.py [--repeat 3] [--busy 0] [--model PACKAGE] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import torch
from astropy.io import fits
from rich.console import Console
from rich.table import Table

from realbogus.inference.onnx import export_onnx, quantize_int8
from realbogus.inference.scorer import Scorer
from realbogus.io.images import stamps_from_files
from realbogus.model.package import init_package, load_package
from realbogus.numeric import available_cores
from realbogus.stamps import cut_stamps


def make_stamps(n: int, size: int, seed: int) -> np.ndarray:
    """Noise (sigma 10) plus a Gaussian source (random flux, FWHM ~3 px) in each stamp."""
    rng = np.random.default_rng(seed)
    stamps = rng.normal(scale=10.0, size=(n, 3, size, size)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size] - size // 2
    psf = np.exp(-(xx**2 + yy**2) / (2 * 1.3**2)).astype(np.float32)
    flux = rng.lognormal(5, 1, size=(n, 3)).astype(np.float32)
    flux[:, 0] *= rng.choice([-1, 1, 1], size=n)  # some negative differences
    stamps += flux[:, :, None, None] * psf
    return stamps


def rubin_eager(model: torch.nn.Module, stamps: np.ndarray) -> np.ndarray:
    """meas_transiNet RBTransiNetInterface.infer: stack triplets, fixed batch 64, no_grad."""
    triplets = [
        torch.stack([torch.from_numpy(s[0]), torch.from_numpy(s[1]), torch.from_numpy(s[2])], dim=0)
        for s in stamps
    ]
    scores = []
    with torch.no_grad():
        for start in range(0, len(triplets), 64):
            batch = torch.stack(triplets[start : start + 64])
            scores.append(model(batch).cpu().numpy())
    return np.concatenate(scores)


def ort_batches(session: ort.InferenceSession, stamps: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate(
        [
            session.run(None, {"stamps": stamps[i : i + batch]})[0]
            for i in range(0, len(stamps), batch)
        ]
    )


def best_batch(
    session: ort.InferenceSession,
    stamps: np.ndarray,
    candidates=(16, 32, 64, 128, 256, 512, 1024, 4096),
) -> tuple[int, dict]:
    rates = {}
    for batch in candidates:
        times = []
        for _ in range(2):
            start = time.perf_counter()
            ort_batches(session, stamps, batch)
            times.append(time.perf_counter() - start)
        rates[batch] = len(stamps) / min(times)
    return max(rates, key=rates.get), rates


def write_detector(tmp: Path, n: int, seed: int) -> dict:
    """4096x4096 science/template/difference FITS (float32) and an n-row Parquet catalog."""
    rng = np.random.default_rng(seed)
    paths = {}
    for name in ("science", "template", "difference"):
        image = rng.normal(scale=10.0, size=(4096, 4096)).astype(np.float32)
        paths[name] = tmp / f"{name}.fits"
        fits.PrimaryHDU(image).writeto(paths[name])
    catalog = pd.DataFrame(
        {
            "diaSourceId": np.arange(n, dtype=np.int64),
            "x": rng.uniform(0, 4095, n),
            "y": rng.uniform(0, 4095, n),
        }
    )
    paths["catalog"] = tmp / "catalog.parquet"
    catalog.to_parquet(paths["catalog"])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--model", default=None, help="package to score with (default: untrained, seed 0)"
    )
    parser.add_argument("--n", type=int, default=40_000, help="stamps of the big visit")
    parser.add_argument("--small", type=int, default=10_000, help="stamps of the small visit")
    parser.add_argument(
        "--detections", type=int, default=1_000, help="detections on the FITS detector"
    )
    parser.add_argument(
        "--busy", type=int, default=0, help="busy-looping processes to run during the timings"
    )
    parser.add_argument("--markdown", action="store_true", help="also print the tables as Markdown")
    args = parser.parse_args()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        run(args)
    finally:
        for process in busy:
            process.kill()
            process.wait()


def run(args: argparse.Namespace) -> None:

    with tempfile.TemporaryDirectory(prefix="realbogus-bench-") as tmp:
        tmp = Path(tmp)
        package = load_package(args.model or init_package(tmp / "pkg", seed=0))
        size = package.card.stamp_size
        stamps = make_stamps(args.n, size, seed=1)
        check = make_stamps(2048, size, seed=2)

        model = package.model.eval()
        default_session = ort.InferenceSession(
            export_onnx(package, crop=False), providers=["CPUExecutionProvider"]
        )
        ours = Scorer(package)
        options = ort.SessionOptions()
        options.intra_op_num_threads = available_cores()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        one_session = ort.InferenceSession(
            export_onnx(package), options, providers=["CPUExecutionProvider"]
        )
        try:
            int8 = Scorer(package, int8=True, check_stamps=check)
            int8_note = f"accepted: max |int8 - fp32| {int8.int8_model.max_deviation:.4f} on 2,048 check stamps"
        except Exception as exc:  # refused by the gate: time it anyway, say so
            model_int8 = quantize_int8(package, check, tolerance=0.999)
            int8 = Scorer(package, int8=model_int8)
            int8_note = f"REFUSED by the 0.01 gate for this model (max deviation {model_int8.max_deviation:.4f}); timed anyway"
            del exc
        batch, sweep = best_batch(default_session, stamps[:4096])

        methods = {
            "eager PyTorch, batch 64 (Rubin production way)": lambda x: rubin_eager(model, x),
            "ONNX Runtime defaults, batch 64": lambda x: ort_batches(default_session, x, 64),
            f"ONNX Runtime defaults, best batch ({batch})": lambda x: ort_batches(
                default_session, x, batch
            ),
            f"realbogus Scorer fp32 (ONNX Runtime, {ours.threads} sessions x 1 thread, batch {ours.batch_size})": ours.predict,
            "realbogus Scorer int8": int8.predict,
            f"ablation: our graph, 1 session x {available_cores()} threads, batch 256": lambda x: (
                ort_batches(one_session, x, 256)
            ),
        }
        reference = ours.predict(stamps[:2000])
        deviation = {
            name: float(np.abs(fn(stamps[:2000]) - reference).max()) for name, fn in methods.items()
        }
        visits = {"small": stamps[: args.small], "big": stamps}
        times: dict[tuple[str, str], list[float]] = {(m, v): [] for m in methods for v in visits}
        for _ in range(args.repeat):
            for name, fn in methods.items():
                for visit, data in visits.items():
                    start = time.perf_counter()
                    fn(data)
                    times[(name, visit)].append(time.perf_counter() - start)

        # FITS -> scores for one detector.
        paths = write_detector(tmp, args.detections, seed=3)
        stage = {"read + cut": [], "score": [], "total": []}
        for _ in range(max(3, args.repeat)):
            start = time.perf_counter()
            table, cut = stamps_from_files(size=size, **paths)
            middle = time.perf_counter()
            ours.score_stamps(cut, table["diaSourceId"].to_numpy())
            end = time.perf_counter()
            stage["read + cut"].append(middle - start)
            stage["score"].append(end - middle)
            stage["total"].append(end - start)
        images = [
            fits.getdata(paths[n]).astype(np.float32) for n in ("difference", "science", "template")
        ]
        catalog = pd.read_parquet(paths["catalog"])
        start = time.perf_counter()
        rubin_fits = rubin_eager(
            model, cut_stamps(*images, catalog["x"], catalog["y"], size=size).data
        )
        rubin_score_time = time.perf_counter() - start
        del rubin_fits

    console = Console(width=160)
    rows = []
    for name in methods:
        small, big = times[(name, "small")], times[(name, "big")]
        rows.append(
            (
                name,
                f"{args.n / min(big):,.0f}",
                f"{args.n / np.median(big):,.0f}",
                f"{min(small):.2f}",
                f"{min(big):.2f}",
                f"{deviation[name]:.1e}",
            )
        )
    busy = f", {args.busy} busy processes beside" if args.busy else ""
    table = Table(
        title=f"Scoring {size}x{size} triplets, best of {args.repeat} (median beside), one run{busy}"
    )
    headers = (
        "method",
        "stamps/s (best)",
        "stamps/s (median)",
        f"{args.small // 1000}k visit s",
        f"{args.n // 1000}k visit s",
        "max |diff| vs ours fp32",
    )
    for header in headers:
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"int8: {int8_note}")
    console.print(
        "ONNX Runtime defaults, batch sweep on 4,096 stamps (stamps/s): "
        + ", ".join(f"{b}: {r:,.0f}" for b, r in sweep.items())
    )
    fits_rows = [(k, f"{min(v):.3f}", f"{np.median(v):.3f}") for k, v in stage.items()]
    fits_table = Table(
        title=f"FITS -> scores: 4096x4096 detector, {args.detections} detections (files in page cache)"
    )
    for header in ("stage", "best s", "median s"):
        fits_table.add_column(header, justify="right")
    for row in fits_rows:
        fits_table.add_row(*row)
    console.print(fits_table)
    console.print(
        f"eager PyTorch batch 64 on the same {args.detections} stamps (scoring only, once): {rubin_score_time:.3f} s"
    )
    machine = (
        f"machine: {platform.machine()}, {available_cores()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), onnxruntime {ort.__version__}, numpy {np.__version__}; load average "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    console.print(machine)
    if args.markdown:
        print("| " + " | ".join(headers) + " |")
        print("|" + "---|" * len(headers))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        print()
        print("| FITS -> scores stage | best s | median s |")
        print("|---|---|---|")
        for row in fits_rows:
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
