"""Tests of realbogus.evaluation.alerts and the report's real-alerts section."""

from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from test_evaluate import make_detections
from test_report import CHROMIUM, _assert_opens_in_chromium

from realbogus.errors import InputError
from realbogus.evaluation.alerts import (
    AlertRun,
    asteroid_mask,
    compare_with_survey,
    stamp_conditions,
)
from realbogus.evaluation.evaluate import evaluate
from realbogus.evaluation.metrics import roc_auc
from realbogus.workflows.alerts import score_alert_folder


def _scores(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    theirs = rng.random(n)
    return pd.DataFrame(
        {
            "diaSourceId": np.arange(n),
            "reliability": np.clip(theirs + rng.normal(0, 0.2, n), 0, 1),
            "surveyReliability": theirs,
            "survey": "rubin",
            "ssObjectId": np.where(np.arange(n) < 6, 1000 + np.arange(n), 0),
            "valid_fraction": np.where(np.arange(n) % 10 == 0, 0.9, 1.0),
            "edge": np.arange(n) % 15 == 1,
        }
    )


def test_compare_numbers_match_direct_computation():
    """AUC against the survey's label, agreement counts, asteroid recall, disagreement order."""
    t = _scores()
    c = compare_with_survey(t, 0.5)
    ours, theirs = t["reliability"].to_numpy(), t["surveyReliability"].to_numpy()
    assert c["survey_score"] == "surveyReliability" and c["survey"] == "rubin"
    assert c["auc"] == pytest.approx(roc_auc((theirs >= 0.5).astype(int), ours))
    a = c["agreement"]
    assert sum(a.values()) == len(t)
    assert a["ours_only"] == int(((ours >= 0.5) & (theirs < 0.5)).sum())
    assert c["asteroids"]["ours"]["n"] == 6
    assert c["asteroids"]["ours"]["passing"] == int((ours[:6] >= 0.5).sum())
    high = c["disagreements"]["ours_high_theirs_low"]
    gaps = ours[high] - theirs[high]
    assert (np.diff(gaps) <= 0).all() and (ours[high] >= 0.5).all() and (theirs[high] < 0.5).all()
    assert sum(s["n"] for s in c["conditions"].values()) == len(t)


def test_conditions_disjoint_and_asteroids_from_either_survey():
    """Conditions partition the alerts; ZTF asteroids by ssdistnr within 2 arcsec."""
    t = _scores()
    masks = stamp_conditions(t)
    total = sum(m.astype(int) for m in masks.values())
    assert (total == 1).all()
    ztf = pd.DataFrame({"ssdistnr": [-999.0, 0.5, 2.0, 3.0, np.nan]})
    assert asteroid_mask(ztf).tolist() == [False, True, True, False, False]


def test_no_survey_score_is_defined():
    """Without a survey score the numbers are undefined, not errors."""
    t = _scores().drop(columns="surveyReliability")
    c = compare_with_survey(t, 0.5)
    assert c["survey_score"] is None and math.isnan(c["auc"])


def test_missing_folder_names_the_flag(tmp_path):
    """A missing --alerts path is refused with the flag in the message."""
    with pytest.raises(InputError, match="--alerts"):
        score_alert_folder([], tmp_path / "nope")


def test_alerts_section_on_rubin_dev_alerts(shared_data, tmp_path):
    """rubin-v0.1 on the 126 Rubin DEV alerts: the section, its figures and galleries."""
    from realbogus.model.package import load_package

    run = score_alert_folder(
        [("rubin-v0.1", load_package("rubin-v0.1"))], shared_data / "rubin" / "alerts", workers=1
    )
    assert isinstance(run, AlertRun) and len(run.stamps) == len(run.tables["rubin-v0.1"]) == 126
    table, scores = make_detections(n=200, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate(
            table, {"rubin-v0.1": scores["model-A"]}, tmp_path / "r", n_boot=0, alerts=run
        )
    a = res.metrics["alerts"]["models"]["rubin-v0.1"]
    assert a["survey_score"] == "surveyReliability" and a["n"] == 126
    assert 0.5 < a["auc"] < 1.0
    assert a["asteroids"]["ours"]["n"] == int((run.tables["rubin-v0.1"]["ssObjectId"] > 0).sum())
    page = res.report.read_text()
    assert "<section id=alerts>" in page
    for key, entries in a["galleries"].items():
        block = re.search(rf"data-gallery='alerts-{key}' data-n='(\d+)'", page)
        assert int(block.group(1)) == len(entries) == len(a["disagreements"][key])
    names = [f["name"] for f in res.metrics["alerts"]["figures"]]
    assert names == ["alerts_scores", "alerts_roc", "alerts_conditions"]
    json.loads((tmp_path / "r" / "metrics.json").read_text())  # strict JSON (no NaN)
    if CHROMIUM is not None:  # every image (disagreement triplets too) decodes at >= 800 px
        _assert_opens_in_chromium(res.path, tmp_path)


def test_evaluate_alerts_without_data_writes_an_alerts_report(shared_data, tmp_path):
    """`evaluate --alerts` with no --data: the real-alerts report alone, the same numbers as
    the section of a labelled evaluation."""
    from typer.testing import CliRunner

    from realbogus.cli import app

    out = tmp_path / "r"
    res = CliRunner().invoke(
        app,
        ["evaluate", "--model", "rubin-v0.1", "--alerts", str(shared_data / "rubin" / "alerts")]
        + ["--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"] is None and metrics["models"] == {}
    a = metrics["alerts"]["models"]["rubin-v0.1"]
    assert a["n"] == 126 and a["asteroids"]["ours"]["n"] == 11
    assert f"{a['auc']:.3f}" in res.output
    page = (out / "report.html").read_text()
    assert "<section id=alerts>" in page and "id=requirement" not in page
    assert all((out / f["file"]).is_file() for f in metrics["alerts"]["figures"])


def test_evaluate_needs_data_or_alerts(tmp_path):
    """Neither --data nor --alerts: a clear error naming both flags, nothing written."""
    from typer.testing import CliRunner

    from realbogus.cli import app

    res = CliRunner().invoke(
        app, ["evaluate", "--model", "rubin-v0.1", "--out", str(tmp_path / "r")]
    )
    assert res.exit_code != 0
    assert "--data" in res.output and "--alerts" in res.output
    assert not (tmp_path / "r").exists()
