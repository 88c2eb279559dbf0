"""The self-contained HTML report: tables from metrics.json, figures as base64 data URIs.

The page has no external reference (no stylesheet, script, font or image URL): it opens offline
and can be mailed as one file. Nothing here computes a metric; it formats ``metrics.json``.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from pathlib import Path

from .figures import FigureRecord
from .sections import figure_img, galleries_html, origin_rates_html, summary_html

__all__ = ["render_alerts_html", "render_html"]

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em auto;max-width:1400px;
color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.ok{background:#e6f4e6}.no{background:#fbeaea}
figure{margin:1em 0}figcaption{font-size:.9em;color:#444;max-width:70em}
img{max-width:100%;height:auto;border:1px solid #eee}
.note{color:#855;font-size:.9em}.meta{color:#555;font-size:.9em}
ul.summary{font-size:1.05em;line-height:1.45;padding-left:1.2em}ul.summary li{margin:.3em 0;
padding:.3em .5em}
.grid{display:flex;flex-wrap:wrap;gap:.6em}figure.triplet{margin:0;width:330px}
figure.triplet img{width:330px;image-rendering:pixelated}figure.triplet figcaption{font-size:.8em}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "&ndash;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.{digits}f}"


def _ci(intervals: dict | None, key: str, digits: int = 3) -> str:
    if not intervals or key not in intervals:
        return ""
    iv = intervals[key]
    if iv.get("low") is None:
        return " <small>[&ndash;]</small>"
    return f" <small>[{_num(iv['low'], digits)}, {_num(iv['high'], digits)}]</small>"


def _requirement_table(metrics: dict) -> str:
    req = metrics["requirement"]
    level = metrics["bootstrap"]["level"]
    head = (
        "<tr><th class=l>model</th><th class=l>population</th><th>Real / Bogus</th>"
        f"<th>requirement window [low, high]<br><small>{int(level * 100)} % intervals of low, "
        "high</small></th><th>fraction of bootstrap samples with a window</th>"
        "<th>P = C crossing: threshold</th><th>P = C value</th><th>cutoff</th>"
        "<th>purity at cutoff</th><th>completeness at cutoff</th><th>ROC AUC</th>"
        "<th>Brier</th><th>ECE</th></tr>"
    )
    rows = []
    for model, entry in metrics["models"].items():
        for pop, s in entry["populations"].items():
            label = metrics["populations"].get(pop, pop)
            if s is None:
                rows.append(
                    f"<tr><td class=l>{_e(model)}</td><td class=l>{_e(pop)}</td>"
                    f"<td class=l colspan=11>{_e(label)}</td></tr>"
                )
                continue
            iv = s.get("intervals")
            win = s.get("window")
            if win is None:
                wtxt, cls = "none: requirement not met", "no"
            else:
                wtxt = f"[{_num(win['low'])}, {_num(win['high'])}]"
                if not win["contiguous"]:
                    wtxt += " <small>(not contiguous)</small>"
                cls = "ok"
            if iv:
                lo, hi = iv["window_low"], iv["window_high"]
                if lo.get("low") is not None:
                    wtxt += (
                        f"<br><small>low in [{_num(lo['low'])}, {_num(lo['high'])}], "
                        f"high in [{_num(hi['low'])}, {_num(hi['high'])}] ({lo['n_defined']} of "
                        f"{metrics['bootstrap']['n_boot']} resamples have a window)</small>"
                    )
            frac = _num(iv["window_fraction"]["value"], 2) if iv else "&ndash;"
            cross = s.get("crossing") or {}
            rows.append(
                f"<tr><td class=l>{_e(model)}</td><td class=l title='{_e(label)}'>{_e(pop)}</td>"
                f"<td>{s['n_real']} / {s['n_bogus']}</td><td class={cls}>{wtxt}</td>"
                f"<td>{frac}</td>"
                f"<td>{_num(cross.get('threshold'))}{_ci(iv, 'crossing_threshold')}</td>"
                f"<td>{_num(cross.get('value'))}{_ci(iv, 'crossing_value')}</td>"
                f"<td>{_num(s['cutoff'])}</td>"
                f"<td>{_num(s['purity_at_cutoff'])}{_ci(iv, 'purity_at_cutoff')}</td>"
                f"<td>{_num(s['completeness_at_cutoff'])}{_ci(iv, 'completeness_at_cutoff')}</td>"
                f"<td>{_num(s['auc'])}{_ci(iv, 'auc')}</td>"
                f"<td>{_num(s['brier'])}{_ci(iv, 'brier')}</td>"
                f"<td>{_num(s['ece'])}{_ci(iv, 'ece')}</td></tr>"
            )
    pops = "".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in metrics["populations"].items())
    return (
        f"<p>Requirement: purity &ge; {req['min_purity']} and completeness &ge; "
        f"{req['min_completeness']}. A detection passes a threshold t when reliability &ge; t; "
        "the window lists the lowest and highest observed thresholds that meet both. Intervals "
        f"are {int(level * 100)} % percentile bootstrap intervals over "
        f"{metrics['bootstrap']['n_boot']} resamples (seed {metrics['bootstrap']['seed']}).</p>"
        f"<ul>{pops}</ul><table>{head}{''.join(rows)}</table>"
    )


def _type_tables(metrics: dict) -> str:
    parts = []
    for model, entry in metrics["models"].items():
        for col, rows in entry.get("type_table", {}).items():
            body = "".join(
                f"<tr><td class=l>{_e(r['type'])}</td><td>{_num(r['true_positive_fraction'])}</td>"
                f"<td>{_num(r['false_negative_fraction'])}</td><td>{r['n_real']}</td>"
                f"<td>{_num(r['false_positive_fraction'])}</td><td>{r['n_bogus']}</td></tr>"
                for r in rows
            )
            parts.append(
                f"<h3>{_e(model)} by {_e(col)} (reliability &ge; {_num(entry['cutoff'])})</h3>"
                "<table><tr><th class=l>type</th><th>true-positive fraction</th>"
                "<th>false-negative fraction</th><th>Real</th><th>false-positive fraction</th>"
                f"<th>Bogus</th></tr>{body}</table>"
            )
    return "".join(parts) or "<p class=note>No truthKind or origin column.</p>"


def _slice_tables(metrics: dict) -> str:
    parts = []
    for model, entry in metrics["models"].items():
        for by, groups in entry.get("slices", {}).items():
            body = []
            for key, s in groups.items():
                win = s.get("window")
                wtxt = "not met" if win is None else f"[{_num(win['low'])}, {_num(win['high'])}]"
                cross = s.get("crossing") or {}
                body.append(
                    f"<tr><td class=l>{_e(key)}</td><td>{s['n_real']}</td><td>{s['n_bogus']}</td>"
                    f"<td>{_num(s['purity_at_cutoff'])}</td>"
                    f"<td>{_num(s['completeness_at_cutoff'])}</td>"
                    f"<td>{_num(s['auc'])}</td><td>{_num(s['brier'])}</td>"
                    f"<td>{_num(cross.get('threshold'))}</td><td>{_num(cross.get('value'))}</td>"
                    f"<td>{wtxt}</td></tr>"
                )
            parts.append(
                f"<details><summary>{_e(model)}: by {_e(by)}</summary><table><tr>"
                "<th class=l>slice</th><th>Real</th><th>Bogus</th><th>purity at cutoff</th>"
                "<th>completeness at cutoff</th><th>AUC</th><th>Brier</th>"
                "<th>P = C threshold</th><th>P = C value</th><th>window</th></tr>"
                f"{''.join(body)}</table></details>"
            )
    return "".join(parts)


def _figures(records: Sequence[FigureRecord], figure_dir: Path) -> str:
    parts = []
    for rec in records:
        if rec.file is None:
            parts.append(f"<h3>{_e(rec.title)}</h3><p class=note>Not drawn: {_e(rec.note)}.</p>")
            continue
        img = figure_img((figure_dir / rec.file).read_bytes(), rec.title)
        parts.append(
            f"<figure id='fig-{_e(rec.name)}'><h3>{_e(rec.title)}</h3>{img}"
            f"<figcaption>{_e(rec.caption)}</figcaption></figure>"
        )
    return "".join(parts)


def render_html(
    metrics: dict,
    records: Sequence[FigureRecord],
    figure_dir: str | os.PathLike,
    *,
    extra: str | None = None,
) -> str:
    """The report page as one HTML string.

    Parameters
    ----------
    metrics : dict
        The content of metrics.json (JSON-ready: NaN already None).
    records : sequence of FigureRecord
        From :func:`realbogus.report.write_figures`; written figures are read from
        `figure_dir` and embedded.
    figure_dir : path-like
        Where the figure PNGs are (``<report>/figures``; galleries are read from its parent).
    extra : str, optional
        HTML fragment appended after the figures (the real-alerts section).

    Returns
    -------
    str
        A complete HTML5 document with no external reference.
    """
    figure_dir = Path(figure_dir)
    extra_html = extra or ""
    d = metrics["data"]
    models = ", ".join(_e(m) for m in metrics["models"])
    warn = metrics.get("warnings") or []
    warn_html = (
        "<section id=degenerate><h2>Degenerate results</h2><ul>"
        + "".join(f"<li>{_e(w)}</li>" for w in warn)
        + "</ul></section>"
        if warn
        else ""
    )
    flag = (
        f"; {d['n_flagged']} stamps flagged by {_e(d['flag_source'])}"
        if d.get("flag_source")
        else ""
    )
    return _document(
        f"realbogus evaluation: {models}",
        metrics,
        f"{d['n_rows']} detections: {d['n_real']} Real, {d['n_bogus']} Bogus, "
        f"{d['n_unlabelled']} unlabelled{flag}.",
        f"{summary_html(metrics)}"
        "<section id=requirement><h2>Requirement window and headline numbers</h2>"
        f"{_requirement_table(metrics)}</section>"
        "<section id=types><h2>True positives and false negatives per type (DMTN-337 Table 5)"
        f"</h2>{_type_tables(metrics)}</section>"
        "<section id=origins><h2>Purity and completeness per origin at the cutoff</h2>"
        f"{origin_rates_html(metrics)}</section>"
        f"<section id=slices><h2>Slices (all labelled detections)</h2>{_slice_tables(metrics)}"
        "</section><section id=galleries><h2>Stamp galleries</h2>"
        f"{galleries_html(metrics, figure_dir.parent)}</section>"
        f"<section id=figures><h2>Figures</h2>{_figures(records, figure_dir)}</section>"
        f"{extra_html}"
        f"{warn_html}",
    )


def render_alerts_html(metrics: dict, extra: str) -> str:
    """The page of an alerts-only evaluation (``evaluate --alerts`` without ``--data``).

    Parameters
    ----------
    metrics : dict
        The content of metrics.json (JSON-ready), with ``alerts`` and ``provenance``.
    extra : str
        The real-alerts section (:func:`realbogus.report.alerts_section.alerts_html`).

    Returns
    -------
    str
        A complete HTML5 document with no external reference.
    """
    models = ", ".join(_e(m) for m in metrics["alerts"]["models"])
    return _document(
        f"realbogus evaluation on real alerts: {models}",
        metrics,
        "No labelled dataset was given (--data), so there is no requirement window: real alerts "
        "carry the survey's own score, not a truth label.",
        extra,
    )


def _document(title: str, metrics: dict, about: str, body: str) -> str:
    """The report page's shell: head with the inline style, title, version line (+ `about`),
    provenance list, then `body`. `title` and `about` are HTML (escaped by the caller)."""
    prov = metrics.get("provenance") or {}
    prov_html = "".join(f"<li>{_e(k)}: {_e(v)}</li>" for k, v in prov.items())
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>{title}</title><style>{_CSS}</style></head><body><h1>{title}</h1>"
        f"<p class=meta>realbogus {_e(metrics['realbogus_version'])}, {_e(metrics['created'])}. "
        f"{about}</p><ul class=meta>{prov_html}</ul>{body}</body></html>\n"
    )
