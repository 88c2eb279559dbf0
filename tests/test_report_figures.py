"""Legibility of the report's figures: no overlapping tick labels, full titles, 2x resolution."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.image import imread
from test_evaluate import make_detections

from realbogus.evaluation import metrics as M
from realbogus.report import FigureData, write_figures
from realbogus.report.figures import (
    _symlog_ticks,
    fig_flux_vs_flux,
    fig_flux_vs_flux_cutoff,
    fig_reliability_vs_psf_snr,
)


def _data(long_names: bool = False) -> FigureData:
    table, scores = make_detections(n=3000, seed=2)
    # fluxes over five decades, both signs: the case whose labels used to run together
    rng = np.random.default_rng(1)
    flux = rng.choice([-1, 1], len(table)) * 10 ** rng.uniform(0, 5.5, len(table))
    table["apFlux"] = flux
    table["scienceFlux"] = flux + 2e5
    table["templateFlux"] = 2e5 + rng.normal(0, 5, len(table))
    table["psfFlux"], table["psfFluxErr"] = flux, 20.0
    if long_names:
        scores = {
            f"{m} trained on the full 2026 DP1 injection campaign": s for m, s in scores.items()
        }
    y = table["label"].to_numpy() == 1
    curves = {m: {"overall": M.purity_completeness(y, s)} for m, s in scores.items()}
    return FigureData(
        table=table,
        scores=scores,
        cutoffs={m: 0.5 for m in scores},
        curves=curves,
        calibrations={m: M.calibration(y, s) for m, s in scores.items()},
    )


def _overlaps(boxes) -> list:
    return [
        (a, b)
        for (a, b) in itertools.combinations(boxes, 2)
        if a.width > 0 and b.width > 0 and a.overlaps(b)
    ]


@pytest.mark.parametrize(
    "draw", [fig_flux_vs_flux, fig_flux_vs_flux_cutoff, fig_reliability_vs_psf_snr]
)
def test_symlog_tick_labels_do_not_overlap(draw):
    """Every pair of tick labels, axis labels and titles in the symlog figures is disjoint."""
    fig = draw(_data(long_names=True))
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    fig_box = fig.bbox
    for ax in fig.axes[:2]:  # the model panels (the colour bar follows)
        for axis in (ax.xaxis, ax.yaxis):
            labels = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
            assert len(labels) >= 3
            boxes = [t.get_window_extent(renderer) for t in labels]
            assert not _overlaps(boxes), [t.get_text() for t in labels]
            label_box = axis.label.get_window_extent(renderer)
            assert not any(label_box.overlaps(b) for b in boxes)
        title = ax.title.get_window_extent(renderer)
        assert fig_box.x0 <= title.x0 and title.x1 <= fig_box.x1  # not cut off
        assert "(nJy)" in ax.get_xlabel() or "psfFlux" in ax.get_xlabel()
    # the two panels' labels do not run into each other
    a, b = fig.axes[0], fig.axes[1]
    a_boxes = [t.get_window_extent(renderer) for t in a.yaxis.get_ticklabels() + [a.yaxis.label]]
    b_boxes = [t.get_window_extent(renderer) for t in b.yaxis.get_ticklabels() + [b.yaxis.label]]
    assert not any(x.overlaps(y) for x in a_boxes for y in b_boxes if x.width and y.width)


def test_symlog_ticks_are_thinned_decades():
    """Decade ticks: symmetric about 0, at most 7, largest decade kept."""
    ticks = _symlog_ticks(1.0, 3e6)
    assert len(ticks) <= 7 and 0.0 in ticks
    np.testing.assert_array_equal(ticks, -ticks[::-1])
    assert ticks.max() == 1e7
    assert np.allclose(np.log10(ticks[ticks > 0]) % 1, 0)


def test_figures_are_written_at_twice_resolution(tmp_path):
    """Each written PNG is >= 800 px wide (the report's Chromium check asks the same)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = write_figures(_data(), tmp_path)
    written = [r for r in records if r.file]
    assert len(written) >= 8
    for rec in written:
        assert imread(tmp_path / rec.file).shape[1] >= 800, rec.name
