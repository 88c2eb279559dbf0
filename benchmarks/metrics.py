"""Evaluation speed: the counting core and the bootstrap against scikit-learn, in one run.

Rows:
* purity/completeness at every threshold: realbogus.evaluation.metrics.purity_completeness vs
  sklearn.metrics.precision_recall_curve on the same n detections;
* bootstrap intervals of the requirement window (B replicates): realbogus (data sorted once,
  each replicate = multiplicities through the counting core) vs the plain way (resample rows,
  rerun precision_recall_curve per replicate);
* the whole evaluate() of two models (metrics.json, twelve figures, report.html), without and
  with stamp galleries (48 triplets of 51 px synthetic stamps); the load average is printed
  before and after.

    python benchmarks/metrics.py [--n 1000000] [--boot-n 100000] [--boot 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.metrics import precision_recall_curve

from realbogus.evaluation import metrics as M
from realbogus.evaluation.evaluate import evaluate


def data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.5
    s = 1 / (1 + np.exp(-(5 * (y - 0.5) + rng.normal(0, 1.2, n))))
    return y.astype(int), np.round(s, 6)  # float32-like resolution: realistic ties


def sklearn_window(y, s, lo=0.95, hi=0.90) -> tuple[float, float]:
    p, r, t = precision_recall_curve(y, s)
    ok = (p[:-1] >= lo) & (r[:-1] >= hi)
    return (t[ok].min(), t[ok].max()) if ok.any() else (np.nan, np.nan)


def sklearn_bootstrap(y, s, n_boot: int, seed: int) -> np.ndarray:
    n = len(y)
    out = np.empty((n_boot, 2))
    for i in range(n_boot):
        idx = np.random.default_rng([seed, i]).integers(0, n, n)
        out[i] = sklearn_window(y[idx], s[idx])
    return out


def timed(fn, repeat: int) -> tuple[float, float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times)), result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--boot-n", type=int, default=100_000)
    parser.add_argument("--boot", type=int, default=100)
    parser.add_argument("--eval-n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    console = Console()
    console.print(
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}, load average {os.getloadavg()[0]:.2f}"
    )
    table = Table(title="evaluation speed (best and median of repeats, seconds)")
    for col in ("task", "method", "n", "best s", "median s", "vs sklearn"):
        table.add_column(col)

    y, s = data(args.n)
    ours = timed(lambda: M.purity_completeness(y, s), args.repeat)
    ref = timed(lambda: precision_recall_curve(y, s), args.repeat)
    p, r, t = ref[2]
    np.testing.assert_allclose(ours[2].purity, p[:-1], atol=1e-12)  # same answer
    table.add_row(
        "P/C curve",
        "realbogus purity_completeness",
        f"{args.n:,}",
        f"{ours[0]:.3f}",
        f"{ours[1]:.3f}",
        f"{ref[0] / ours[0]:.1f}x",
    )
    table.add_row(
        "P/C curve",
        "sklearn precision_recall_curve",
        f"{args.n:,}",
        f"{ref[0]:.3f}",
        f"{ref[1]:.3f}",
        "1.0x",
    )

    yb, sb = data(args.boot_n, seed=1)
    ours = timed(
        lambda: M.bootstrap_intervals(yb, sb, n_boot=args.boot, seed=5), max(1, args.repeat - 2)
    )
    ref = timed(lambda: sklearn_bootstrap(yb, sb, args.boot, 5), 1)
    lo_ref = np.nanpercentile(ref[2][:, 0], [2.5, 97.5])
    lo_ours = ours[2]["window_low"]
    np.testing.assert_allclose([lo_ours["low"], lo_ours["high"]], lo_ref, rtol=1e-12)  # same
    table.add_row(
        f"window CI, {args.boot} replicates",
        "realbogus bootstrap_intervals (9 stats)",
        f"{args.boot_n:,}",
        f"{ours[0]:.3f}",
        f"{ours[1]:.3f}",
        f"{ref[0] / ours[0]:.1f}x",
    )
    table.add_row(
        f"window CI, {args.boot} replicates",
        "resample + sklearn (window only)",
        f"{args.boot_n:,}",
        f"{ref[0]:.3f}",
        f"{ref[1]:.3f}",
        "1.0x",
    )

    ye, se = data(args.eval_n, seed=2)
    rng = np.random.default_rng(3)
    det = pd.DataFrame(
        {
            "label": ye.astype(float),
            "snr": 5 + rng.exponential(3, args.eval_n),
            "origin": rng.choice(["ss", "gaia", "tns"], args.eval_n),
            "isNegative": rng.random(args.eval_n) < 0.2,
        }
    )
    scores = {"a": se, "b": np.clip(se + rng.normal(0, 0.1, args.eval_n), 0, 1)}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = timed(lambda: evaluate(det, scores, Path(tmp) / "r", n_boot=200, overwrite=True), 1)
    table.add_row(
        "evaluate(), 2 models, n_boot 200",
        "realbogus",
        f"{args.eval_n:,}",
        f"{ev[0]:.2f}",
        f"{ev[1]:.2f}",
        "",
    )

    def stamps(rows: np.ndarray) -> np.ndarray:  # synthetic 51 px triplets for any rows
        out = np.random.default_rng(4).normal(size=(len(rows), 3, 51, 51)).astype(np.float32)
        out[:, :, 25, 25] += 30
        return out

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = timed(
            lambda: evaluate(
                det, scores, Path(tmp) / "r", n_boot=200, overwrite=True, stamps=stamps
            ),
            1,
        )
    table.add_row(
        "evaluate(), 2 models, n_boot 200, galleries",
        "realbogus",
        f"{args.eval_n:,}",
        f"{ev[0]:.2f}",
        f"{ev[1]:.2f}",
        "",
    )
    console.print(table)
    console.print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
