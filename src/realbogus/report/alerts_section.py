"""The report's real-alerts section (``realbogus evaluate --alerts FOLDER``): figures, galleries, HTML.

Numbers come from :func:`realbogus.evaluation.alerts.compare_with_survey`; this module draws them
(score vs the survey's score, ROC against the survey's label at its own cut, our score per stamp
condition), writes the disagreement galleries with the one stamp renderer, and formats the
section. Files go under the report directory: ``figures/alerts_*.png`` and
``galleries/alerts/<model>/*.png``.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..evaluation.alerts import AlertRun, compare_with_survey, stamp_conditions
from ..evaluation.efficiency import roc_points
from ..evaluation.metrics import purity_completeness
from ..render import render_triplet_png
from .figures import SAVE_DPI
from .gallery import MIN_WIDTH_PX
from .sections import figure_img

__all__ = ["DISAGREEMENTS", "alerts_html", "write_alerts_section"]

#: Disagreement galleries: (key, title).
DISAGREEMENTS = (
    ("ours_high_theirs_low", "ours >= our cutoff, the survey's < its cut (largest gap first)"),
    ("ours_low_theirs_high", "ours < our cutoff, the survey's >= its cut (largest gap first)"),
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _f(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "&ndash;"
    return f"{float(value):.{digits}f}"


def _col(table: pd.DataFrame, name: str) -> np.ndarray:
    return (
        pd.to_numeric(table[name], errors="coerce")
        .astype("Float64")
        .to_numpy(dtype=np.float64, na_value=np.nan)
    )


def _fig_scores(run: AlertRun, comparisons: Mapping[str, dict]) -> Figure:
    models = list(run.tables)
    fig = Figure(figsize=(4.8 * len(models), 4.6), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, m in zip(axes, models, strict=True):
        t, c = run.tables[m], comparisons[m]
        col = c["survey_score"]
        ours = _col(t, "reliability")
        for name, mask in stamp_conditions(t).items():
            if col is None or not mask.any():
                continue
            ax.scatter(
                _col(t, col)[mask], ours[mask], s=8, alpha=0.7, label=f"{name} ({mask.sum()})"
            )
        ax.axhline(run.cutoffs[m], color="k", ls="--", lw=1)
        ax.axvline(c["survey_cut"], color="0.4", ls=":", lw=1)
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        ax.set(xlabel=f"survey's score ({col})", ylabel=f"{m} reliability")
        ax.set_title(f"{m} vs {col}: Spearman {_f(c['spearman'], 2)}", fontsize=10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=3)
    return fig


def _fig_roc(run: AlertRun, comparisons: Mapping[str, dict]) -> Figure | None:
    fig = Figure(figsize=(5.2, 5.4), dpi=100, layout="constrained")
    ax = fig.subplots()
    drawn = False
    for k, (m, t) in enumerate(run.tables.items()):
        c = comparisons[m]
        if c["survey_score"] is None or not math.isfinite(c["auc"]):
            continue
        theirs = _col(t, c["survey_score"])
        has = np.isfinite(theirs)
        curve = purity_completeness(
            (theirs[has] >= c["survey_cut"]).astype(int), _col(t, "reliability")[has]
        )
        fpr, tpr = roc_points(curve)
        ax.plot(fpr, tpr, color=f"C{k}", drawstyle="steps-post", label=f"{m} (AUC {c['auc']:.3f})")
        drawn = True
    if not drawn:
        return None
    ax.plot([0, 1], [0, 1], color="k", ls=":", lw=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
    ax.set(xlabel="false-positive rate (survey Bogus passing)", ylabel="true-positive rate")
    ax.set_title("ROC against the survey's label (its score >= its cut)", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    return fig


def _fig_conditions(run: AlertRun) -> Figure:
    models = list(run.tables)
    fig = Figure(figsize=(4.8 * len(models), 4.2), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    bins = np.linspace(0, 1, 26)
    for ax, m in zip(axes, models, strict=True):
        t = run.tables[m]
        ours = _col(t, "reliability")
        for k, (name, mask) in enumerate(stamp_conditions(t).items()):
            if mask.any():
                ax.hist(
                    ours[mask],
                    bins=bins,
                    histtype="step",
                    lw=1.5,
                    color=f"C{k}",
                    label=f"{name} ({mask.sum()})",
                )
        ax.axvline(run.cutoffs[m], color="k", ls="--", lw=1)
        ax.set(xlabel=f"{m} reliability", ylabel="alerts per bin of 0.04")
        ax.set_title(f"{m}: our score per stamp condition", fontsize=10)
        ax.legend(
            fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=3, frameon=False
        )
    return fig


def write_alerts_section(run: AlertRun, root: str | Path) -> dict:
    """Compute, draw and write the alerts section's files under the report directory `root`.

    Parameters
    ----------
    run : AlertRun
    root : path-like
        The (temporary) report directory; ``figures/`` must exist.

    Returns
    -------
    dict
        JSON-ready ``metrics.json`` ``alerts`` entry: ``source``, ``n_failed``, ``figures`` (list
        of {name, title, file}), ``models`` ({model: :func:`compare_with_survey` output plus
        ``galleries``: {direction: [triplet, ...]}}).
    """
    root = Path(root)
    comparisons = {m: compare_with_survey(t, run.cutoffs[m]) for m, t in run.tables.items()}
    figures = []
    for name, title, fig in (
        (
            "alerts_scores",
            "Our score against the survey's, per stamp condition",
            _fig_scores(run, comparisons),
        ),
        ("alerts_roc", "ROC against the survey's label", _fig_roc(run, comparisons)),
        ("alerts_conditions", "Our score per stamp condition", _fig_conditions(run)),
    ):
        if fig is None:
            continue
        fig.savefig(root / "figures" / f"{name}.png", dpi=SAVE_DPI, metadata={"Software": None})
        figures.append({"name": name, "title": title, "file": f"figures/{name}.png"})
    size = run.stamps.shape[-1]
    scale = max(1, math.ceil(MIN_WIDTH_PX / (3 * size + 4)))
    models = {}
    for k, (m, t) in enumerate(run.tables.items()):
        c = comparisons[m]
        col = c["survey_score"]
        folder = root / "galleries" / "alerts" / f"model-{k + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        galleries = {}
        for key, rows in c["disagreements"].items():
            entries = []
            for row in rows:
                name = f"{key}-{row}.png"
                (folder / name).write_bytes(render_triplet_png(run.stamps[row], scale=scale))
                entries.append(
                    {
                        "row": int(row),
                        "diaSourceId": int(t["diaSourceId"].iat[row]),
                        "survey_score": float(_col(t, col)[row]) if col else None,
                        "reliability": float(_col(t, "reliability")[row]),
                        "file": f"galleries/alerts/model-{k + 1}/{name}",
                    }
                )
            galleries[key] = entries
        models[m] = {**c, "galleries": galleries}
    return {"source": run.source, "n_failed": run.n_failed, "figures": figures, "models": models}


def _img(root: Path, file: str, alt: str) -> str:
    data = base64.b64encode((root / file).read_bytes()).decode("ascii")
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{data}'>"


def alerts_html(alerts: dict, root: str | Path) -> str:
    """The real-alerts section as an HTML fragment (figures and galleries embedded).

    Parameters
    ----------
    alerts : dict
        The ``alerts`` entry of metrics.json (:func:`write_alerts_section`).
    root : path-like
        The report directory the files are relative to.
    """
    root = Path(root)
    rows = []
    for m, c in alerts["models"].items():
        ast_o, ast_t = c["asteroids"]["ours"], c["asteroids"]["theirs"]
        a = c["agreement"]
        rows.append(
            f"<tr><td class=l>{_e(m)}</td><td class=l>{_e(c['survey'])} {_e(c['survey_score'])} "
            f"&ge; {_f(c['survey_cut'], 2)}</td><td>{c['n']} / {c['n_with_survey_score']}</td>"
            f"<td>{_f(c['auc'])}</td><td>{_f(c['spearman'])}</td>"
            f"<td>{a['both_pass']} / {a['ours_only']} / {a['theirs_only']} / {a['neither']}</td>"
            f"<td>{ast_o['passing']} of {ast_o['n']}: {_f(ast_o['recall'])} <small>["
            f"{_f(ast_o['low'])}, {_f(ast_o['high'])}]</small></td>"
            f"<td>{ast_t['passing']} of {ast_t['n']}: {_f(ast_t['recall'])} <small>["
            f"{_f(ast_t['low'])}, {_f(ast_t['high'])}]</small></td></tr>"
        )
    cond_rows = []
    for m, c in alerts["models"].items():
        for name, s in c["conditions"].items():
            cond_rows.append(
                f"<tr><td class=l>{_e(m)}</td><td class=l>{_e(name)}</td><td>{s['n']}</td>"
                f"<td>{_f(s['ours_median'])} <small>[{_f(s['ours_q10'])}, {_f(s['ours_q90'])}]"
                f"</small></td><td>{_f(s['ours_passing'])}</td><td>{_f(s['theirs_passing'])}</td></tr>"
            )
    figs = "".join(
        f"<figure id='fig-{_e(f['name'])}'><h3>{_e(f['title'])}</h3>"
        f"{figure_img((root / f['file']).read_bytes(), f['title'])}</figure>"
        for f in alerts["figures"]
    )
    gal = []
    titles = dict(DISAGREEMENTS)
    for m, c in alerts["models"].items():
        for key, entries in c["galleries"].items():
            trip = (
                "".join(
                    f"<figure class=triplet>{_img(root, t['file'], str(t['diaSourceId']))}<figcaption>"
                    f"{t['diaSourceId']}: ours {t['reliability']:.3f}, {_e(c['survey_score'])} "
                    f"{_f(t['survey_score'])}</figcaption></figure>"
                    for t in entries
                )
                or "<p class=note>none</p>"
            )
            gal.append(
                f"<div class=gallery data-model='{_e(m)}' data-gallery='alerts-{_e(key)}' "
                f"data-n='{len(entries)}'><h4>{_e(m)}: {_e(titles[key])} ({len(entries)})</h4>"
                f"<div class=grid>{trip}</div></div>"
            )
    return (
        f"<section id=alerts><h2>Real alerts: {_e(alerts['source'])}</h2>"
        f"<p class=meta>{alerts['n_failed']} packets could not be decoded or scored. The survey's "
        "label is its own score at its own cut; known asteroids are Rubin alerts with an "
        "ssObjectId, or ZTF alerts within 2 arcsec of one (ssdistnr). Intervals: 95 % "
        "Clopper-Pearson.</p><table><tr><th class=l>model</th><th class=l>survey label</th>"
        "<th>alerts / with survey score</th><th>ROC AUC vs survey label</th><th>Spearman</th>"
        "<th>both pass / ours only / theirs only / neither</th><th>asteroid recall, ours at "
        "cutoff</th><th>asteroid recall, survey at its cut</th></tr>"
        f"{''.join(rows)}</table><h3>Score per stamp condition</h3><table><tr>"
        "<th class=l>model</th><th class=l>condition</th><th>alerts</th><th>our median [10th, "
        "90th percentile]</th><th>ours passing</th><th>survey passing</th></tr>"
        f"{''.join(cond_rows)}</table>{figs}<h3>Disagreements</h3>{''.join(gal)}</section>"
    )
