"""The report's figures, after DMTN-337 section 4 (matplotlib, Agg; no pyplot global state).

Each figure function takes a :class:`FigureData` and returns a matplotlib ``Figure``, or raises
:class:`FigureSkipped` with a note saying which columns or rows it lacks. Nothing here computes
a metric: curves, windows, crossings and calibration arrive precomputed from
:mod:`realbogus.evaluation.metrics`; the figures only histogram and scatter the columns they show.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from ..evaluation.efficiency import calibration_intervals, roc_points
from ..evaluation.metrics import Calibration, PCCurve

__all__ = [
    "FIGURES",
    "SAVE_DPI",
    "FigureData",
    "FigureRecord",
    "FigureSkipped",
    "write_figures",
]

_DPI = 100  # layout resolution (points to pixels) while drawing
#: Resolution of the written PNGs: 2x the layout, so figures stay sharp when zoomed (>= 840 px wide).
SAVE_DPI = 200
_FLUX_UNIT = "nJy"
_MAX_POINTS = 20_000  # scatter plots show a seeded random subset of at most this many rows


class FigureSkipped(Exception):
    """A figure cannot be drawn from the data given; the message says why."""


@dataclass(frozen=True)
class FigureData:
    """Everything the figures draw, precomputed.

    Attributes
    ----------
    table : DataFrame of N rows
        The detection table (docs/design.md columns; any may be absent).
    scores : mapping model -> ndarray of shape (N,)
        Reliability per model, aligned with `table`.
    cutoffs : mapping model -> float
        Each model's reliability cutoff.
    curves : mapping model -> mapping population -> PCCurve
        Purity/completeness curves of the populations (e.g. "overall", "requirement").
    summaries : mapping model -> mapping population -> dict
        `metrics.summarize` output per population (crossing and window are drawn).
    origin_curves : mapping model -> mapping origin -> PCCurve
    calibrations : mapping model -> Calibration
    flagged : ndarray of shape (N,), bool, optional
        Stamps with NaN rows/columns (DMTN-337's third peak), or None when unknown.
    flag_label : str
        Legend text for `flagged`.
    population_labels : mapping population -> str
        Human-readable selection of each population.
    efficiency : mapping model -> mapping quantity -> dict
        Completeness per bin of ``"snr"`` and ``"magnitude"`` (the JSON-ready dicts of
        :func:`realbogus.evaluation.summary.efficiency_entry`: ``label, centre, n, fraction, low,
        high, fifty``).
    """

    table: pd.DataFrame
    scores: Mapping[str, np.ndarray]
    cutoffs: Mapping[str, float]
    curves: Mapping[str, Mapping[str, PCCurve]] = field(default_factory=dict)
    summaries: Mapping[str, Mapping[str, dict]] = field(default_factory=dict)
    origin_curves: Mapping[str, Mapping[str, PCCurve]] = field(default_factory=dict)
    calibrations: Mapping[str, Calibration] = field(default_factory=dict)
    flagged: np.ndarray | None = None
    flag_label: str = "NaN rows/columns"
    population_labels: Mapping[str, str] = field(default_factory=dict)
    efficiency: Mapping[str, Mapping[str, dict]] = field(default_factory=dict)


@dataclass(frozen=True)
class FigureRecord:
    """One figure of the report: written (``file`` set) or skipped (``note`` says why)."""

    name: str
    title: str
    caption: str
    file: str | None
    note: str | None = None


def _need(table: pd.DataFrame, *columns: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        msg = f"needs column(s) {', '.join(missing)}, absent from the detection table"
        raise FigureSkipped(msg)


def _panels(n: int, *, rows: int = 1, width: float = 4.6, height: float = 3.6):
    fig = Figure(figsize=(width * n, height * rows), dpi=_DPI, layout="constrained")
    axes = fig.subplots(rows, n, squeeze=False)
    return fig, axes


def _title(ax, text: str, *, width: float | None = None) -> None:
    """Set a title wrapped to the panel's width, so that long model names are never cut."""
    if width is None:
        width = ax.get_position().width * ax.figure.get_figwidth()
    chars = max(20, int(width * 72 / (10 * 0.58)))  # 10 pt text, ~0.58 em per character
    ax.set_title("\n".join(textwrap.wrap(text, chars)), fontsize=10)


def _symlog_ticks(linthresh: float, lim: float, *, max_ticks: int = 7) -> np.ndarray:
    """0 and +-10^k decades from the linear threshold to the limit, thinned to <= max_ticks."""
    lo = int(np.floor(np.log10(max(linthresh, 1e-30))))
    hi = int(np.ceil(np.log10(max(lim, linthresh * 10))))
    decades = np.arange(lo, hi + 1)
    step = 1
    while 2 * len(decades[::step]) + 1 > max_ticks:
        step += 1
    pos = 10.0 ** decades[::-1][::step][::-1]  # keep the largest decade
    pos = pos[pos >= linthresh * 0.999]
    return np.r_[-pos[::-1], 0.0, pos]


def _decade_label(v: float, _pos: object = None) -> str:
    if v == 0:
        return "0"
    k = int(round(np.log10(abs(v))))
    sign = "\N{MINUS SIGN}" if v < 0 else ""
    return f"{sign}10$^{{{k}}}$" if abs(k) > 2 else f"{v:g}".replace("-", "\N{MINUS SIGN}")


def _symlog(ax, which: str, linthresh: float, lim: float) -> None:
    """A symmetric-log axis with decade ticks that never crowd (see :func:`_symlog_ticks`)."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("symlog", linthresh=linthresh)
    axis.set_major_locator(FixedLocator(_symlog_ticks(linthresh, lim)))
    axis.set_major_formatter(FuncFormatter(_decade_label))
    axis.set_minor_locator(NullLocator())


def _subset(n: int) -> np.ndarray:
    if n <= _MAX_POINTS:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, _MAX_POINTS, replace=False))


def _column(table: pd.DataFrame, name: str) -> np.ndarray:
    return (
        pd.to_numeric(table[name], errors="coerce")
        .astype("Float64")
        .to_numpy(dtype=np.float64, na_value=np.nan)
    )


def _linthresh(x: np.ndarray) -> float:
    a = np.abs(x[np.isfinite(x) & (x != 0)])
    return float(np.percentile(a, 10)) if len(a) else 1.0


# ---------------------------------------------------------------------------- figures -------


def fig_score_distribution(data: FigureData) -> Figure:
    """DMTN-337 Fig. 6: reliability histogram per model; NaN-row/column stamps stacked."""
    if len(data.table) == 0:
        raise FigureSkipped("no detections")
    models = list(data.scores)
    fig, axes = _panels(len(models))
    bins = np.linspace(0, 1, 51)
    for ax, m in zip(axes[0], models, strict=True):
        r = data.scores[m]
        if data.flagged is not None:
            ax.hist(
                [r[~data.flagged], r[data.flagged]],
                bins=bins,
                stacked=True,
                label=["other stamps", data.flag_label],
                color=["tab:blue", "tab:red"],
            )
        else:
            ax.hist(r, bins=bins, color="tab:blue", label="all stamps")
        ax.axvline(data.cutoffs[m], color="k", ls="--", lw=1, label="cutoff")
        ax.set_yscale("log")
        ax.set(xlabel="reliability", ylabel="detections per bin of 0.02")
        _title(ax, m)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=3, fontsize=8, frameon=False)
    return fig


def _fakes(data: FigureData) -> np.ndarray:
    t = data.table
    mask = np.zeros(len(t), bool)
    for col in ("origin", "labelSource"):
        if col in t.columns:
            mask |= (t[col].astype("string") == "injection").fillna(False).to_numpy(bool)
    return mask


def fig_reliability_vs_snr_fakes(data: FigureData) -> Figure:
    """DMTN-337 Fig. 7: reliability vs SNR of injected fakes, coloured by magnitude."""
    _need(data.table, "snr", "truthMag")
    if "origin" not in data.table.columns and "labelSource" not in data.table.columns:
        raise FigureSkipped("needs column origin or labelSource to find injected fakes")
    fakes = np.flatnonzero(_fakes(data))
    if len(fakes) == 0:
        raise FigureSkipped("no injected fakes (origin or labelSource == 'injection')")
    fakes = fakes[_subset(len(fakes))]
    snr = _column(data.table, "snr")[fakes]
    mag = _column(data.table, "truthMag")[fakes]
    if not np.isfinite(mag).any():
        raise FigureSkipped("truthMag is missing for every fake (uncalibrated real frames)")
    models = list(data.scores)
    fig, axes = _panels(len(models))
    norm = Normalize(np.nanmin(mag), np.nanmax(mag))
    for ax, m in zip(axes[0], models, strict=True):
        sc = ax.scatter(snr, data.scores[m][fakes], c=mag, s=4, cmap="viridis_r", norm=norm)
        ax.axhline(data.cutoffs[m], color="k", ls="--", lw=1)
        if np.nanmin(snr) > 0:
            ax.set_xscale("log")
        ax.set(xlabel="SNR", ylabel="reliability", ylim=(-0.02, 1.02))
        _title(ax, m)
    fig.colorbar(sc, ax=axes[0].tolist(), label="injected magnitude (mag)")
    return fig


def _flux_panels(data: FigureData, *, with_cutoff: bool) -> Figure:
    _need(data.table, "apFlux", "scienceFlux", "templateFlux")
    ap = _column(data.table, "apFlux")
    diff = _column(data.table, "scienceFlux") - _column(data.table, "templateFlux")
    keep = np.flatnonzero(np.isfinite(ap) & np.isfinite(diff))
    if len(keep) == 0:
        raise FigureSkipped("apFlux / scienceFlux - templateFlux are all missing")
    keep = keep[_subset(len(keep))]
    models = list(data.scores)
    fig, axes = _panels(len(models))
    lt = _linthresh(np.r_[ap[keep], diff[keep]])
    lim = np.nanmax(np.abs(np.r_[ap[keep], diff[keep]])) * 1.1
    for ax, m in zip(axes[0], models, strict=True):
        rows = keep
        if with_cutoff:
            rows = keep[data.scores[m][keep] >= data.cutoffs[m]]
        sc = ax.scatter(
            diff[rows],
            ap[rows],
            c=data.scores[m][rows],
            s=3,
            cmap="coolwarm_r",
            norm=Normalize(0, 1),
        )
        ax.plot([-lim, lim], [-lim, lim], color="k", lw=0.7, ls=":")
        _symlog(ax, "x", lt, lim)
        _symlog(ax, "y", lt, lim)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim))
        title = f"{m}: reliability >= {data.cutoffs[m]:.3f}" if with_cutoff else m
        _title(ax, title)
        ax.set(
            xlabel=f"scienceFlux \N{MINUS SIGN} templateFlux ({_FLUX_UNIT})",
            ylabel=f"apFlux ({_FLUX_UNIT})",
        )
    fig.colorbar(sc, ax=axes[0].tolist(), label="reliability")
    return fig


def fig_flux_vs_flux(data: FigureData) -> Figure:
    """DMTN-337 Fig. 8: apFlux vs scienceFlux - templateFlux coloured by reliability."""
    return _flux_panels(data, with_cutoff=False)


def fig_flux_vs_flux_cutoff(data: FigureData) -> Figure:
    """DMTN-337 Fig. 9: as Fig. 8 with each model's cutoff applied."""
    return _flux_panels(data, with_cutoff=True)


def fig_reliability_vs_psf_snr(data: FigureData) -> Figure:
    """DMTN-337 Fig. 10: reliability vs psfFlux / psfFluxErr."""
    _need(data.table, "psfFlux", "psfFluxErr")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = _column(data.table, "psfFlux") / _column(data.table, "psfFluxErr")
    keep = np.flatnonzero(np.isfinite(ratio))
    if len(keep) == 0:
        raise FigureSkipped("psfFlux / psfFluxErr is not finite for any row")
    keep = keep[_subset(len(keep))]
    models = list(data.scores)
    fig, axes = _panels(len(models))
    for ax, m in zip(axes[0], models, strict=True):
        ax.scatter(ratio[keep], data.scores[m][keep], s=3, alpha=0.5)
        ax.axhline(data.cutoffs[m], color="k", ls="--", lw=1)
        lim = float(np.nanmax(np.abs(ratio[keep]))) * 1.1
        _symlog(ax, "x", 5.0, max(lim, 50.0))
        ax.set(xlim=(-max(lim, 50.0), max(lim, 50.0)))
        ax.set(xlabel="psfFlux / psfFluxErr (signed significance)", ylabel="reliability")
        ax.set(ylim=(-0.02, 1.02))
        _title(ax, m)
    return fig


def _pc_axes(ax, curve: PCCurve, summary: dict | None, title: str) -> None:
    ax.plot(
        curve.thresholds, curve.purity, label="purity", color="tab:blue", drawstyle="steps-post"
    )
    ax.plot(
        curve.thresholds,
        curve.completeness,
        label="completeness",
        color="tab:orange",
        drawstyle="steps-post",
    )
    ax.axhline(0.95, color="tab:blue", lw=0.6, ls=":")
    ax.axhline(0.90, color="tab:orange", lw=0.6, ls=":")
    if summary is not None:
        win = summary.get("window")
        if win is not None:
            ax.axvspan(
                win["low"],
                win["high"],
                color="tab:green",
                alpha=0.2,
                label=f"window [{win['low']:.3f}, {win['high']:.3f}]",
            )
        cross = summary.get("crossing")
        if cross is not None:
            ax.plot(
                [cross["threshold"]],
                [cross["value"]],
                "ko",
                ms=4,
                label=f"P = C = {cross['value']:.3f} at {cross['threshold']:.3f}",
            )
    ax.set(xlabel="reliability threshold", ylabel="fraction", xlim=(0, 1), ylim=(0, 1.02))
    _title(ax, title)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, frameon=False)


def fig_purity_completeness(data: FigureData) -> Figure:
    """DMTN-337 Figs. 11-14: purity and completeness vs threshold, per population and model."""
    models = [m for m in data.scores if data.curves.get(m)]
    if not models:
        raise FigureSkipped("no labelled detections: no purity/completeness curve")
    pops = list(data.curves[models[0]])
    fig, axes = _panels(len(models), rows=len(pops), height=4.4)
    for j, m in enumerate(models):
        for i, pop in enumerate(pops):
            curve = data.curves[m].get(pop)
            ax = axes[i][j]
            label = data.population_labels.get(pop, pop)
            if curve is None or len(curve.thresholds) == 0 or curve.n_real == 0:
                ax.text(
                    0.5, 0.5, f"{label}: no Real detections", ha="center", transform=ax.transAxes
                )
                ax.set_axis_off()
                continue
            _pc_axes(ax, curve, data.summaries.get(m, {}).get(pop), f"{m}, {label}")
    return fig


def fig_purity_completeness_by_origin(data: FigureData) -> Figure:
    """DMTN-337 Fig. 16: purity (solid) and completeness (dashed) per origin."""
    _need(data.table, "origin")
    models = [m for m in data.scores if data.origin_curves.get(m)]
    if not models:
        raise FigureSkipped("no labelled detections with an origin")
    fig, axes = _panels(len(models), width=5.0, height=4.4)
    for ax, m in zip(axes[0], models, strict=True):
        for k, (origin, curve) in enumerate(data.origin_curves[m].items()):
            color = f"C{k % 10}"
            ax.plot(
                curve.thresholds,
                curve.purity,
                color=color,
                drawstyle="steps-post",
                label=f"{origin} (n={int(curve.n_real + curve.n_bogus)})",
            )
            if curve.n_real > 0:
                ax.plot(
                    curve.thresholds,
                    curve.completeness,
                    color=color,
                    ls="--",
                    drawstyle="steps-post",
                )
        ax.set(xlabel="reliability threshold", ylabel="fraction", xlim=(0, 1), ylim=(0, 1.02))
        _title(ax, f"{m}: purity (solid), completeness (dashed)")
        ax.legend(
            fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, frameon=False
        )
    return fig


def fig_score_by_origin(data: FigureData) -> Figure:
    """DMTN-337 Fig. 15: origin share per score range (top) and score density per origin."""
    _need(data.table, "origin")
    if len(data.table) == 0:
        raise FigureSkipped("no detections")
    origin = data.table["origin"].astype("string").fillna("missing").to_numpy(str)
    names = sorted(set(origin.tolist()))
    models = list(data.scores)
    fig, axes = _panels(len(models), rows=2)
    bins = np.linspace(0, 1, 11)
    centres = 0.5 * (bins[1:] + bins[:-1])
    for j, m in enumerate(models):
        r = data.scores[m]
        hists = np.array([np.histogram(r[origin == o], bins=bins)[0] for o in names], float)
        totals = hists.sum(axis=0)
        frac = np.divide(hists, totals, out=np.zeros_like(hists), where=totals > 0)
        bottom = np.zeros(len(centres))
        for k, o in enumerate(names):
            axes[0][j].bar(
                centres, frac[k], width=0.095, bottom=bottom, color=f"C{k % 10}", label=o
            )
            bottom += frac[k]
            axes[1][j].hist(
                r[origin == o],
                bins=np.linspace(0, 1, 41),
                density=True,
                histtype="step",
                color=f"C{k % 10}",
                label=o,
            )
        axes[0][j].set(xlabel="reliability", ylabel="fraction of detections", ylim=(0, 1))
        _title(axes[0][j], f"{m}: share of detections by origin")
        axes[1][j].set(xlabel="reliability", ylabel="density (per unit reliability)")
        _title(axes[1][j], f"{m}: reliability per origin")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="outside upper center",
        ncols=min(len(names), 6),
        fontsize=8,
        frameon=False,
        title="origin",
    )
    return fig


def fig_calibration(data: FigureData) -> Figure:
    """Reliability diagram (fraction Real vs mean reliability per bin) and ECE per model."""
    if not data.calibrations:
        raise FigureSkipped("no labelled detections: no calibration")
    fig = Figure(figsize=(6.5, 7.0), dpi=_DPI, layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1.3], sharex=True)
    top.plot([0, 1], [0, 1], color="k", ls=":", lw=0.8, label="perfect calibration")
    n_models = len(data.calibrations)
    for k, (m, cal) in enumerate(data.calibrations.items()):
        ok = cal.count > 0
        low, high = calibration_intervals(cal)
        frac = cal.fraction_real[ok]
        top.errorbar(
            cal.mean_score[ok],
            frac,
            yerr=[frac - low[ok], high[ok] - frac],
            fmt="o-",
            ms=4,
            capsize=2,
            color=f"C{k}",
            label=f"{m} (ECE {cal.ece:.3f})",
        )
        centres = 0.5 * (cal.edges[1:] + cal.edges[:-1])
        width = (cal.edges[1] - cal.edges[0]) / (n_models + 1)
        x = centres + (k - (n_models - 1) / 2) * width
        bars = bottom.bar(x, cal.count, width=width, color=f"C{k}")
        if n_models <= 2:
            bottom.bar_label(bars, labels=[f"{int(c)}" for c in cal.count], fontsize=6)
    top.set(ylabel="fraction Real (95 % binomial interval)", xlim=(0, 1), ylim=(-0.02, 1.02))
    _title(top, "calibration (labelled, SNR > 5): fraction Real per reliability bin")
    top.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.08), ncols=2, frameon=False)
    bottom.set(xlabel="reliability", ylabel="detections per bin", yscale="log")
    bottom.margins(y=0.25)
    return fig


def fig_roc(data: FigureData) -> Figure:
    """ROC curve per population (rows: models overlaid), AUC in the legend."""
    models = [m for m in data.scores if data.curves.get(m)]
    if not models:
        raise FigureSkipped("no labelled detections: no ROC curve")
    pops = [p for p in data.curves[models[0]] if data.curves[models[0]].get(p) is not None]
    fig, axes = _panels(len(pops), width=4.8, height=5.0)
    drawn = False
    for ax, pop in zip(axes[0], pops, strict=True):
        for k, m in enumerate(models):
            curve = data.curves[m].get(pop)
            if curve is None or curve.n_real == 0 or curve.n_bogus == 0:
                continue
            fpr, tpr = roc_points(curve)
            auc = (data.summaries.get(m, {}).get(pop) or {}).get("auc")
            label = m if auc is None else f"{m} (AUC {auc:.3f})"
            ax.plot(fpr, tpr, color=f"C{k}", label=label, drawstyle="steps-post")
            drawn = True
            cut = data.cutoffs[m]
            passes = curve.thresholds >= cut
            if passes.any():
                i = int(np.flatnonzero(passes)[0])
                ax.plot(
                    [curve.fp[i] / curve.n_bogus],
                    [curve.tp[i] / curve.n_real],
                    "o",
                    color=f"C{k}",
                    mec="k",
                    label=f"{m} at cutoff {cut:g}",
                )
        ax.plot([0, 1], [0, 1], color="k", ls=":", lw=0.8)
        ax.set(
            xlabel="false-positive rate (Bogus passing)",
            ylabel="true-positive rate (completeness)",
            xlim=(0, 1),
            ylim=(0, 1.01),
            aspect="equal",
        )
        _title(ax, f"ROC, {data.population_labels.get(pop, pop)}")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    if not drawn:
        raise FigureSkipped("no population has both Real and Bogus detections")
    return fig


def _efficiency(data: FigureData, quantity: str, *, log_x: bool) -> Figure:
    models = [m for m in data.scores if (data.efficiency.get(m) or {}).get(quantity)]
    if not models:
        raise FigureSkipped(f"no Real detections with a finite {quantity}")
    fig = Figure(figsize=(7.0, 4.8), dpi=_DPI, layout="constrained")
    ax = fig.subplots()
    label = ""
    for k, m in enumerate(models):
        e = data.efficiency[m][quantity]
        label = e["label"]
        x = np.asarray(e["centre"], dtype=float)
        f = np.asarray(e["fraction"], dtype=float)
        ok = np.asarray(e["n"]) > 0
        lo, hi = np.asarray(e["low"], dtype=float), np.asarray(e["high"], dtype=float)
        ax.errorbar(
            x[ok],
            f[ok],
            yerr=[f[ok] - lo[ok], hi[ok] - f[ok]],
            fmt="o-",
            ms=4,
            capsize=2,
            color=f"C{k}",
            label=f"{m}, reliability >= {data.cutoffs[m]:g}",
        )
        if e.get("fifty") is not None:
            ax.axvline(e["fifty"], color=f"C{k}", ls="--", lw=1)
            ax.annotate(
                f"50 %: {e['fifty']:.2f}",
                (e["fifty"], 0.5),
                xytext=(4, 6 + 14 * k),
                textcoords="offset points",
                color=f"C{k}",
                fontsize=8,
            )
    ax.axhline(0.5, color="0.5", lw=0.7, ls=":")
    ax.axhline(0.9, color="tab:orange", lw=0.7, ls=":", label="completeness 0.90")
    if log_x:
        ax.set_xscale("log")
    ax.set(xlabel=label, ylabel="completeness (95 % binomial interval)", ylim=(-0.02, 1.05))
    _title(ax, f"Completeness of Real detections vs {quantity}")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2, frameon=False)
    return fig


def fig_efficiency_snr(data: FigureData) -> Figure:
    """Completeness vs SNR with binomial intervals and the 50 % SNR (cf. DMTN-337 Fig. 13)."""
    return _efficiency(data, "snr", log_x=True)


def fig_efficiency_magnitude(data: FigureData) -> Figure:
    """Completeness vs magnitude with binomial intervals and the 50 % magnitude (Fig. 7)."""
    return _efficiency(data, "magnitude", log_x=False)


#: (name, title, caption, function) of every figure, in report order.
FIGURES: tuple[tuple[str, str, str, Callable[[FigureData], Figure]], ...] = (
    (
        "score_distribution",
        "Reliability distribution (DMTN-337 Fig. 6)",
        "Histogram of reliability per model (log counts). Stamps with NaN rows or columns, the "
        "cause of the note's third peak, are stacked in red (column hasNanRowCol; without it, "
        "stamps with valid_fraction < 1, as the legend says). Dashed: the model's cutoff.",
        fig_score_distribution,
    ),
    (
        "reliability_vs_snr_fakes",
        "Reliability vs SNR for injected fakes (Fig. 7)",
        "Injected fakes only, coloured by injected magnitude; dashed: cutoff.",
        fig_reliability_vs_snr_fakes,
    ),
    (
        "flux_vs_flux",
        "apFlux vs scienceFlux - templateFlux (Fig. 8)",
        "Coloured by reliability; dotted: the 1:1 line expected of a real source.",
        fig_flux_vs_flux,
    ),
    (
        "flux_vs_flux_cutoff",
        "apFlux vs scienceFlux - templateFlux above the cutoff (Fig. 9)",
        "As Fig. 8, only detections with reliability >= the model's cutoff.",
        fig_flux_vs_flux_cutoff,
    ),
    (
        "reliability_vs_psf_snr",
        "Reliability vs psfFlux / psfFluxErr (Fig. 10)",
        "Signed PSF-flux significance (symmetric log axis); dashed: cutoff.",
        fig_reliability_vs_psf_snr,
    ),
    (
        "purity_completeness",
        "Purity and completeness vs threshold (Figs. 11-14)",
        "Green band: thresholds meeting purity >= 0.95 and completeness >= 0.90; black dot: the "
        "P = C crossing. Rows: the populations.",
        fig_purity_completeness,
    ),
    (
        "roc",
        "ROC curve",
        "True-positive rate (completeness) against false-positive rate (fraction of Bogus "
        "passing) over all thresholds, per population; dots: each model's cutoff; dotted: chance.",
        fig_roc,
    ),
    (
        "efficiency_snr",
        "Completeness vs SNR (cf. Fig. 13)",
        "Fraction of labelled Real detections passing each model's cutoff per SNR bin, with 95 % "
        "Clopper-Pearson intervals; dashed: the SNR of 50 % completeness (linear interpolation "
        "between bins).",
        fig_efficiency_snr,
    ),
    (
        "efficiency_magnitude",
        "Completeness vs magnitude (cf. Fig. 7)",
        "As above against magnitude: the injected magnitude truthMag where the table has it, "
        "otherwise the PSF magnitude 31.4 - 2.5 log10(psfFlux / nJy) (AB). Dashed: the 50 % "
        "completeness magnitude.",
        fig_efficiency_magnitude,
    ),
    (
        "purity_completeness_by_origin",
        "Purity and completeness per origin (Fig. 16)",
        "All labelled detections, one colour per origin.",
        fig_purity_completeness_by_origin,
    ),
    (
        "score_by_origin",
        "Reliability per origin (Fig. 15)",
        "Top: share of each origin in each score range; bottom: normalised score distribution "
        "per origin (all detections, labelled or not).",
        fig_score_by_origin,
    ),
    (
        "calibration",
        "Calibration",
        "Fraction of Real detections against mean reliability in ten equal-width bins (labelled "
        "detections with SNR > 5), with 95 % Clopper-Pearson intervals; lower panel: detections "
        "per bin (log), with their counts.",
        fig_calibration,
    ),
)


def write_figures(
    data: FigureData,
    directory: str | os.PathLike,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> list[FigureRecord]:
    """Draw every figure in :data:`FIGURES` into ``directory`` as ``<name>.png``.

    Parameters
    ----------
    data : FigureData
    directory : path-like
        An existing directory (the caller's temporary output directory).
    progress : callable (done, total), optional

    Returns
    -------
    list of FigureRecord
        One per figure, in order; skipped figures have ``file=None`` and a ``note``.
    """
    directory = Path(directory)
    records = []
    for i, (name, title, caption, func) in enumerate(FIGURES):
        try:
            fig = func(data)
        except FigureSkipped as exc:
            records.append(FigureRecord(name, title, caption, None, str(exc)))
        else:
            fname = f"{name}.png"
            fig.savefig(directory / fname, dpi=SAVE_DPI, metadata={"Software": None})
            records.append(FigureRecord(name, title, caption, fname))
        if progress is not None:
            progress(i + 1, len(FIGURES))
    return records
