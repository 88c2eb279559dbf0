"""evaluate() on real alerts: ZTF's own rb and drb scores on the DEV split (shared data).

The only trustworthy labels here are weak Real labels: alerts with a known asteroid within 2 arcsec.
Every other alert is unlabelled, so the populations are one-class: the evaluation must warn and
still give defined numbers, and the per-type table (DMTN-337 Table 5) measures completeness on
asteroids for both real models.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from realbogus.errors import RealBogusWarning
from realbogus.evaluation.evaluate import evaluate


def ztf_table(shared_data) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """ZTF DEV alerts with both scores; label 1 for known asteroids, null otherwise."""
    raw = pd.read_csv(shared_data / "ztf" / "alerts.csv")
    raw = raw[raw["drb"].notna() & raw["rb"].notna()].reset_index(drop=True)
    asteroid = raw["ssdistnr"].between(0, 2).to_numpy()
    table = pd.DataFrame(
        {
            "diaSourceId": raw["candid"].to_numpy(),
            "snr": raw["scorr"].to_numpy(float),
            "isNegative": (raw["isdiffpos"].astype(str) == "f").to_numpy(),
            "origin": np.where(asteroid, "ss", "ztf"),
            "label": np.where(asteroid, 1.0, np.nan),
        }
    )
    return table, {"ztf-drb": raw["drb"].to_numpy(float), "ztf-rb": raw["rb"].to_numpy(float)}


def test_real_ztf_scores_one_class_labels(shared_data, tmp_path):
    """Real scores + Real-only labels: warns, defines every number, Table 5 equals a direct count."""
    table, scores = ztf_table(shared_data)
    with pytest.warns(RealBogusWarning, match="one-class"):
        res = evaluate(table, scores, tmp_path / "ztf", n_boot=20)
    metrics = json.loads((tmp_path / "ztf" / "metrics.json").read_text())
    assert metrics == res.metrics
    ss = (table["origin"] == "ss").to_numpy()
    assert metrics["data"]["n_real"] == ss.sum() and metrics["data"]["n_bogus"] == 0
    for model, r in scores.items():
        rows = {row["type"]: row for row in metrics["models"][model]["type_table"]["origin"]}
        assert rows["ss"]["n_real"] == ss.sum()
        assert rows["ss"]["true_positive_fraction"] == pytest.approx(np.mean(r[ss] >= 0.5))
        overall = metrics["models"][model]["populations"]["overall"]
        assert overall["auc"] is None and overall["purity_at_cutoff"] == 1.0
        mask = ss & (table["snr"] > 5).to_numpy()
        assert overall["completeness_at_cutoff"] == pytest.approx(np.mean(r[mask] >= 0.5))
        assert not math.isnan(overall["brier"])
    notes = {f["name"]: f["note"] for f in metrics["figures"]}
    assert notes["score_distribution"] is None and notes["score_by_origin"] is None
    assert "apFlux" in notes["flux_vs_flux"]
    page = res.report.read_text()
    drawn = sum(1 for f in metrics["figures"] if f["file"])
    assert page.count("data:image/png;base64,") == drawn
