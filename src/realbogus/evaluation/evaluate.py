"""Evaluate one or more models on one labelled detection table: metrics.json, figures, report.

:func:`evaluate` takes the detection table and ``{model_version: reliability}``, computes every
number with :mod:`realbogus.evaluation.metrics`, draws the figures with :mod:`realbogus.report` and writes,
atomically (a temporary directory renamed into place)::

    OUT/metrics.json            every number, keys documented in docs/metrics.md
    OUT/report.html             self-contained (figures embedded as data URIs)
    OUT/figures/<name>.png      the figures
    OUT/curves/<model>.csv      purity/completeness at every distinct threshold, per population
    OUT/galleries/<model>/*.png stamp triplets of the galleries (when stamps are given)

:func:`realbogus.workflows.evaluate.evaluate_packages` scores a stamp dataset with model packages
first (the CLI's path).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from .. import __version__
from ..errors import ConfigError, InputError, RealBogusWarning
from ..io.atomic import atomic_directory
from ..io.jsonfile import dumps_strict, jsonable
from ..report import FigureData, render_html, write_figures
from ..report.alerts_section import alerts_html, write_alerts_section
from ..report.gallery import StampLoader, write_galleries
from ..report.html import render_alerts_html
from . import metrics as M
from .summary import model_extras, summary_sentences

if TYPE_CHECKING:
    from .alerts import AlertRun

__all__ = [
    "METRICS_SCHEMA_VERSION",
    "POPULATIONS",
    "SLICE_COLUMNS",
    "EvaluationResult",
    "evaluate",
    "evaluate_alerts",
]

METRICS_SCHEMA_VERSION = 1
#: The two populations of the headline numbers: (name, description, SNR low, SNR high, closed).
POPULATIONS = {
    "overall": "labelled detections with snr > 5 (DMTN-337's convention)",
    "requirement": "labelled detections with 5.5 <= snr <= 6.5 (OSS-REQ-0353 is set at SNR 6)",
}
#: Table columns sliced on when present (plus the SNR bins, under the key "snr_bin").
SLICE_COLUMNS = ("origin", "truthKind", "isNegative")


@dataclass(frozen=True)
class EvaluationResult:
    """What :func:`evaluate` wrote: the output directory and the metrics it holds."""

    path: Path
    metrics: dict

    @property
    def report(self) -> Path:
        """The self-contained HTML report."""
        return self.path / "report.html"


# ------------------------------------------------------------------------------ validation ---


def _floats(column: pd.Series) -> np.ndarray:
    """A column as float64 with NaN for missing or non-numeric values (nullable dtypes too)."""
    return (
        pd.to_numeric(column, errors="coerce")
        .astype("Float64")
        .to_numpy(dtype=np.float64, na_value=np.nan)
    )


def _labels(table: pd.DataFrame) -> np.ndarray:
    """Label column -> float array with 1, 0 and NaN (unknown)."""
    if "label" not in table.columns:
        msg = (
            "the detection table needs a 'label' column (1 Real, 0 Bogus, null unknown); "
            f"has {list(table.columns)}"
        )
        raise InputError(msg)
    lab = _floats(table["label"])
    raw_missing = table["label"].isna().to_numpy()
    bad = (np.isnan(lab) & ~raw_missing) | (~np.isnan(lab) & ~np.isin(lab, (0.0, 1.0)))
    if bad.any():
        values = table["label"][bad].unique()[:5].tolist()
        msg = f"label must be 1 (Real), 0 (Bogus) or null; got {values}"
        raise InputError(msg)
    return lab


def _check_scores(scores: Mapping[str, npt.ArrayLike], n: int) -> dict[str, np.ndarray]:
    if not scores:
        msg = "scores must map at least one model version to its reliability array"
        raise InputError(msg)
    out = {}
    for name, values in scores.items():
        if not isinstance(name, str) or not name:
            msg = f"model versions must be non-empty strings; got {name!r}"
            raise InputError(msg)
        r = np.asarray(values, dtype=np.float64)
        if r.shape != (n,):
            msg = f"model {name}: reliability has shape {r.shape}, the table has {n} rows"
            raise InputError(msg)
        if not np.isfinite(r).all() or (n and (r.min() < 0 or r.max() > 1)):
            msg = f"model {name}: reliability must be finite and in [0, 1]"
            raise InputError(msg)
        out[name] = r
    return out


def _safe_names(names: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
        safe, k = base, 1
        while safe.lower() in used:
            k += 1
            safe = f"{base}-{k}"
        used.add(safe.lower())
        out[name] = safe
    return out


def _flagged(table: pd.DataFrame) -> tuple[np.ndarray | None, str | None, str]:
    if "hasNanRowCol" in table.columns:
        flag = table["hasNanRowCol"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        return flag, "hasNanRowCol", "stamps with NaN rows/columns"
    if "valid_fraction" in table.columns:
        vf = _floats(table["valid_fraction"])
        return vf < 1.0, "valid_fraction < 1", "stamps with invalid pixels (valid_fraction < 1)"
    return None, None, ""


# ------------------------------------------------------------------------------ evaluate -----


def evaluate(
    table: pd.DataFrame,
    scores: Mapping[str, npt.ArrayLike],
    out: str | os.PathLike,
    *,
    cutoffs: Mapping[str, float] | None = None,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
    n_bins: int = 10,
    snr_bins: tuple[float, ...] = M.SNR_BINS,
    min_purity: float = M.REQUIREMENT_PURITY,
    min_completeness: float = M.REQUIREMENT_COMPLETENESS,
    overwrite: bool = False,
    provenance: Mapping[str, object] | None = None,
    progress: Callable[[int, int], None] | None = None,
    stamps: StampLoader | None = None,
    n_gallery: int = 8,
    alerts: AlertRun | None = None,
) -> EvaluationResult:
    """Evaluate models side by side on one detection table and write the report directory.

    Parameters
    ----------
    table : DataFrame of N rows
        Detection table (docs/design.md). Needs ``label`` (1 Real, 0 Bogus, null unknown:
        unknown rows are drawn but not scored). Uses when present: ``snr`` (populations, SNR
        bins), ``origin``, ``truthKind``, ``isNegative`` (slices), ``psfFlux``, ``psfFluxErr``,
        ``apFlux``, ``scienceFlux``, ``templateFlux``, ``truthMag``, ``labelSource``,
        ``hasNanRowCol`` or ``valid_fraction`` (figures).
    scores : mapping model version -> array of shape (N,)
        Reliability in [0, 1] per model, aligned with `table` rows.
    out : path-like
        Output directory; must not exist unless `overwrite`.
    cutoffs : mapping model version -> float, optional
        Each model's reliability cutoff (its card's); 0.5 where not given.
    n_boot : int
        Bootstrap replicates for the population intervals (0 = no intervals).
    seed : int
        Bootstrap seed; replicate i uses ``np.random.default_rng([seed, i])``.
    level : float
        Interval coverage (0.95).
    n_bins : int
        Calibration bins on [0, 1].
    snr_bins : tuple of float
        Edges of the SNR slices.
    min_purity, min_completeness : float
        The requirement (0.95, 0.90).
    overwrite : bool
        Replace an existing `out`.
    provenance : mapping, optional
        JSON-serialisable record stored under ``"provenance"`` (data path, packages, ...).
    progress : callable (done, total), optional
    stamps : callable rows -> ndarray of shape (k, 3, S, S), optional
        Reads the stamps of table rows (``realbogus.report.gallery.dataset_loader``); with it the
        report shows each model's galleries: the `n_gallery` most confident false positives and
        false negatives at its cutoff and `n_gallery` // 2 random Real and Bogus detections.
    n_gallery : int
        Triplets per mistake gallery.
    alerts : realbogus.workflows.alerts.AlertRun, optional
        Real alert packets scored by the models (``score_alert_folder``): adds the report's
        real-alerts section and ``metrics.json`` ``alerts``.

    Returns
    -------
    EvaluationResult

    Warns
    -----
    RealBogusWarning
        Once, listing degenerate results (one-class slices or populations); the same messages
        are stored under ``"warnings"`` in metrics.json.
    """
    out = Path(out)
    if not isinstance(table, pd.DataFrame):
        msg = f"table must be a pandas DataFrame; got {type(table).__name__}"
        raise InputError(msg)
    if out.exists() and not overwrite:
        msg = f"{out} already exists; choose another directory or pass --overwrite (from Python: overwrite=True)"
        raise InputError(msg)
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        msg = f"--n-boot (n_boot) must be a non-negative integer; got {n_boot!r}"
        raise ConfigError(msg)
    for name, v in (("min_purity", min_purity), ("min_completeness", min_completeness)):
        M._check_fraction(name, v)
    table = table.reset_index(drop=True)
    n = len(table)
    labels = _labels(table)
    scores = _check_scores(scores, n)
    cut = {m: 0.5 for m in scores}
    for m, c in (cutoffs or {}).items():
        if m not in scores:
            msg = f"cutoff given for unknown model {m!r}; models are {list(scores)}"
            raise ConfigError(msg)
        M._check_fraction(f"cutoff of {m}", c)
        cut[m] = float(c)
    safe = _safe_names(list(scores))

    labelled = ~np.isnan(labels)
    snr = _floats(table["snr"]) if "snr" in table.columns else None
    pops, pop_desc = _populations(labelled, snr)
    flagged, flag_source, flag_label = _flagged(table)
    slice_groups: dict[str, np.ndarray] = {
        c: table[c].to_numpy(dtype=object) for c in SLICE_COLUMNS if c in table.columns
    }
    if snr is not None:
        slice_groups["snr_bin"] = M.snr_bin_labels(snr, snr_bins)

    n_steps = len(scores) * 2 * n_boot + len(scores) + 1
    done = 0

    def step(k: int = 1) -> None:
        nonlocal done
        done += k
        if progress is not None:
            progress(min(done, n_steps), n_steps)

    common = {"min_purity": min_purity, "min_completeness": min_completeness, "n_bins": n_bins}
    models: dict[str, dict] = {}
    curves: dict[str, dict[str, M.PCCurve]] = {}
    origin_curves: dict[str, dict[str, M.PCCurve]] = {}
    calibrations: dict[str, M.Calibration] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RealBogusWarning)
        for m, r in scores.items():
            entry, curves[m], origin_curves[m], calibrations[m] = _model_metrics(
                m, r, cut[m], table, labels, pops, slice_groups, n_boot, seed, level, common, step
            )
            entry["curves_file"] = f"curves/{safe[m]}.csv"
            models[m] = entry
            step()
    messages = list(  # one statement per degenerate case
        dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, RealBogusWarning))
    )
    for w in caught:  # anything else (a third-party warning) goes on unchanged
        if not issubclass(w.category, RealBogusWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    metrics = {
        **_metrics_header(),
        "requirement": {"min_purity": min_purity, "min_completeness": min_completeness},
        "bootstrap": {"n_boot": int(n_boot), "seed": int(seed), "level": level},
        "calibration_bins": int(n_bins),
        "snr_bins": list(snr_bins),
        "populations": pop_desc,
        "data": {
            "n_rows": n,
            "n_labelled": int(labelled.sum()),
            "n_real": int((labels == 1).sum()),
            "n_bogus": int((labels == 0).sum()),
            "n_unlabelled": int((~labelled).sum()),
            "columns": [str(c) for c in table.columns],
            "flag_source": flag_source,
            "n_flagged": None if flagged is None else int(flagged.sum()),
        },
        "provenance": dict(provenance or {}),
        "models": models,
        "figures": [],
        "warnings": messages,
    }
    metrics["summary"] = summary_sentences(metrics)

    with atomic_directory(out) as tmp:
        (tmp / "figures").mkdir()
        (tmp / "curves").mkdir()
        for m in scores:
            _write_curves(tmp / models[m]["curves_file"], curves[m], origin_curves[m])
        fig_data = FigureData(
            table=table,
            scores=scores,
            cutoffs=cut,
            curves={m: {p: c for p, c in curves[m].items()} for m in scores},
            summaries={m: {p: s for p, s in models[m]["populations"].items() if s} for m in scores},
            origin_curves=origin_curves,
            calibrations={m: c for m, c in calibrations.items() if c.count.sum() > 0},
            flagged=flagged,
            flag_label=flag_label,
            population_labels={"overall": "SNR > 5", "requirement": "5.5 <= SNR <= 6.5"}
            if snr is not None
            else {"overall": "all labelled"},
            efficiency={m: models[m]["efficiency"] for m in scores},
        )
        if stamps is not None:
            metrics["galleries"] = write_galleries(
                tmp / "galleries",
                table,
                labels,
                scores,
                cut,
                stamps,
                folder_names=safe,
                n_confident=n_gallery,
                n_random=max(1, n_gallery // 2),
                seed=seed,
            )
        records = write_figures(fig_data, tmp / "figures")
        if alerts is not None:
            metrics["alerts"] = write_alerts_section(alerts, tmp)
        metrics["figures"] = [
            {
                "name": rec.name,
                "title": rec.title,
                "file": None if rec.file is None else f"figures/{rec.file}",
                "note": rec.note,
            }
            for rec in records
        ]
        metrics = jsonable(metrics)
        text = dumps_strict(metrics)
        (tmp / "metrics.json").write_text(text + "\n")
        extra = alerts_html(metrics["alerts"], tmp) if alerts is not None else None
        (tmp / "report.html").write_text(
            render_html(metrics, records, tmp / "figures", extra=extra)
        )
        step()
    if messages:
        head = "; ".join(messages[:3])
        more = f" (+{len(messages) - 3} more)" if len(messages) > 3 else ""
        warnings.warn(
            f"evaluate: {len(messages)} degenerate result(s), listed in metrics.json 'warnings': "
            f"{head}{more}",
            RealBogusWarning,
            stacklevel=2,
        )
    return EvaluationResult(path=out, metrics=metrics)


def evaluate_alerts(
    alerts: AlertRun,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    provenance: Mapping[str, object] | None = None,
) -> EvaluationResult:
    """Write a report of real alert packets alone: our scores against the survey's own.

    Real alerts carry the survey's score (Rubin ``reliability``, ZTF ``drb``/``rb``), not a
    truth label, so there is no requirement window here: the report holds the real-alerts
    section of :func:`evaluate` (ROC AUC and rank correlation against the survey's score,
    agreement counts, asteroid recall, disagreement galleries).

    Parameters
    ----------
    alerts : realbogus.evaluation.alerts.AlertRun
        Alert packets scored by the models (``realbogus.workflows.alerts.score_alert_folder``).
    out : path-like
        Output directory; must not exist unless `overwrite`.
    overwrite : bool
        Replace an existing `out`.
    provenance : mapping, optional
        JSON-serialisable record stored under ``"provenance"``.

    Returns
    -------
    EvaluationResult
        ``metrics`` has ``alerts`` and an empty ``models`` (no labelled data).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        msg = f"{out} already exists; choose another directory or pass --overwrite (from Python: overwrite=True)"
        raise InputError(msg)
    metrics: dict = {
        **_metrics_header(),
        "data": None,
        "provenance": dict(provenance or {}),
        "models": {},
        "summary": [],
        "warnings": [],
    }
    with atomic_directory(out) as tmp:
        (tmp / "figures").mkdir()
        metrics["alerts"] = write_alerts_section(alerts, tmp)
        metrics = jsonable(metrics)
        (tmp / "metrics.json").write_text(dumps_strict(metrics) + "\n")
        page = render_alerts_html(metrics, alerts_html(metrics["alerts"], tmp))
        (tmp / "report.html").write_text(page)
    return EvaluationResult(path=out, metrics=metrics)


def _metrics_header() -> dict:
    """The first keys of every metrics.json: schema, code version, creation time (UTC)."""
    return {
        "schema_version": METRICS_SCHEMA_VERSION,
        "realbogus_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _model_metrics(
    m: str,
    r: np.ndarray,
    cutoff: float,
    table: pd.DataFrame,
    labels: np.ndarray,
    pops: dict[str, np.ndarray | None],
    slice_groups: dict[str, np.ndarray],
    n_boot: int,
    seed: int,
    level: float,
    common: dict,
    step: Callable[..., None],
) -> tuple[dict, dict[str, M.PCCurve], dict[str, M.PCCurve], M.Calibration]:
    """One model's `metrics.json` entry, its curves per population and per origin, and its
    calibration; `r` (N,) its scores on `table`, `labels` (N,) 1/0/NaN."""
    n = len(table)
    labelled = ~np.isnan(labels)
    y_all = labels == 1.0
    type_columns = [c for c in ("truthKind", "origin") if c in table.columns]
    entry: dict = {
        "cutoff": cutoff,
        "n_scored": n,
        "fraction_passing_cutoff": float((r >= cutoff).mean()) if n else math.nan,
        "populations": {},
    }
    curves: dict[str, M.PCCurve] = {}
    for pop, mask in pops.items():
        if mask is None:
            entry["populations"][pop] = None
            step(n_boot)
            continue
        entry["populations"][pop] = M.summarize(
            y_all[mask],
            r[mask],
            cutoff=cutoff,
            n_boot=n_boot,
            seed=seed,
            level=level,
            name=f"{m}, population {pop}",
            **common,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RealBogusWarning)  # already warned above
            curves[pop] = M.purity_completeness(y_all[mask], r[mask])
        step(n_boot)
    cal_mask = pops["overall"]
    cal = M.calibration(y_all[cal_mask], r[cal_mask], n_bins=common["n_bins"])
    entry["calibration"] = {
        "population": "overall",
        "edges": cal.edges,
        "count": cal.count,
        "mean_score": cal.mean_score,
        "fraction_real": cal.fraction_real,
        "ece": cal.ece,
    }
    entry["slices"] = {
        by: M.slice_summaries(
            y_all[labelled],
            r[labelled],
            groups[labelled],
            by=f"{m}: {by}",
            cutoff=cutoff,
            **common,
        )
        for by, groups in slice_groups.items()
    }
    entry["type_table"] = {
        col: M.type_table(
            y_all[labelled],
            r[labelled],
            table[col].to_numpy(object)[labelled],
            cutoff=cutoff,
        )
        for col in type_columns
    }
    origin_curves: dict[str, M.PCCurve] = {}
    if "origin" in table.columns:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RealBogusWarning)  # slices warned above
            keys = np.array([M._group_key(v) for v in slice_groups["origin"]], dtype=object)
            for o in sorted(set(keys[labelled].tolist())):
                mk = labelled & (keys == o)
                origin_curves[o] = M.purity_completeness(y_all[mk], r[mk])
    entry.update(model_extras(table, labels, r, cutoff))
    return entry, curves, origin_curves, cal


def _populations(
    labelled: np.ndarray, snr: np.ndarray | None
) -> tuple[dict[str, np.ndarray | None], dict[str, str]]:
    """The headline populations as row masks (None: not computable) and their descriptions."""
    if snr is None:
        return {"overall": labelled, "requirement": None}, {
            "overall": "all labelled detections (the table has no snr column)",
            "requirement": "not computed: the table has no snr column",
        }
    masks = {
        "overall": labelled & (snr > 5.0),
        "requirement": labelled & (snr >= 5.5) & (snr <= 6.5),
    }
    return masks, dict(POPULATIONS)


def _write_curves(
    path: Path, pops: Mapping[str, M.PCCurve], by_origin: Mapping[str, M.PCCurve]
) -> None:
    frames = []
    items = list(pops.items()) + [(f"origin={o}", c) for o, c in by_origin.items()]
    for name, c in items:
        frames.append(
            pd.DataFrame(
                {
                    "population": name,
                    "threshold": c.thresholds,
                    "purity": c.purity,
                    "completeness": c.completeness,
                    "n_real_passing": c.tp.astype(np.int64),
                    "n_bogus_passing": c.fp.astype(np.int64),
                }
            )
        )
    cols = [
        "population",
        "threshold",
        "purity",
        "completeness",
        "n_real_passing",
        "n_bogus_passing",
    ]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    pacsv.write_csv(pa.Table.from_pandas(df, preserve_index=False), path)  # fast, full precision
