"""End-to-end test of the `realbogus crowd` commands on a tiny dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from realbogus.cli import app
from realbogus.crowd.core import read_labels
from realbogus.io.dataset import open_dataset, write_dataset
from realbogus.stamps import Stamps


def test_simulate_aggregate_labels_subjects(tmp_path, rng):
    """simulate -> aggregate (three methods) -> labels -> subjects; bad method is a clean error."""
    n = 600
    table = pd.DataFrame(
        {
            "diaSourceId": np.arange(n, dtype=np.int64) + 9000,
            "label": rng.integers(0, 2, n),
            "snr": rng.uniform(3, 40, n),
            "origin": rng.choice(["ss", "gaia"], n),
        }
    )
    data = rng.normal(size=(n, 3, 9, 9)).astype(np.float32)
    write_dataset(
        tmp_path / "ds",
        table,
        Stamps(data=data, valid_fraction=np.ones(n, np.float32), edge=np.zeros(n, bool)),
    )
    run = CliRunner().invoke
    r = run(
        app,
        [
            "crowd",
            "simulate",
            str(tmp_path / "ds"),
            "--out",
            str(tmp_path / "e.csv"),
            "--volunteers",
            "40",
            "--reference-fraction",
            "0.2",
            "--seed",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    for method in ("swap", "majority", "dawid-skene"):
        r = run(
            app,
            [
                "crowd",
                "aggregate",
                str(tmp_path / "e.csv"),
                "--method",
                method,
                "--out",
                str(tmp_path / f"{method}.parquet"),
            ],
        )
        assert r.exit_code == 0, r.output
        labels, info = read_labels(tmp_path / f"{method}.parquet")
        assert info["method"] == method and len(labels) == n
        assert set(labels["diaSourceId"]) == set(table["diaSourceId"])
    r = run(
        app,
        [
            "crowd",
            "labels",
            str(tmp_path / "swap.parquet"),
            "--data",
            str(tmp_path / "ds"),
            "--out",
            str(tmp_path / "train"),
            "--set",
            "unstable",
        ],
    )
    assert r.exit_code == 0, r.output
    counts = open_dataset(tmp_path / "train").manifest["counts"]["label"]
    assert counts["real"] == counts["bogus"] > 0
    r = run(
        app,
        [
            "crowd",
            "subjects",
            str(tmp_path / "ds"),
            "--out",
            str(tmp_path / "subj"),
            "--scale",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "subj").glob("*.png"))) == n
    r = run(
        app,
        [
            "crowd",
            "aggregate",
            str(tmp_path / "e.csv"),
            "--method",
            "vote",
            "--out",
            str(tmp_path / "x.parquet"),
        ],
    )
    assert r.exit_code == 1 and "unknown aggregation method 'vote'" in r.output
    assert not (tmp_path / "x.parquet").exists()


def _export(tmp_path, rng, reference_fraction: str) -> str:
    n = 200
    table = pd.DataFrame(
        {
            "diaSourceId": np.arange(n, dtype=np.int64) + 9000,
            "label": rng.integers(0, 2, n),
            "snr": rng.uniform(3, 40, n),
            "origin": rng.choice(["ss", "gaia"], n),
        }
    )
    stamps = Stamps(
        rng.normal(size=(n, 3, 9, 9)).astype(np.float32), np.ones(n, np.float32), np.zeros(n, bool)
    )
    write_dataset(tmp_path / "ds", table, stamps)
    out = str(tmp_path / f"e{reference_fraction}.csv")
    args = ["crowd", "simulate", str(tmp_path / "ds"), "--out", out, "--volunteers", "20"]
    result = CliRunner().invoke(app, [*args, "--reference-fraction", reference_fraction])
    assert result.exit_code == 0, result.output
    return out


def test_aggregate_without_reference_subjects_is_an_error(tmp_path, rng):
    """Why #6: SWAP on an export with no reference subjects wrote all-0.5 labels with exit 0."""
    export = _export(tmp_path, rng, "0")
    out = tmp_path / "labels.parquet"
    result = CliRunner().invoke(app, ["crowd", "aggregate", export, "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "no reference subjects" in result.output and "--reference" in result.output
    assert "--method majority" in result.output and not out.exists()
    ok = CliRunner().invoke(
        app, ["crowd", "aggregate", export, "--method", "majority", "--out", str(out)]
    )
    assert ok.exit_code == 0, ok.output


def test_aggregate_that_keeps_no_row_lists_what_exists(tmp_path, rng):
    """Why #6: a task/workflow that drops every row wrote an empty file with exit 0."""
    export = _export(tmp_path, rng, "0.2")
    out = tmp_path / "labels.parquet"
    result = CliRunner().invoke(
        app, ["crowd", "aggregate", export, "--task", "T9", "--out", str(out)]
    )
    assert result.exit_code == 1, result.output
    assert "no classification left" in result.output and "T0" in result.output
    assert "--task" in result.output and not out.exists()
