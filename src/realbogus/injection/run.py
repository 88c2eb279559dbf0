"""`inject` over many science frames: one labelled dataset, like `simulate` writes.

The output directory holds the dataset (Parquet parts + ``manifest.json``, the columns of
`realbogus.sim.dia.TABLE_COLUMNS`), ``truth.parquet`` (one row per fake: ``detected``,
``measuredSnr``, ``psfFlux``), ``visits.parquet`` (per-frame metrics, with ``noiseScale``: the
median factor the difference's noise was rescaled by, and the noise model's ``noiseA``,
``noiseB``, ``noiseVarying``, ``noiseScaleMin`` / ``noiseScaleMax``), ``summary.json``,
``psf/<frame>.fits`` (the PSF used for each frame) and ``preview.png``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.atomic import atomic_path
from ..io.dataset import write_dataset
from ..numeric import mad_sigma
from ..stamps import Stamps
from .frames import read_frame
from .inject import InjectConfig, inject_frame
from .noise import pair_differences
from .psf import read_psf, write_psf
from .register import Stars, find_stars
from .template import Template, read_template
from .variables import LightCurve, find_variables, frame_fluxes, template_peaks

__all__ = ["FrameOptions", "field_variables", "inject_dataset", "read_known"]


@dataclass(frozen=True)
class FrameOptions:
    """How to read the science frames (CLI flags of the same names).

    Attributes
    ----------
    variance, noise, mask : tuple of str
        Per-frame maps, in the order of the science frames (empty: none).
    gain, read_noise, saturation : float or None
        Override the header.
    psf, template_psf : str or None
        PSF model files (science frames: used for every frame instead of measuring).
    pixel_scale : float or None
        Arcsec per pixel, for the ``seeing`` columns.
    """

    variance: tuple[str, ...] = ()
    noise: tuple[str, ...] = ()
    mask: tuple[str, ...] = ()
    gain: float | None = None
    read_noise: float | None = None
    saturation: float | None = None
    psf: str | None = None
    template_psf: str | None = None
    pixel_scale: float | None = None


def read_known(path: str | os.PathLike) -> pd.DataFrame:
    """A catalogue of known real sources: columns ``x``, ``y`` (0-based pixels of the science
    frames), ``template_x``, ``template_y`` (0-based pixels of the template: each frame's
    registration maps them; `realbogus variables` writes these) or ``ra``, ``dec`` (degrees;
    frames need a WCS), and optionally ``origin``. A ``variable`` column, when present, keeps
    only its true rows."""
    from ..io.tables import read_table

    table = read_table(path)
    cols = set(table.columns)
    if not ({"x", "y"} <= cols or {"template_x", "template_y"} <= cols or {"ra", "dec"} <= cols):
        msg = (
            f"--known {path}: needs columns x, y (pixels), template_x, template_y (template "
            f"pixels) or ra, dec (degrees); has {sorted(cols)}"
        )
        raise InputError(msg)
    if "variable" in cols:
        table = table[table["variable"].astype(bool)].reset_index(drop=True)
    return table


def _known_in_frame(known: pd.DataFrame | None, frame) -> pd.DataFrame | None:
    if known is None:
        return None
    if {"x", "y"} <= set(known.columns) or {"template_x", "template_y"} <= set(known.columns):
        return known  # template pixels: mapped in `inject_frame`, which has the registration
    if frame.wcs is None:
        msg = f"--known gives ra, dec but {frame.name} has no WCS; give x, y pixels instead"
        raise InputError(msg)
    x, y = frame.wcs.world_to_pixel_values(known["ra"].to_numpy(), known["dec"].to_numpy())
    return known.assign(x=np.asarray(x), y=np.asarray(y))


def _run_frame(task: tuple) -> tuple:
    from threadpoolctl import threadpool_limits

    # One BLAS thread: frames run in parallel processes, and threads fighting over busy cores
    # slow the A&L fit's many small products (as in the simulation).
    with threadpool_limits(limits=1):
        return _run_frame_inner(task)


def _read_inputs(index: int, path: str, template_path: str, opts: FrameOptions) -> tuple:
    """Frame `index` (its maps and flags), the template and its stars, the given PSFs."""
    frame = read_frame(
        path,
        variance=opts.variance[index] if opts.variance else None,
        noise=opts.noise[index] if opts.noise else None,
        mask=opts.mask[index] if opts.mask else None,
        gain=opts.gain,
        read_noise=opts.read_noise,
        saturation=opts.saturation,
    )
    template, template_stars = _template(template_path, os.stat(template_path).st_mtime_ns)
    psf = read_psf(opts.psf, shape=frame.shape) if opts.psf else None
    tpsf = (
        read_psf(opts.template_psf, shape=template.image.shape, flag="--template-psf")
        if opts.template_psf
        else None
    )
    return frame, template, template_stars, psf, tpsf


def _run_frame_inner(task: tuple) -> tuple:
    (index, path, template_path, cfg, seed, opts, survey, known) = task
    frame, template, template_stars, psf, tpsf = _read_inputs(index, path, template_path, opts)
    try:
        result, used_psf = inject_frame(
            frame,
            template,
            config=cfg,
            rng=np.random.default_rng([seed, index]),
            visit=index,
            survey=survey,
            psf=psf,
            template_psf=tpsf,
            known=_known_in_frame(known, frame),
            known_action=opts_known_action(known),
            pixel_scale=opts.pixel_scale,
            template_stars=template_stars,
        )
    except InputError as exc:
        msg = f"{frame.name}: {exc}"
        raise InputError(msg) from exc
    # The SNR map at the quiet check pixels (away from sources): pooled over frames in
    # summary.json; the images themselves do not travel back.
    snr, mask = result.images["snr"], result.images["quiet_check"]
    pairs = pair_differences(snr, mask, min_separation=3 * result.metrics["seeing_px"])
    quiet = (snr[mask].astype(np.float32), pairs.astype(np.float32))
    result.images = None
    return index, frame.name, result, used_psf, quiet


@functools.lru_cache(maxsize=2)
def _template(path: str, mtime_ns: int) -> tuple[Template, Stars]:
    """The template and its stars, read and found once per process (every frame uses them;
    `inject_frame` copies what it changes). `mtime_ns` keys the cache to the file's version."""
    template = read_template(path)
    return template, find_stars(template.image, template.variance, template.bad)


def opts_known_action(known: pd.DataFrame | None) -> str:
    """The action travels in the catalogue's attrs (set by `inject_dataset`)."""
    return "drop" if known is None else str(known.attrs.get("action", "drop"))


def _map_frames(
    run: Callable[[tuple], tuple],
    tasks: list[tuple],
    *,
    workers: int | None,
    progress: Callable[[int, int], None] | None,
) -> list[tuple]:
    """`run` over the frames' tasks (each starting with its frame index), in this process or
    in `workers` processes (None: one per CPU); results in frame order."""
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    results: list[tuple] = []
    with contextlib.ExitStack() as stack:
        if n_workers == 1:
            outputs = map(run, tasks)
        else:
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=n_workers))
            outputs = pool.map(run, tasks)
        for res in outputs:
            results.append(res)
            if progress is not None:
                progress(len(results), len(tasks))
    return sorted(results, key=lambda r: r[0])


def inject_dataset(
    science: Sequence[str | os.PathLike],
    template: str | os.PathLike,
    out: str | os.PathLike,
    *,
    config: InjectConfig | None = None,
    seed: int = 0,
    options: FrameOptions | None = None,
    known: pd.DataFrame | None = None,
    known_action: str = "drop",
    survey: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    preview: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Inject fakes into every science frame and write one labelled dataset.

    Parameters
    ----------
    science : sequence of path-like
        Science frames (FITS).
    template : path-like
        A template written by `write_template` (``realbogus template``).
    out : path-like
        Output directory; must not exist unless `overwrite`.
    config : InjectConfig, optional
    seed : int
        Frame i draws its fakes from ``default_rng([seed, i])``: the same seed gives the same
        dataset, whichever process ran the frame.
    options : FrameOptions, optional
    known, known_action
        Known real sources (`read_known`) and what to do with detections on them
        ("drop" or "real").
    survey : str, optional
        ``survey`` column; default the template header's ``TELESCOP`` (else "real").
    workers : int, optional
        Processes (default: all cores, at most one per frame).

    Raises
    ------
    InputError
        No frames, an existing `out`, map lists whose length differs from the frames', or any
        frame that fails (the message names the frame).
    """
    config = config or InjectConfig()
    options = options or FrameOptions()
    science = [str(p) for p in science]
    if not science:
        msg = "no science frames given; pass --science S.fits [S ...]"
        raise InputError(msg)
    for flag, maps in (
        ("--variance", options.variance),
        ("--noise", options.noise),
        ("--mask", options.mask),
    ):
        if maps and len(maps) != len(science):
            msg = f"{flag} needs one map per science frame ({len(science)}); got {len(maps)}"
            raise InputError(msg)
    out = Path(out)
    if out.exists() and not overwrite:
        msg = f"{out} already exists; choose another --out or pass --overwrite"
        raise InputError(msg)
    tmpl = read_template(template)  # fail early on a bad template
    if survey is None:
        survey = str(tmpl.header.get("TELESCOP", "real")).strip() or "real"
    if known is not None:
        known = known.copy()
        known.attrs["action"] = known_action
    tasks = [
        (i, path, str(template), config, int(seed), options, survey, known)
        for i, path in enumerate(science)
    ]
    results = _map_frames(_run_frame, tasks, workers=workers, progress=progress)
    table = pd.concat([r[2].table for r in results], ignore_index=True)
    stamps = Stamps(
        data=np.concatenate([r[2].stamps.data for r in results]),
        valid_fraction=np.concatenate([r[2].stamps.valid_fraction for r in results]),
        edge=np.concatenate([r[2].stamps.edge for r in results]),
    )
    truth = pd.concat([r[2].truth for r in results], ignore_index=True)
    visits = pd.DataFrame([r[2].metrics for r in results])
    summary = summarize_injection(
        table,
        truth,
        visits,
        quiet_snr=[r[4][0] for r in results],
        quiet_pairs=[r[4][1] for r in results],
    )
    provenance = {
        "generator": "realbogus.injection",
        "survey": survey,
        "seed": int(seed),
        "pixel_units": str(tmpl.header.get("BUNIT", "ADU")).strip() or "ADU",
        "science": [Path(p).name for p in science],
        "template": Path(template).name,
        "template_frames": list(tmpl.frames["name"]) if "name" in tmpl.frames else [],
        "config": config.to_dict(),
        "summary": summary,
    }
    write_dataset(out, table, stamps, provenance=provenance, overwrite=overwrite)
    truth.to_parquet(out / "truth.parquet", index=False)
    visits.to_parquet(out / "visits.parquet", index=False)
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    for _, name, _, used_psf, _ in results:
        write_psf(used_psf, out / "psf" / f"{name}.psf.fits", name=name)
    if preview and len(table):
        from ..sim.preview import write_preview

        write_preview(out, out / "preview.png", seed=int(seed))
    return out


def summarize_injection(
    table: pd.DataFrame,
    truth: pd.DataFrame,
    visits: pd.DataFrame,
    *,
    quiet_snr: Sequence[np.ndarray] | None = None,
    quiet_pairs: Sequence[np.ndarray] | None = None,
) -> dict:
    """The numbers issue 18 asks for: counts, the detected fraction of fakes with true SNR >= 6,
    the median psfFlux / true flux of fakes with SNR > 20, the SNR map's robust std away from
    sources and away from detections on the check cells (median over frames; with `quiet_snr`,
    the SNR map at each frame's quiet check pixels, also pooled over frames:
    ``snr_robust_std_pooled``, centred on the pooled median, on 0, and on each frame's own
    median; with `quiet_pairs`, `realbogus.injection.noise.pair_differences` of those pixels,
    ``pair_difference``: no centre to choose), and the noise factor of each frame
    (``noise_scale``: the median over frames of each frame's median k; 1 where not rescaled;
    ``frames_varying``: frames whose k follows the local density)."""
    from ..sim.survey import survey_summary

    out = survey_summary(table, truth, visits)
    fakes = truth[truth["kind"] == "injection"]
    out["n_fakes"] = int(len(fakes))
    out["n_frames"] = int(len(visits))
    std = visits["snr_robust_std"].to_numpy(float) if len(visits) else np.zeros(0)
    out["snr_robust_std_frames"] = {
        "median": float(np.nanmedian(std)) if std.size else float("nan"),
        "p10": float(np.nanpercentile(std, 10)) if std.size else float("nan"),
        "p90": float(np.nanpercentile(std, 90)) if std.size else float("nan"),
        "quiet_pixels_median": float(np.median(visits["quiet_pixels"])) if len(visits) else 0.0,
        "away_from_detections_median": float(np.nanmedian(visits["snr_robust_std_nodet"]))
        if len(visits)
        else float("nan"),
        "away_from_detections_p10": float(np.nanpercentile(visits["snr_robust_std_nodet"], 10))
        if len(visits)
        else float("nan"),
        "away_from_detections_p90": float(np.nanpercentile(visits["snr_robust_std_nodet"], 90))
        if len(visits)
        else float("nan"),
    }
    scale = visits["noiseScale"].to_numpy(float) if len(visits) else np.ones(0)
    out["noise_scale"] = {
        "median": float(np.median(scale)) if scale.size else float("nan"),
        "p10": float(np.percentile(scale, 10)) if scale.size else float("nan"),
        "p90": float(np.percentile(scale, 90)) if scale.size else float("nan"),
        "min": float(scale.min()) if scale.size else float("nan"),
        "max": float(scale.max()) if scale.size else float("nan"),
        "frames_not_rescaled": int((scale == 1.0).sum()),
        "frames_varying": int(visits["noiseVarying"].sum()) if "noiseVarying" in visits else 0,
    }
    if "snr_robust_std0" in visits and len(visits):
        out["snr_robust_std_frames"]["median_zero_centred"] = float(
            np.nanmedian(visits["snr_robust_std0"])
        )
    if quiet_snr is not None:
        frames = [np.asarray(v, np.float64)[np.isfinite(v)] for v in quiet_snr]
        frames = [v for v in frames if v.size]
        vals = np.concatenate(frames) if frames else np.zeros(0)
        own = np.concatenate([v - np.median(v) for v in frames]) if frames else vals
        nan = float("nan")
        out["snr_robust_std_pooled"] = {
            "pixels": int(vals.size),
            "median": float(np.median(vals)) if vals.size else nan,
            "median_centred": mad_sigma(vals) if vals.size else nan,
            "zero_centred": mad_sigma(vals, 0.0) if vals.size else nan,
            "frame_median_centred": mad_sigma(own, 0.0) if vals.size else nan,
        }
        if quiet_pairs is not None:
            pairs = np.concatenate([np.asarray(p, np.float64) for p in quiet_pairs])
            pairs = pairs[np.isfinite(pairs)]
            out["snr_robust_std_pooled"]["pairs"] = int(pairs.size)
            out["snr_robust_std_pooled"]["pair_difference"] = (
                mad_sigma(pairs, 0.0) if pairs.size else nan
            )
    return out


def _variables_frame(task: tuple) -> tuple[int, LightCurve]:
    from threadpoolctl import threadpool_limits

    index, path, template_path, cfg, opts, targets = task
    with threadpool_limits(limits=1):
        frame, template, stars, psf, tpsf = _read_inputs(index, path, template_path, opts)
        try:
            curve = frame_fluxes(
                frame,
                template,
                targets,
                config=cfg,
                psf=psf,
                template_psf=tpsf,
                registration_stars=stars,
            )
        except InputError as exc:
            msg = f"{frame.name}: {exc}"
            raise InputError(msg) from exc
    return index, curve


def field_variables(
    science: Sequence[str | os.PathLike],
    template: str | os.PathLike,
    *,
    config: InjectConfig | None = None,
    options: FrameOptions | None = None,
    min_chi2: float = 5.0,
    min_outliers: int = 3,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """The template's stars and which of them vary over the science frames
    (`realbogus.injection.variables`; the ``realbogus variables`` command).

    Parameters
    ----------
    science : sequence of path-like
        The frames (at least 10: a light curve needs frames).
    template : path-like
        From ``realbogus template``.
    config : InjectConfig, optional
        Subtraction options (`inject`'s defaults).
    options : FrameOptions, optional
        How to read the frames (per-frame maps, gain, PSF models).
    min_chi2, min_outliers : float, int
        The variability rule (`variables.find_variables`).
    workers : int, optional
        Frame processes; None = one per CPU.
    progress : callable(done, total), optional

    Returns
    -------
    DataFrame
        One row per template star (`variables.find_variables`); ``variable`` marks the
        catalogue `inject --known` reads.
    """
    if len(science) < 10:
        msg = f"--science: {len(science)} frames; finding variables needs at least 10"
        raise InputError(msg)
    config = config or InjectConfig(n_fakes=0)
    options = options or FrameOptions()
    template = str(template)
    tmpl, _ = _template(template, os.stat(template).st_mtime_ns)
    stars = template_peaks(tmpl)
    tasks = [(i, str(p), template, config, options, stars) for i, p in enumerate(science)]
    curves = _map_frames(_variables_frame, tasks, workers=workers, progress=progress)
    return find_variables(
        [c for _, c in curves], stars, min_chi2=min_chi2, min_outliers=min_outliers
    )
