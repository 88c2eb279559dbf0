"""Tests of realbogus.evaluation.summary: the verdict in words, magnitudes, efficiency entries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from realbogus.evaluation import metrics as M
from realbogus.evaluation.summary import magnitudes, model_extras, summary_sentences


def _metrics(summaries: dict) -> dict:
    return {
        "requirement": {"min_purity": 0.95, "min_completeness": 0.9},
        "bootstrap": {"n_boot": 20, "level": 0.95, "seed": 0},
        "models": {m: {"populations": {"requirement": s}} for m, s in summaries.items()},
    }


def test_summary_verdicts_follow_the_window():
    """A separable model meets the requirement, a random one does not; both in words."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    good = M.summarize(y, np.clip(0.8 * y + 0.2 * rng.random(400), 0, 1), n_boot=20)
    bad = M.summarize(y, rng.random(400), n_boot=20)
    out = {s["model"]: s for s in summary_sentences(_metrics({"good": good, "bad": bad}))}
    assert out["good"]["verdict"] == "meets" and " MEETS OSS-REQ-0353" in out["good"]["text"]
    assert f"{good['window']['low']:.3f}" in out["good"]["text"]
    assert (
        out["bad"]["verdict"] == "does not meet" and "no threshold gives both" in out["bad"]["text"]
    )
    assert "bootstrap resamples" in out["bad"]["text"]


def test_summary_cannot_test_without_population():
    """No snr column: the verdict says it cannot be tested, and why."""
    out = summary_sentences(_metrics({"m": None}))
    assert out[0]["verdict"] == "cannot be tested" and "no snr column" in out[0]["text"]


def test_magnitudes_prefer_truth_then_psf_flux():
    """truthMag when present; otherwise the AB magnitude of |psfFlux| in nJy (1 nJy -> 31.4)."""
    flux20 = 10 ** (0.4 * (31.4 - 20.0))
    mag, label = magnitudes(pd.DataFrame({"psfFlux": [1.0, -flux20, 0.0]}))
    np.testing.assert_allclose(mag[:2], [31.4, 20.0], atol=1e-9)
    assert np.isnan(mag[2]) and "psfFlux" in label
    mag, label = magnitudes(pd.DataFrame({"psfFlux": [1.0], "truthMag": [21.5]}))
    assert mag[0] == 21.5 and "truthMag" in label


def test_model_extras_efficiency_and_origins():
    """Completeness curves over Real detections only, with the SNR 50 % point; origin rates."""
    n = 2000
    rng = np.random.default_rng(1)
    snr = rng.uniform(3, 30, n)
    labels = (rng.random(n) < 0.6).astype(float)
    scores = np.where(labels == 1, (snr > 8).astype(float) * 0.9 + 0.05, 0.1)
    table = pd.DataFrame({"snr": snr, "origin": rng.choice(["ss", "tns"], n)})
    out = model_extras(table, labels, scores, 0.5)
    eff = out["efficiency"]["snr"]
    assert sum(eff["n"]) == int((labels == 1).sum())
    assert eff["fifty"] == pytest.approx(8, abs=1.5)
    assert out["efficiency"]["magnitude"] is None
    assert [r["group"] for r in out["origin_rates"]] == ["ss", "tns"]


def test_summary_says_when_the_cutoff_is_outside_the_window():
    """A window that exists but excludes the cutoff is said so."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    s = M.summarize(y, np.clip(0.8 * y + 0.2 * rng.random(400), 0, 1), cutoff=0.01)
    text = summary_sentences(_metrics({"m": s}))[0]["text"]
    assert "purity >= 95 % and completeness >= 90 %" in text
    assert "its cutoff 0.010 is outside that range" in text
