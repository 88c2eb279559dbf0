"""Alerts per second, from alert files to the score table, on the real dev alerts replicated.

The dev ZTF alerts (611 single-alert Avro container files) and Rubin alerts (126 Confluent
messages) are each replicated to >= --n files (symbolic links in a temporary folder, so every
alert is opened and read as its own file). Every path uses --workers processes and chunks of 256
files and scores with the built-in model of the survey (`ztf-v0.1`, `rubin-v0.1`: nJy,
'asinh-noise'), so "end to end" includes bringing ZTF's DN to nJy, taking off its sky and
orienting its negative candidates' differences (`realbogus.alerts.units`, applied to the astropy
path's stamps too); the 3 x 33 replicated ZTF alerts without `magzpsci` are not scored on either
path:

* astropy: workers decode (fastavro decodes the whole record, gzip + astropy.io.fits parse each
  cutout), the main process converts and scores finished chunks;
* ours: realbogus.alerts.read_alerts (decode) and score_alerts (end to end: each worker decodes
  with projected Avro decoding and the numpy FITS decoder, converts and scores its chunks);
* braai-style peer: the astropy decode plus braai's preprocessing (nan_to_num, pad with
  1e-9, row-wise L2 normalisation in float32; peers.md section 7).

* whole process: `python -m realbogus.cli score --model MODEL --out OUT.parquet FOLDER` as a
  subprocess on the same files: interpreter start, imports, model loading, worker processes,
  decoding, scoring and writing the table, all of it (its scores are compared too).

"decode" is files -> stamps + table; "end to end" adds scoring into the score table. Scores
of ours are compared with those of the astropy path (same chunks, same backend). The load
average before and after is printed: on a shared machine, compare rows of one run only.

    python benchmarks/alerts.py [--quick] [--n 20000] [--workers 2]
"""

from __future__ import annotations

import argparse
import gzip
import io
import math
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import fastavro
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from realbogus.alerts import read_alerts, score_alerts
from realbogus.alerts._avro import rubin_schema
from realbogus.alerts.reader import AlertBatch, _chunks, blank_to_nan, expand_sources
from realbogus.alerts.rubin import wcs_pixel
from realbogus.alerts.units import to_units
from realbogus.alerts.ztf import ztf_centre
from realbogus.inference.scorer import Scorer
from realbogus.model.package import load_package
from realbogus.stamps import resize_stamps

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CHUNK = 256
CUTOUTS = ("cutoutDifference", "cutoutScience", "cutoutTemplate")


def _astropy_image(raw: bytes):
    from astropy.io import fits

    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(io.BytesIO(raw)) as hdus:
            return hdus[0].data, dict(hdus[0].header)


def _astropy_record(path: str):
    with open(path, "rb") as handle:
        buf = handle.read()
    if buf[:1] == b"\x00":
        (schema_id,) = struct.unpack(">I", buf[1:5])
        stream = io.BytesIO(buf)
        stream.seek(5)
        return fastavro.schemaless_reader(stream, rubin_schema(schema_id), None)
    return next(fastavro.reader(io.BytesIO(buf)))


def astropy_chunk(files: list[str], size: int, braai: bool = False):
    """The astropy path: full record, astropy FITS; same centring as ours, so the same stamps."""
    ids, triplets, centres, units = [], [], [], []
    for path in files:
        record = _astropy_record(path)
        ztf = "diaSource" not in record
        negative = (
            record["candidate"]["isdiffpos"] in ("f", "0")
            if ztf
            else bool(record["diaSource"].get("isNegative"))
        )
        units.append(
            {
                "survey": "ztf" if ztf else "rubin",
                "stampUnits": "DN" if ztf else "nJy",
                "isNegative": negative,
                "magzpsci": record["candidate"].get("magzpsci") if ztf else None,
                "file": path,
                "index": 0,
            }
        )
        planes, plane_centres = [], []
        for name in CUTOUTS:
            if "diaSource" in record:
                data, header = _astropy_image(record[name])
                source = record["diaSource"]
                x, y = wcs_pixel(header, source["ra"], source["dec"])
                plane_centres.append((math.floor(y + 0.5), math.floor(x + 0.5)))
            else:
                data, _ = _astropy_image(record[name]["stampData"])
                cand = record["candidate"]
                plane_centres.append(ztf_centre(data.shape, cand["xpos"], cand["ypos"]))
            planes.append(blank_to_nan(data.astype(data.dtype.newbyteorder("="))))
        ids.append(
            record["diaSource"]["diaSourceId"] if "diaSource" in record else record["candid"]
        )
        triplets.append(planes)
        centres.append(plane_centres)
    if braai:
        return np.asarray(ids, np.int64), braai_stamps(triplets, size), None
    stamps = resize_stamps(triplets, size, centres=np.asarray(centres))
    ids = np.asarray(ids, np.int64)
    return ids, stamps, pd.DataFrame(units).astype({"magzpsci": "Float64"}).assign(diaSourceId=ids)


def braai_stamps(triplets, size: int) -> np.ndarray:
    """braai d6_m7 preprocessing: nan_to_num, pad bottom/right with 1e-9, row-wise L2 (float32)."""
    out = np.full((len(triplets), 3, size, size), 1e-9, dtype=np.float32)
    for i, planes in enumerate(triplets):
        for c, plane in enumerate(planes):
            plane = np.nan_to_num(np.asarray(plane, dtype=np.float32))[:size, :size]
            out[i, c, : plane.shape[0], : plane.shape[1]] = plane
    norms = np.sqrt(np.einsum("ncij,ncij->nci", out, out))
    np.divide(out, norms[..., None], out=out, where=norms[..., None] > 0)
    return out


def run_harness(files, size, workers, scorer=None, braai=False):
    """Decode chunks in `workers` processes (2 chunks per worker in flight); score here if asked."""
    chunks = _chunks(files, workers * 4, CHUNK)
    scores, n = [], 0
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending, queue = deque(), iter(chunks)
        for chunk in queue:
            pending.append(pool.submit(astropy_chunk, chunk, size, braai))
            if len(pending) >= 2 * workers:
                break
        while pending:
            future = pending.popleft()
            for chunk in queue:
                pending.append(pool.submit(astropy_chunk, chunk, size, braai))
                break
            ids, stamps, table = future.result()
            n += len(ids)
            if scorer is not None and table is None:  # braai: its own normalised stamps
                scores.append(scorer.predict(stamps))
            elif scorer is not None:  # the model's units, by the same conversion as ours
                batch, _ = to_units(
                    AlertBatch(table, stamps, []), scorer.card.pixel_units, scorer.card.version
                )
                scores.append(scorer.predict(batch.stamps.data))
    return n, (np.concatenate(scores) if scores else None)


def replicate(src: Path, pattern: str, n: int, dest: Path) -> list[str]:
    files = sorted(src.glob(pattern))
    copies = -(-n // len(files))
    dest.mkdir(parents=True)
    for k in range(copies):
        for f in files:
            os.symlink(f, dest / f"{k:03d}_{f.name}")
    return expand_sources(dest)


def whole_process(model: str, folder: Path, tmp: Path, workers: int) -> np.ndarray:
    """`realbogus score` on a folder of alert files as its own process; its reliabilities.

    Exit status 1 (some alerts without magzpsci are refused) is expected; anything else fails.
    """
    out = tmp / "whole-process.parquet"
    command = [sys.executable, "-m", "realbogus.cli", "score", "--model", model]
    command += ["--out", str(out), "--workers", str(workers), str(folder)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode not in (0, 1) or not out.exists():
        raise RuntimeError(f"realbogus score failed ({done.returncode}): {done.stderr[-2000:]}")
    table = pd.read_parquet(out)
    out.unlink()
    return table.loc[table["status"] == "scored", "reliability"].to_numpy()


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def single_core(args, console) -> None:
    """Decode cost per alert in one process: astropy path vs ours (no pool, no scoring)."""
    from realbogus.alerts.reader import decode_chunk

    table = Table(title="decode cost per alert, one process")
    for column in ("survey", "files", "astropy ms/alert", "ours ms/alert", "speed-up"):
        table.add_column(column)
    for survey, pattern, size in (("ztf", "*.avro", 63), ("rubin", "*.msg", 51)):
        files = [str(p) for p in sorted((args.data / survey / "alerts").glob(pattern))]
        files = (files * -(-args.single_core // len(files)))[: args.single_core]
        astropy_chunk(files[:50], size)
        decode_chunk(files[:50], size)  # warm: schemas parsed, modules loaded
        t_a, _ = timed(lambda: astropy_chunk(files, size))
        t_o, _ = timed(lambda: decode_chunk(files, size))
        table.add_row(
            survey,
            str(len(files)),
            f"{t_a / len(files) * 1e3:.3f}",
            f"{t_o / len(files) * 1e3:.3f}",
            f"{t_a / t_o:.1f}x",
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n", type=int, default=20_000, help="alerts per survey (files, replicated)"
    )
    parser.add_argument("--workers", type=int, default=2, help="decoding processes")
    parser.add_argument("--quick", action="store_true", help="< 3 min: 4,000 alerts per survey")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--ztf-model", default="ztf-v0.1")
    parser.add_argument("--rubin-model", default="rubin-v0.1")
    parser.add_argument(
        "--single-core",
        type=int,
        default=0,
        metavar="N",
        help="instead: ms per alert in this one process on N files per survey (decode only)",
    )
    args = parser.parse_args()
    if args.quick:
        args.n = min(args.n, 4_000)
    console = Console(width=160)
    load = os.getloadavg()
    if args.single_core:
        single_core(args, console)
        return
    table = Table(
        title=f"alerts -> score table, {args.workers} worker processes, {os.cpu_count()} cores"
    )
    for column in (
        "survey",
        "path",
        "alerts",
        "decode alerts/s",
        "end-to-end alerts/s",
        "end-to-end vs astropy",
        "max |score - astropy|",
    ):
        table.add_column(column, justify="right" if column not in ("survey", "path") else "left")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        surveys = {
            "ZTF": (replicate(args.data / "ztf" / "alerts", "*.avro", args.n, tmp / "ztf"), 63),
            "Rubin": (
                replicate(args.data / "rubin" / "alerts", "*.msg", args.n, tmp / "rubin"),
                51,
            ),
        }
        for survey, (files, size) in surveys.items():
            model = args.ztf_model if survey == "ZTF" else args.rubin_model
            scorer = Scorer(load_package(model))
            n = len(files)
            t_dec_a, _ = timed(lambda: run_harness(files, size, args.workers))
            t_e2e_a, (_, ref) = timed(lambda: run_harness(files, size, args.workers, scorer))
            t_dec_o, batch = timed(
                lambda: read_alerts(files, stamp_size=size, workers=args.workers)
            )
            t_e2e_o, ours = timed(lambda: score_alerts(scorer, files, workers=args.workers))
            t_dec_b, _ = timed(lambda: run_harness(files, size, args.workers, braai=True))
            t_e2e_b, _ = timed(lambda: run_harness(files, size, args.workers, scorer, braai=True))
            # every alert has a row; the refused ones (no usable magzpsci) are NaN with a reason
            scored = ours.table[ours.table["status"] == "scored"]
            assert len(batch) == n and len(ours.table) == n and len(scored) == len(ref)
            diff = float(np.max(np.abs(scored.reliability.to_numpy() - ref)))
            t_cli, cli_scores = timed(
                lambda: whole_process(model, tmp / survey.lower(), tmp, args.workers)
            )
            cli_diff = float(np.max(np.abs(cli_scores - ref)))
            for name, t_dec, t_e2e, d in (
                ("astropy", t_dec_a, t_e2e_a, "0 (reference)"),
                (
                    "ours (realbogus.alerts)",
                    t_dec_o,
                    t_e2e_o,
                    f"{diff:.1e}" if diff else "0 (identical)",
                ),
                ("braai-style peer", t_dec_b, t_e2e_b, "n/a (normalised stamps)"),
                (
                    "whole process: `realbogus score` (subprocess)",
                    math.nan,
                    t_cli,
                    f"{cli_diff:.1e}" if cli_diff else "0 (identical)",
                ),
            ):
                table.add_row(
                    survey,
                    name,
                    f"{n:,}",
                    f"{n / t_dec:,.0f}" if t_dec == t_dec else "-",
                    f"{n / t_e2e:,.0f}",
                    f"{t_e2e_a / t_e2e:.2f}x",
                    d,
                )
            console.print(
                f"{survey}: {model} ({scorer.card.preprocessing}, {scorer.card.pixel_units}), backend {scorer.backend}, "
                f"stamp size {size}, {n} files, {len(ours.failures)} not scored (no magzpsci)"
            )
    console.print(table)
    console.print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}; load average before "
        + ", ".join(f"{x:.1f}" for x in load)
        + ", after "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg())
    )


if __name__ == "__main__":
    main()
