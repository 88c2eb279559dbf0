"""Scoring speed: stamps/s and visit latency at 51 px (Rubin) and 63 px (ZTF), every precision.

All rows of a stamp size come from one run on the same stamps, timed interleaved (method after
method, repeat after repeat) so that load from other processes hits every row alike; each
number is the best of `--repeat` runs, with the median beside it, and the CPU-seconds the
process got (stamps per CPU-second: the rate a quiet machine's cores would give, per core).

Stamps are realistic: the real dev alerts of `../shared/data` (Rubin 126 at 51 px, ZTF 608 at
63 px, in the built-in models' nJy) tiled to `--n`; they are also the check stamps of the
reduced precisions (without the data: noise with a Gaussian source, said so in the output).
Models: the built-in `rubin-v0.1` (51 px) and `ztf-v0.1` (63 px), both 'asinh-noise'.

Rows per size:
  * eager PyTorch, batch 64: Rubin's production way (meas_transiNet): each triplet stacked with
    torch.stack([difference, science, template]), batches of 64 stacked again, model(batch)
    under torch.no_grad(), torch's default threads (preprocessed stamps in);
  * ONNX Runtime with default SessionOptions on the plain layer-for-layer graph, batch 64
    (and at its best batch of a sweep, without --quick);
  * ours: realbogus.inference.scorer.Scorer fp32 (the default), bf16 and int8 (each with its
    deviation from fp32 and passes_cutoff flip rate on the check stamps and the gate's verdict;
    a refused precision is timed anyway, forced, and marked so);
  * an ablation: our cropped graph in one ONNX Runtime session with all cores as intra-op
    threads (no spinning), batch 256, instead of one single-threaded session per core.
Then: stamps/s x multiply-adds per stamp of each of our rows (the 63-px graph's efficiency
against the 51-px one), and FITS -> scores for one 4096x4096 detector with 1,000 detections
(`stamps_from_files` + `Scorer.score_stamps`). Latency: wall time of a --small and an --n visit.
With `--busy K`, K busy-looping processes run during the timings.

    python benchmarks/score.py [--quick] [--repeat 3] [--busy 0] [--markdown]
"""

from __future__ import annotations

import argparse
import functools
import glob
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

from realbogus.alerts import read_alerts
from realbogus.alerts.units import to_units
from realbogus.inference.bf16 import Bf16Network, Bf16Session
from realbogus.inference.onnx import OnnxRunner, export_onnx, quantize_int8
from realbogus.inference.precision import check_precision
from realbogus.inference.scorer import Scorer
from realbogus.io.images import stamps_from_files
from realbogus.model.architectures import get_architecture, multiply_adds
from realbogus.model.package import load_package
from realbogus.model.transforms import preprocess_array
from realbogus.numeric import available_cores
from realbogus.stamps import cut_stamps

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SURVEYS = {51: ("rubin-v0.1", "rubin/alerts/*.msg"), 63: ("ztf-v0.1", "ztf/alerts/*.avro")}


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


def eager(model: torch.nn.Module, stamps: np.ndarray) -> np.ndarray:
    """`rubin_eager` with torch's default threads (a bf16 Scorer sets torch to one thread)."""
    torch.set_num_threads(available_cores())
    try:
        return rubin_eager(model, stamps)
    finally:
        torch.set_num_threads(1)


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


def real_stamps(size: int, data: Path) -> tuple[np.ndarray | None, str]:
    """The survey's real dev alert stamps in the built-in model's units (None without the data)."""
    model, pattern = SURVEYS[size]
    files = sorted(glob.glob(str(data / pattern)))
    if not files:
        return None, "no real data: noise stamps with a Gaussian source"
    card = load_package(model).card
    batch = read_alerts(files, stamp_size=size, workers=1)
    batch, _ = to_units(batch, card.pixel_units, card.version, in_place=True)
    return batch.stamps.data, f"{len(batch)} real {model.split('-')[0]} alert stamps"


def forced_bf16(package, threads: int) -> Scorer:
    """A fp32 Scorer switched to bf16 without the gate (to time a refused bf16)."""
    scorer = Scorer(package, threads=threads)
    network = Bf16Network(package.model)
    torch.set_num_threads(1)
    scorer.precision, scorer.batch_size = "bf16", 64
    scorer._runner = OnnxRunner(
        None,
        threads,
        functools.partial(preprocess_array, package.card),
        sessions=[Bf16Session(network)] * threads,
    )
    return scorer


def reduced(package, precision: str, check: np.ndarray, threads: int) -> tuple[Scorer, str]:
    """Our Scorer in `precision` through the gate; if the gate refuses, forced, and said so."""
    scorer = Scorer(package, precision=precision, check_stamps=check, threads=threads)
    gate = scorer.precision_check
    note = f"{100 * gate.flip_rate:.2f} % flips, max dev {gate.max_deviation:.4f}: " + (
        "ACCEPTED" if gate.accepted else "REFUSED (timed anyway)"
    )
    if not gate.accepted:
        if precision == "int8":
            scorer = Scorer(
                package, int8=quantize_int8(package, check, tolerance=0.999), threads=threads
            )
        else:
            scorer = forced_bf16(package, threads)
    return scorer, note


def cpu_time() -> float:
    times = os.times()
    return times.user + times.system  # this process, all its threads


def bench_size(args, size: int, console: Console) -> dict:
    """All rows of one stamp size, timed interleaved."""
    model_name, _ = SURVEYS[size]
    package = load_package(args.model or model_name)
    if package.card.stamp_size != size:
        return {}
    card = package.card
    real, origin = real_stamps(size, args.data)
    if real is None:
        real = make_stamps(2048, size, seed=2)
    reps = -(-args.n // len(real))
    stamps = np.ascontiguousarray(np.tile(real, (reps, 1, 1, 1))[: args.n])
    check = real
    prep = functools.partial(preprocess_array, card)
    model = package.model.eval()
    default_session = ort.InferenceSession(
        export_onnx(package, crop=False, preprocessed_input=True),
        providers=["CPUExecutionProvider"],
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = available_cores()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    one_session = ort.InferenceSession(
        export_onnx(package, preprocessed_input=True), options, providers=["CPUExecutionProvider"]
    )
    ours = Scorer(package)
    bf16, bf16_note = reduced(package, "bf16", check, ours.threads)
    int8, int8_note = reduced(package, "int8", check, ours.threads)
    methods = {
        "eager PyTorch, batch 64 (Rubin production way)": lambda x: eager(model, prep(x)),
        "ONNX Runtime defaults, batch 64": lambda x: ort_batches(default_session, prep(x), 64),
    }
    sweep = {}
    if not args.quick:
        batch, sweep = best_batch(default_session, prep(stamps[:4096]))
        methods[f"ONNX Runtime defaults, best batch ({batch})"] = lambda x: ort_batches(
            default_session, prep(x), batch
        )
    methods |= {
        f"realbogus Scorer fp32 ({ours.threads} sessions x 1 thread, batch {ours.batch_size})": ours.predict,
        f"realbogus Scorer bf16 (torch/oneDNN, batch {bf16.batch_size}; {bf16_note})": bf16.predict,
        f"realbogus Scorer int8 (ONNX Runtime QDQ; {int8_note})": int8.predict,
        f"ablation: our graph, 1 session x {available_cores()} threads, batch 256": lambda x: (
            ort_batches(one_session, prep(x), 256)
        ),
    }
    reference = ours.predict(check)
    quality = {}
    for name, fn in methods.items():
        got = fn(check)
        gate = check_precision("row", reference, got, card.cutoff)
        quality[name] = (gate.max_deviation, gate.flip_rate)
    visits = {"small": stamps[: args.small], "big": stamps}
    times = {(m, v): [] for m in methods for v in visits}
    cpu = {m: [] for m in methods}
    for _ in range(args.repeat):
        for name, fn in methods.items():
            for visit, data in visits.items():
                c0, start = cpu_time(), time.perf_counter()
                fn(data)
                times[(name, visit)].append(time.perf_counter() - start)
                if visit == "big":
                    cpu[name].append(cpu_time() - c0)
    macs = multiply_adds(get_architecture(card.architecture), size, len(card.channels))
    rows = []
    for name in methods:
        small, big = times[(name, "small")], times[(name, "big")]
        rows.append(
            {
                "method": name,
                "stamps/s (best)": args.n / min(big),
                "stamps/s (median)": args.n / np.median(big),
                "stamps/CPU-s": args.n / min(cpu[name]),
                "small visit s": min(small),
                "big visit s": min(big),
                "max |diff| vs fp32": quality[name][0],
                "passes_cutoff flips": quality[name][1],
            }
        )
    console.print(
        f"{size} px: {card.version} ({card.preprocessing}, {card.pixel_units}), {origin} tiled to "
        f"{args.n:,}; check stamps: the {len(check)} untiled; {macs:,} multiply-adds per stamp"
    )
    if sweep:
        console.print(
            "ONNX Runtime defaults, batch sweep on 4,096 stamps (stamps/s): "
            + ", ".join(f"{b}: {r:,.0f}" for b, r in sweep.items())
        )
    return {"rows": rows, "macs": macs, "package": package, "ours": ours}


def fits_detector(args, package, scorer) -> tuple[list, float]:
    """FITS -> scores for one 4096x4096 detector; eager PyTorch batch 64 on the same stamps."""
    size = package.card.stamp_size
    with tempfile.TemporaryDirectory(prefix="realbogus-bench-") as tmp:
        paths = write_detector(Path(tmp), args.detections, seed=3)
        stage = {"read + cut": [], "score": [], "total": []}
        for _ in range(max(3, args.repeat)):
            start = time.perf_counter()
            table, cut = stamps_from_files(size=size, **paths)
            middle = time.perf_counter()
            scorer.score_stamps(cut, table["diaSourceId"].to_numpy())
            end = time.perf_counter()
            stage["read + cut"].append(middle - start)
            stage["score"].append(end - middle)
            stage["total"].append(end - start)
        images = [
            fits.getdata(paths[n]).astype(np.float32) for n in ("difference", "science", "template")
        ]
        catalog = pd.read_parquet(paths["catalog"])
        data = preprocess_array(
            package.card, cut_stamps(*images, catalog["x"], catalog["y"], size=size).data
        )
        start = time.perf_counter()
        eager(package.model.eval(), data)
        rubin_time = time.perf_counter() - start
    return [(k, f"{min(v):.3f}", f"{np.median(v):.3f}") for k, v in stage.items()], rubin_time


HEADERS = (
    "method",
    "stamps/s (best)",
    "stamps/s (median)",
    "stamps/CPU-s",
    "small visit s",
    "big visit s",
    "max |diff| vs fp32",
    "passes_cutoff flips",
)


def _cells(row: dict) -> list[str]:
    return [
        row["method"],
        f"{row['stamps/s (best)']:,.0f}",
        f"{row['stamps/s (median)']:,.0f}",
        f"{row['stamps/CPU-s']:,.0f}",
        f"{row['small visit s']:.2f}",
        f"{row['big visit s']:.2f}",
        f"{row['max |diff| vs fp32']:.1e}",
        f"{100 * row['passes_cutoff flips']:.2f} %",
    ]


def run(args: argparse.Namespace) -> None:
    console = Console(width=200)
    load = os.getloadavg()
    results = {size: bench_size(args, size, console) for size in (51, 63)}
    results = {k: v for k, v in results.items() if v}
    markdown = []
    for size, result in results.items():
        busy = f", {args.busy} busy processes beside" if args.busy else ""
        table = Table(
            title=f"Scoring {size}x{size} triplets, best of {args.repeat} (median beside), one run{busy}"
        )
        for header in HEADERS:
            table.add_column(header, justify="right")
        for row in result["rows"]:
            table.add_row(*_cells(row))
        console.print(table)
        markdown.append((size, [_cells(row) for row in result["rows"]]))
        defaults = result["rows"][1]
        for row in result["rows"][2:]:
            if row["method"].startswith("realbogus"):
                console.print(
                    f"  {size} px {row['method'][:24]}: {row['stamps/s (best)'] / defaults['stamps/s (best)']:.2f}x "
                    f"ONNX Runtime defaults batch 64 (wall), "
                    f"{row['stamps/CPU-s'] / defaults['stamps/CPU-s']:.2f}x per CPU-second"
                )
    if 51 in results and 63 in results:
        eff = Table(title="stamps/s x multiply-adds per stamp (GMAC/s), 63 px against 51 px")
        for header in ("row", "51 px GMAC/s", "63 px GMAC/s", "63 / 51", "per CPU-s 63 / 51"):
            eff.add_column(header, justify="right")
        for r51, r63 in zip(results[51]["rows"], results[63]["rows"], strict=True):
            if not r51["method"].startswith("realbogus"):
                continue
            a = r51["stamps/s (best)"] * results[51]["macs"] / 1e9
            b = r63["stamps/s (best)"] * results[63]["macs"] / 1e9
            ca = r51["stamps/CPU-s"] * results[51]["macs"]
            cb = r63["stamps/CPU-s"] * results[63]["macs"]
            eff.add_row(
                r51["method"][:24], f"{a:.1f}", f"{b:.1f}", f"{b / a:.2f}", f"{cb / ca:.2f}"
            )
        console.print(eff)
    fits_rows, rubin_time = [], None
    if 51 in results:
        fits_rows, rubin_time = fits_detector(args, results[51]["package"], results[51]["ours"])
        fits_table = Table(
            title=f"FITS -> scores: 4096x4096 detector, {args.detections} detections, 51 px (files in page cache)"
        )
        for header in ("stage", "best s", "median s"):
            fits_table.add_column(header, justify="right")
        for row in fits_rows:
            fits_table.add_row(*row)
        console.print(fits_table)
        console.print(
            f"eager PyTorch batch 64 on the same {args.detections} stamps (scoring only, once): {rubin_time:.3f} s"
        )
    flags = (
        sorted(
            {
                f
                for f in open("/proc/cpuinfo").read().split()
                if f.startswith(("amx", "avx512_bf16", "avx512_vnni"))
            }
        )
        if os.path.exists("/proc/cpuinfo")
        else []
    )
    console.print(
        f"machine: {platform.machine()} {platform.processor()}, {available_cores()} cores, CPU flags {flags}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {ort.__version__}, "
        f"numpy {np.__version__}; load average before "
        + ", ".join(f"{x:.1f}" for x in load)
        + ", after "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    if args.markdown:
        for size, rows in markdown:
            print(f"\n{size} px\n")
            print("| " + " | ".join(HEADERS) + " |")
            print("|" + "---|" * len(HEADERS))
            for row in rows:
                print("| " + " | ".join(row) + " |")
        if fits_rows:
            print("\n| FITS -> scores stage | best s | median s |")
            print("|---|---|---|")
            for row in fits_rows:
                print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="< 3 min: 8,000 stamps, 2 repeats")
    parser.add_argument(
        "--model", default=None, help="one package to score with (default: the built-in ones)"
    )
    parser.add_argument("--data", type=Path, default=DATA, help="the real data folder")
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
    if args.quick:
        args.n, args.small, args.repeat = 8_000, 2_000, min(args.repeat, 2)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        run(args)
    finally:
        for process in busy:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
