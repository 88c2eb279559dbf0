"""A whole simulated survey: fields spread over processes, written as a realbogus dataset.

Output directory layout (``out``):

* the dataset itself (``manifest.json`` + Parquet parts, `realbogus.io.dataset.write_dataset`);
* ``truth.parquet``: every Real truth source with ``detected`` and its measured SNR and flux;
* ``visits.parquet``: per-visit conditions and quality numbers (SNR-map robust std, kernel sum);
* ``config.yaml``: the exact `SimConfig` used; ``summary.json``: the headline quality numbers;
* with ``save_images``: ``images/visit_NNNNNN/{science,template,difference,variance}.fits`` and
  ``catalog.parquet`` (the detections of that visit), ready for ``realbogus score``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..errors import ConfigError, InputError
from ..io.atomic import atomic_path, file_mode, write_text
from ..io.dataset import write_dataset
from ..io.jsonfile import dumps_strict
from ..io.tables import write_table
from ..stamps import Stamps
from .config import SimConfig, load_config
from .field import VisitResult, simulate_field

__all__ = ["simulate_survey", "plan_fields", "survey_summary"]

Progress = Callable[[int, int], None]


def plan_fields(n_visits: int, epochs_per_field: int) -> list[tuple[int, int, int]]:
    """Split `n_visits` into fields: a list of (field, n_epochs, first_visit)."""
    plan = []
    visit = 0
    field = 0
    while visit < n_visits:
        n = min(epochs_per_field, n_visits - visit)
        plan.append((field, n, visit))
        visit += n
        field += 1
    return plan


def _run_field(args: tuple) -> list[VisitResult]:
    config_dict, field, seed, n_epochs, first_visit, keep_images = args
    config = SimConfig(**config_dict)
    return simulate_field(
        config,
        field=field,
        seed=seed,
        n_epochs=n_epochs,
        first_visit=first_visit,
        keep_images=keep_images,
    )


def _save_visit_images(result: VisitResult, folder: Path, config: SimConfig) -> None:
    from astropy.io import fits

    folder.mkdir(parents=True, exist_ok=True)
    header = fits.Header()
    for key, value in result.images["header"].items():
        header[key] = value
    header["BUNIT"] = "nJy"
    header["SURVEY"] = config.name
    header["VISIT"] = int(result.metrics["visit"])
    header["FIELD"] = int(result.metrics["field"])
    header["SEEING"] = (float(result.metrics["seeing"]), "science PSF FWHM, arcsec")
    for name in ("science", "template", "difference", "variance"):
        with atomic_path(folder / f"{name}.fits") as tmp:
            fits.PrimaryHDU(result.images[name], header=header).writeto(tmp, overwrite=True)
    write_table(result.table, folder / "catalog.parquet")


def simulate_survey(
    config: SimConfig | str | Path | dict | None = None,
    *,
    n_visits: int,
    seed: int,
    out: str | os.PathLike,
    workers: int | None = None,
    progress: Progress | None = None,
    save_images: bool = False,
    survey: str = "rubin",
    overwrite: bool = False,
    preview: bool = True,
) -> Path:
    """Simulate `n_visits` visits and write a labelled stamp dataset to `out`.

    Parameters
    ----------
    config : SimConfig, YAML path, dict of overrides, or None
        The survey; dicts and YAML files override the `survey` preset.
    n_visits : int
        Science visits; they are grouped into fields of ``config.epochs_per_field`` visits
        sharing one template (the ``field`` column, which training splits group by).
    seed : int
        Survey seed; the output is identical for a seed whatever `workers` is.
    out : path-like
        Output directory (must not exist unless `overwrite`).
    workers : int, optional
        Processes (default: all cores, at most one per field); 1 runs in this process.
    progress : callable (done, total), optional
        Called after each finished visit.
    save_images : bool
        Also write the FITS images and the detection catalog of every visit.
    survey : str
        Preset that `config` overrides (``"rubin"`` or ``"ztf"``).
    overwrite : bool
        Replace an existing `out`.
    preview : bool
        Write ``preview.png`` (example triplets per truth kind).

    Returns
    -------
    Path
        `out`.
    """
    cfg = load_config(config, survey=survey)
    if not isinstance(n_visits, (int, np.integer)) or n_visits < 1:
        msg = f"n_visits must be a positive integer; got {n_visits!r}"
        raise ConfigError(msg)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        msg = f"seed must be a non-negative integer; got {seed!r}"
        raise ConfigError(msg)
    if workers is not None and (not isinstance(workers, (int, np.integer)) or workers < 1):
        msg = f"--workers (workers) must be a positive integer or None; got {workers!r}"
        raise ConfigError(msg)
    out = Path(out)
    if out.exists() and not overwrite:
        msg = f"{out} already exists; choose another path or pass --overwrite (from Python: overwrite=True)"
        raise InputError(msg)
    plan = plan_fields(int(n_visits), cfg.epochs_per_field)
    n_workers = min(workers or os.cpu_count() or 1, len(plan))
    tasks = [(cfg.to_dict(), field, int(seed), n, first, save_images) for field, n, first in plan]

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.work.", dir=out.parent))
    try:
        tables, truths, metrics, stamp_files = [], [], [], []
        done = 0
        image_dir = work / "images"

        def collect(results: list[VisitResult]) -> None:
            nonlocal done
            for r in results:
                visit = int(r.metrics["visit"])
                tables.append(r.table)
                truths.append(r.truth)
                metrics.append(r.metrics)
                path = work / f"stamps-{visit:06d}.npy"
                np.save(path, r.stamps.data)
                stamp_files.append((visit, path, r.stamps.valid_fraction, r.stamps.edge))
                if save_images:
                    _save_visit_images(r, image_dir / f"visit_{visit:06d}", cfg)
                done += 1
                if progress is not None:
                    progress(done, int(n_visits))

        if n_workers <= 1:
            for task in tasks:
                collect(_run_field(task))
        else:
            with ProcessPoolExecutor(max_workers=n_workers) as pool:
                for results in pool.map(_run_field, tasks):
                    collect(results)

        order = np.argsort([m["visit"] for m in metrics], kind="stable")
        table = pd.concat([tables[i] for i in order], ignore_index=True)
        n_rows = len(table)
        size = cfg.stamp_size
        # Stamps go through a memory map so big surveys never hold all pixels in memory.
        big = np.lib.format.open_memmap(
            work / "stamps.npy", mode="w+", dtype=np.float32, shape=(n_rows, 3, size, size)
        )
        valid = np.empty(n_rows, np.float32)
        edge = np.empty(n_rows, bool)
        row = 0
        for i in order:
            _, path, vf, ed = stamp_files[i]
            part = np.load(path, mmap_mode="r")
            big[row : row + len(part)] = part
            valid[row : row + len(part)] = vf
            edge[row : row + len(part)] = ed
            row += len(part)
            os.unlink(path)
        big.flush()
        truth = pd.concat([truths[i] for i in order], ignore_index=True)
        visits = pd.DataFrame([metrics[i] for i in order])
        summary = survey_summary(table, truth, visits)
        provenance = {
            "generator": "realbogus.sim",
            "survey": cfg.name,
            "seed": int(seed),
            "pixel_units": "nJy",
            "n_visits": int(n_visits),
            "config": cfg.to_dict(),
            "summary": summary,
        }
        # 10,000 rows per part (~0.3 GB of 51x51 stamps): bounded memory, Dask-sized partitions.
        write_dataset(
            out,
            table,
            Stamps(data=big, valid_fraction=valid, edge=edge),
            provenance=provenance,
            overwrite=overwrite,
            rows_per_part=10_000,
        )
        del big
        write_table(truth, out / "truth.parquet")
        write_table(visits, out / "visits.parquet")
        write_text(
            out / "config.yaml",
            yaml.safe_dump({"survey": cfg.name, **cfg.to_dict()}, sort_keys=False),
        )
        write_text(out / "summary.json", dumps_strict(summary))
        if preview and len(table):
            from .preview import write_preview

            write_preview(out, out / "preview.png", seed=int(seed))
        if save_images:
            if (out / "images").exists():
                shutil.rmtree(out / "images")
            os.chmod(image_dir, file_mode(directory=True))
            os.replace(image_dir, out / "images")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def survey_summary(table: pd.DataFrame, truth: pd.DataFrame, visits: pd.DataFrame) -> dict:
    """Headline quality numbers of a simulated survey (what docs/simulation.md reports).

    Returns a JSON-serialisable dict: counts by label, kind, origin and polarity; the fraction
    of injected fakes with true SNR >= 6 that were detected; the median psfFlux / true flux of
    fakes with true SNR > 20; the median robust std of the SNR map away from sources; the
    fraction of stamps with NaN rows or columns.
    """
    fakes = truth[truth["kind"] == "injection"]
    bright = fakes[fakes["snr"] >= 6]
    strong = fakes[(fakes["snr"] > 20) & fakes["detected"]]
    ratio = (strong["psfFlux"] / strong["flux"]).to_numpy()
    real = table["label"] == 1
    bogus = table["label"] == 0
    kinds_bogus = table.loc[bogus, "truthKind"].value_counts()
    return {
        "n_visits": int(len(visits)),
        "n_fields": int(visits["field"].nunique()) if len(visits) else 0,
        "n_detections": int(len(table)),
        "n_real": int(real.sum()),
        "n_bogus": int(bogus.sum()),
        "real_positive": int((real & ~table["isNegative"]).sum()),
        "real_negative": int((real & table["isNegative"]).sum()),
        "bogus_positive": int((bogus & ~table["isNegative"]).sum()),
        "bogus_negative": int((bogus & table["isNegative"]).sum()),
        "real_kinds": {
            str(k): int(v) for k, v in table.loc[real, "truthKind"].value_counts().items()
        },
        "bogus_kinds": {str(k): int(v) for k, v in kinds_bogus.items()},
        "n_bogus_kinds": int((kinds_bogus > 0).sum()),
        "origins": {str(k): int(v) for k, v in table["origin"].value_counts().items()},
        "fakes_injected": int(len(fakes)),
        "fakes_snr_ge_6": int(len(bright)),
        "fake_completeness_snr_ge_6": float(bright["detected"].mean())
        if len(bright)
        else float("nan"),
        "fakes_snr_gt_20_detected": int(len(strong)),
        "median_psfflux_ratio_snr_gt_20": float(np.nanmedian(ratio))
        if len(ratio)
        else float("nan"),
        "snr_map_robust_std_median": float(visits["snr_robust_std"].median())
        if len(visits)
        else float("nan"),
        "snr_map_robust_std_range": [
            float(visits["snr_robust_std"].min()),
            float(visits["snr_robust_std"].max()),
        ]
        if len(visits)
        else [],
        "snr_map_robust_std_with_noise_patches_median": float(
            visits["snr_robust_std_with_patches"].median()
        )
        if len(visits)
        else float("nan"),
        "fake_completeness_by_true_snr": {
            f"{lo:g}-{hi:g}": [float(b["detected"].mean()) if len(b) else float("nan"), int(len(b))]
            for lo, hi in ((3, 5), (5, 6), (6, 8), (8, 12), (12, 20), (20, 50), (50, 100))
            for b in [fakes[(fakes["snr"] >= lo) & (fakes["snr"] < hi)]]
        },
        "detections_5_to_8_sigma": {
            "real": int((real & (table["snr"] < 8)).sum()),
            "bogus": int((bogus & (table["snr"] < 8)).sum()),
            "bogus_kinds": {
                str(k): int(v)
                for k, v in table.loc[bogus & (table["snr"] < 8), "truthKind"]
                .value_counts()
                .items()
            },
        },
        "nan_rowcol_stamp_fraction": float(table["hasNanRowCol"].mean())
        if len(table)
        else float("nan"),
    }
