"""HTML of the report's reader-first sections: the verdict, per-origin rates, stamp galleries.

Formats ``metrics.json`` (``summary``, ``models.<m>.origin_rates``, ``models.<m>.efficiency``,
``galleries``); computes nothing. Gallery PNGs are embedded as data URIs, so the page stays
self-contained.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from .gallery import GALLERIES

__all__ = ["figure_img", "galleries_html", "origin_rates_html", "summary_html"]


def figure_img(data: bytes, alt: str) -> str:
    """An ``<img>`` of a PNG figure written at 2x, displayed at half its pixel width.

    Parameters
    ----------
    data : bytes
        A PNG file (its IHDR width is read from bytes 16-20).
    alt : str
        Alternative text (escaped here).

    Returns
    -------
    str
        ``<img>`` with a data URI and ``style='width:Wpx'`` (W = pixel width / 2), so the figure
        is the size it was laid out at and stays sharp when zoomed or on high-DPI screens.
    """
    width = int.from_bytes(data[16:20], "big") // 2
    uri = base64.b64encode(data).decode("ascii")
    return f"<img alt='{_e(alt)}' style='width:{width}px' src='data:image/png;base64,{uri}'>"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _f(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "&ndash;"
    return f"{float(value):.{digits}f}"


def _fifty_text(e: dict, name: str) -> str:
    """Where completeness crosses 50 %, or that it never does over the binned range."""
    if e.get("fifty") is not None:
        return f"50 % completeness at {name} {_f(e['fifty'], 2)}"
    frac = [f for f, n in zip(e["fraction"], e["n"], strict=True) if n and f is not None]
    if not frac:
        return f"no Real detection with a {name}"
    side = "above" if min(frac) >= 0.5 else "below" if max(frac) < 0.5 else "around"
    return (
        f"completeness {side} 50 % in every {name} bin (from {_f(min(frac), 2)} to "
        f"{_f(max(frac), 2)}): no 50 % point"
    )


def summary_html(metrics: dict) -> str:
    """The one-screen summary: one verdict sentence per model, then the 50 % points.

    Parameters
    ----------
    metrics : dict
        metrics.json content.

    Returns
    -------
    str
        HTML fragment (``<section id=summary>``).
    """
    items = []
    for s in metrics.get("summary", []):
        cls = {"meets": "ok", "does not meet": "no"}.get(s["verdict"], "note")
        items.append(f"<li class={cls}>{_e(s['text'])}</li>")
    fifty = []
    for model, entry in metrics["models"].items():
        eff = entry.get("efficiency") or {}
        parts = []
        for q, name in (("snr", "SNR"), ("magnitude", "magnitude")):
            e = eff.get(q)
            if e is None:
                continue
            parts.append(_fifty_text(e, name))
        if parts:
            fifty.append(
                f"<li>{_e(model)} (reliability &ge; {_f(entry['cutoff'])}): {'; '.join(parts)}</li>"
            )
    extra = f"<ul class=meta>{''.join(fifty)}</ul>" if fifty else ""
    return (
        "<section id=summary><h2>Summary: does each model meet OSS-REQ-0353?</h2>"
        f"<ul class=summary>{''.join(items)}</ul>{extra}</section>"
    )


def origin_rates_html(metrics: dict) -> str:
    """Purity and completeness at each model's cutoff per origin, with binomial intervals."""
    parts = []
    for model, entry in metrics["models"].items():
        rows = entry.get("origin_rates") or []
        if not rows:
            continue
        body = "".join(
            f"<tr><td class=l>{_e(r['group'])}</td><td>{r['n_real']}</td><td>{r['n_bogus']}</td>"
            f"<td>{r['n_passing']}</td><td>{_f(r['purity'])} <small>[{_f(r['purity_low'])}, "
            f"{_f(r['purity_high'])}]</small></td><td>{_f(r['completeness'])} <small>["
            f"{_f(r['completeness_low'])}, {_f(r['completeness_high'])}]</small></td></tr>"
            for r in rows
        )
        parts.append(
            f"<h3>{_e(model)} at reliability &ge; {_f(entry['cutoff'])}</h3><table><tr>"
            "<th class=l>origin</th><th>Real</th><th>Bogus</th><th>passing</th>"
            "<th>purity [95 % binomial]</th><th>completeness [95 % binomial]</th></tr>"
            f"{body}</table>"
        )
    return "".join(parts) or "<p class=note>No origin column.</p>"


def _caption(t: dict) -> str:
    label = {1: "Real", 0: "Bogus"}.get(t.get("label"), "unlabelled")
    snr = "" if t.get("snr") is None else f", SNR {float(t['snr']):.1f}"
    ident = t.get("diaSourceId") if t.get("diaSourceId") is not None else f"row {t['row']}"
    kind = "" if t.get("kind") is None else f" {t['kind']}"
    return f"{ident}: {label}{kind}{snr}, score {t['reliability']:.3f}"


def galleries_html(metrics: dict, root: str | Path) -> str:
    """Every model's galleries as difference | science | template triplets with captions.

    Parameters
    ----------
    metrics : dict
        metrics.json content with ``galleries`` (absent: a note says why).
    root : path-like
        The report directory the gallery files are relative to.

    Returns
    -------
    str
        HTML fragment; each triplet is a ``<figure class=triplet>``.
    """
    galleries = metrics.get("galleries")
    if not galleries:
        return "<p class=note>No galleries: evaluate was given no stamps.</p>"
    root = Path(root)
    titles = dict(GALLERIES)
    parts = [
        "<p class=meta>Each triplet: difference | science | template, each panel on its own "
        "zscale, y up; magenta pixels are NaN or masked.</p>"
    ]
    for model, kinds in galleries.items():
        cutoff = metrics["models"][model]["cutoff"]
        parts.append(f"<h3>{_e(model)} (cutoff {_f(cutoff)})</h3>")
        for key, entries in kinds.items():
            figs = []
            for t in entries:
                data = base64.b64encode((root / t["file"]).read_bytes()).decode("ascii")
                figs.append(
                    f"<figure class=triplet><img alt='{_e(_caption(t))}' "
                    f"src='data:image/png;base64,{data}'>"
                    f"<figcaption>{_e(_caption(t))}</figcaption></figure>"
                )
            body = "".join(figs) or "<p class=note>none</p>"
            parts.append(
                f"<div class=gallery data-model='{_e(model)}' data-gallery='{_e(key)}' "
                f"data-n='{len(entries)}'><h4>{_e(titles.get(key, key))} ({len(entries)})</h4>"
                f"<div class=grid>{body}</div></div>"
            )
    return "".join(parts)
