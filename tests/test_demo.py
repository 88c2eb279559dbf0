"""The demo chain, small: simulate, (re)train, score, evaluate, report."""

import json

import pandas as pd

from realbogus.workflows.demo import run_demo


def test_demo_retrain_runs_the_whole_chain(tmp_path):
    """--retrain on a tiny survey writes the dataset, scores, metrics and a self-contained report."""
    stages = []
    result = run_demo(
        tmp_path / "demo",
        survey="rubin-small",
        visits=2,
        retrain=True,
        train_visits=8,
        epochs=1,
        workers=1,
        stage=stages.append,
    )
    assert [s.split()[0] for s in stages] == [
        "simulating",
        "simulating",
        "training",
        "scoring",
        "evaluating",
    ]
    scores = pd.read_parquet(result.scores)
    assert len(scores) == result.n_detections > 0
    assert scores["reliability"].between(0, 1).all()
    assert (scores["reliabilityVersion"] == result.model_version).all()
    html = result.report.read_text()
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html
    metrics = json.loads((tmp_path / "demo" / "evaluation" / "metrics.json").read_text())
    assert result.model_version in metrics["models"]
    assert (tmp_path / "demo" / "data" / "preview.png").is_file()
