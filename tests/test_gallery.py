"""Tests of realbogus.report.gallery: selection of the galleries and their files."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.image import imread

from realbogus.report.gallery import gallery_figure, select_gallery, write_galleries


def test_select_gallery_most_confident_mistakes_and_random():
    """FPs by descending score (>= cutoff), FNs by ascending (< cutoff), random per class."""
    labels = np.array([0, 0, 0, 1, 1, 1, np.nan, 0, 1])
    scores = np.array([0.9, 0.6, 0.2, 0.1, 0.45, 0.8, 0.99, 0.5, 0.3])
    g = select_gallery(labels, scores, 0.5, n_confident=2, n_random=2)
    assert g["false_positives"].tolist() == [0, 1]
    assert g["false_negatives"].tolist() == [3, 8]
    assert set(g["random_real"]) <= {3, 4, 5, 8} and len(g["random_real"]) == 2
    assert set(g["random_bogus"]) <= {0, 1, 2, 7} and len(g["random_bogus"]) == 2
    assert 6 not in np.concatenate(list(g.values()))  # unlabelled rows never shown
    again = select_gallery(labels, scores, 0.5, n_confident=2, n_random=2)
    assert all((again[k] == g[k]).all() for k in g)  # seeded


def test_write_galleries_loads_once_and_writes_wide_pngs(tmp_path):
    """One loader call for every selected row; each PNG >= 800 px wide; captions' fields."""
    n = 50
    rng = np.random.default_rng(0)
    labels = (np.arange(n) % 2).astype(float)
    table = pd.DataFrame(
        {"diaSourceId": np.arange(n) + 1000, "snr": 5 + np.arange(n), "label": labels}
    )
    scores = {"a": rng.random(n), "b": rng.random(n)}
    calls = []

    def loader(rows):
        calls.append(rows)
        return rng.normal(size=(len(rows), 3, 15, 15)).astype(np.float32)

    out = write_galleries(
        tmp_path / "galleries", table, labels, scores, {"a": 0.5, "b": 0.5}, loader
    )
    assert len(calls) == 1 and (np.diff(calls[0]) > 0).all()
    for model in ("a", "b"):
        fp = out[model]["false_positives"]
        assert [t["reliability"] for t in fp] == sorted(
            (t["reliability"] for t in fp), reverse=True
        )
        assert all(t["label"] == 0 and t["reliability"] >= 0.5 for t in fp)
        t = fp[0]
        assert t["diaSourceId"] == t["row"] + 1000 and t["snr"] == 5 + t["row"]
        assert imread(tmp_path / t["file"]).shape[1] >= 800
        assert len(out[model]["random_real"]) == 4


def test_gallery_figure_draws_every_triplet():
    """One image per triplet with its caption."""
    stamps = np.random.default_rng(1).normal(size=(3, 3, 9, 9))
    fig = gallery_figure(stamps, ["a", "b", "c"], ncol=2)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 3 and [ax.get_title(loc="left") for ax in images] == ["a", "b", "c"]
