"""Dask scale-out: a partitioned stamp dataset scored by a LocalCluster of 1 and of 2 workers.

One run, same dataset, compared against the single-process `Scorer.score_dataset` (the
baseline: no Dask). For each Dask row the LocalCluster's start-up is timed apart; the scoring
time includes shipping the model to the workers, reading each input part and writing one Parquet
score part per input part, and every row's output is checked equal to the single-process
scores. A first row times reading the parts alone; a final row times a rerun into the finished
output directory (every part skipped).

    python benchmarks/scale.py [--rows 40000] [--parts 8] [--repeat 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from distributed import Client, LocalCluster
from rich.console import Console
from rich.table import Table

from realbogus.inference.scorer import Scorer
from realbogus.io.dataset import open_dataset, write_dataset
from realbogus.model.package import init_package, load_package
from realbogus.numeric import available_cores
from realbogus.stamps import Stamps
from realbogus.workflows.distributed import read_scores, score_distributed
from realbogus.workflows.score import score_dataset


def make_dataset(path: Path, rows: int, parts: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    stamps = Stamps(
        data=rng.normal(scale=10, size=(rows, 3, size, size)).astype(np.float32),
        valid_fraction=np.ones(rows, np.float32),
        edge=np.zeros(rows, bool),
    )
    table = pd.DataFrame(
        {"diaSourceId": np.arange(rows, dtype=np.int64) + 10**9, "snr": rng.uniform(5, 50, rows)}
    )
    return write_dataset(path, table, stamps, rows_per_part=-(-rows // parts))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="realbogus-scale-") as tmp:
        tmp = Path(tmp)
        package = load_package(init_package(tmp / "pkg", seed=0))
        dataset = open_dataset(
            make_dataset(tmp / "ds", args.rows, args.parts, package.card.stamp_size)
        )
        want = score_dataset(Scorer(package), dataset)

        cores = available_cores()
        names = {
            0: "single process, Scorer.score_dataset (no Dask)",
            1: f"LocalCluster, 1 worker (Scorer {cores} threads)",
            2: f"LocalCluster, 2 workers (Scorer {max(1, cores // 2)} thread each)",
        }
        startup = {1: [], 2: []}
        runs = {n: [] for n in names}
        resume, reading = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            for _part in dataset.iter_parts():
                pass
            reading.append(time.perf_counter() - start)
            start = time.perf_counter()
            score_dataset(Scorer(package), dataset)
            runs[0].append(time.perf_counter() - start)
            for workers in (1, 2):
                out = tmp / f"out{workers}"
                shutil.rmtree(out, ignore_errors=True)
                start = time.perf_counter()
                # The cluster score_distributed(scheduler="local", workers=n) starts, started here
                # so that its start-up is timed apart from the scoring.
                with (
                    LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        dashboard_address=":0",
                        silence_logs=logging.ERROR,
                    ) as cluster,
                    Client(cluster) as client,
                ):
                    client.wait_for_workers(workers)
                    startup[workers].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    score_distributed(
                        dataset.path,
                        out,
                        package=package,
                        client=client,
                        threads=max(1, cores // workers),
                    )
                    runs[workers].append(time.perf_counter() - start)
                    pd.testing.assert_frame_equal(read_scores(out), want)
                    start = time.perf_counter()
                    result = score_distributed(dataset.path, out, package=package, client=client)
                    resume.append(time.perf_counter() - start)
                    assert result.scored == [] and len(result.skipped) == args.parts

    rows = [
        (
            names[n],
            f"{np.median(startup[n]):.2f}" if n else "-",
            f"{min(t):.2f}",
            f"{np.median(t):.2f}",
            f"{args.rows / min(t):,.0f}",
        )
        for n, t in runs.items()
    ]
    rows.insert(
        0,
        (
            "reading the parts only (Dataset.iter_parts, no scoring)",
            "-",
            f"{min(reading):.2f}",
            f"{np.median(reading):.2f}",
            f"{args.rows / min(reading):,.0f}",
        ),
    )
    rows.append(
        (
            "resume of a finished output (every part skipped)",
            "-",
            f"{min(resume):.3f}",
            f"{np.median(resume):.3f}",
            "-",
        )
    )
    table = Table(
        title=f"{args.rows:,} stamps in {args.parts} Parquet parts, best of {args.repeat}; outputs equal to single-process"
    )
    headers = (
        "run",
        "cluster start s (median)",
        "scoring s (best)",
        "scoring s (median)",
        "stamps/s (best)",
    )
    for header in headers:
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(*row)
    console = Console(width=140)
    console.print(table)
    console.print(
        f"machine: {platform.machine()}, {available_cores()} cores; load average "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    if args.markdown:
        print("| " + " | ".join(headers) + " |")
        print("|" + "---|" * len(headers))
        for row in rows:
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
