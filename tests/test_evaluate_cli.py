"""End to end: `realbogus evaluate` with two randomly initialised packages on a stamp dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_evaluate import make_detections
from typer.testing import CliRunner

from realbogus.cli import app
from realbogus.errors import RealBogusWarning
from realbogus.evaluation import metrics as M
from realbogus.inference.scorer import Scorer
from realbogus.io.dataset import open_dataset, write_dataset
from realbogus.model.package import init_package, load_package
from realbogus.stamps import Stamps
from realbogus.workflows.evaluate import evaluate_packages
from realbogus.workflows.score import score_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 160-row labelled dataset of random 51x51 stamps and two random packages."""
    root = tmp_path_factory.mktemp("cli")
    table, _ = make_detections(n=160, seed=4)
    table = table.drop(columns="valid_fraction")
    rng = np.random.default_rng(9)
    data = rng.normal(0, 50, (160, 3, 51, 51)).astype(np.float32)
    real = (table["label"] == 1).to_numpy()
    data[real, :2, 23:28, 23:28] += 400.0  # a point source in difference and science
    valid = np.ones(160, np.float32)
    valid[:8] = 0.9
    write_dataset(root / "data", table, Stamps(data, valid, np.zeros(160, bool)))
    init_package(root / "pa", seed=1, version="rand-1")
    init_package(root / "pb", seed=2, version="rand-2")
    return root


def test_cli_evaluate_two_packages(setup):
    """The command writes metrics equal to scoring with the library and evaluating directly."""
    root = setup
    out = root / "report"
    args = ["evaluate", "--model", str(root / "pa"), "--model", str(root / "pb")]
    args += ["--data", str(root / "data"), "--out", str(out), "--n-boot", "20"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "report ->" in result.output and "rand-1" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["models"]) == ["rand-1", "rand-2"]
    assert metrics["provenance"]["packages"] == {
        "rand-1": str(root / "pa"),
        "rand-2": str(root / "pb"),
    }
    assert (
        metrics["data"]["flag_source"] == "valid_fraction < 1" and metrics["data"]["n_flagged"] == 8
    )
    ds = open_dataset(root / "data")
    table = ds.table()
    scores = score_dataset(Scorer(load_package(root / "pb")), ds)["reliability"].to_numpy(float)
    lab = table["label"].to_numpy()
    mask = ~np.isnan(lab) & (table["snr"] > 5).to_numpy()
    ref = M.summarize(lab[mask] == 1, scores[mask], cutoff=0.5)
    got = metrics["models"]["rand-2"]["populations"]["overall"]
    assert got["auc"] == pytest.approx(ref["auc"])
    assert got["window"] == ref["window"]
    assert (out / "report.html").stat().st_size > 10_000
    assert all(f["file"] for f in metrics["figures"]), metrics["figures"]


def test_cli_refuses_existing_output_and_bad_package(setup, tmp_path):
    """An existing report directory or an unknown package is a clean error (exit 1)."""
    root = setup
    (tmp_path / "exists").mkdir()
    args = ["evaluate", "--model", str(root / "pa"), "--data", str(root / "data")]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "exists")])
    assert result.exit_code == 1 and "already exists" in result.output
    bad = ["evaluate", "--model", str(tmp_path / "nope"), "--data", str(root / "data")]
    result = runner.invoke(app, [*bad, "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "no such package" in result.output
    assert not (tmp_path / "r").exists()


def test_same_version_twice_is_disambiguated(setup, tmp_path):
    """Two packages with one version string get distinct names, not a silent overwrite."""
    root = setup
    with pytest.warns(RealBogusWarning):
        res = evaluate_packages([root / "pa", root / "pa"], root / "data", tmp_path / "o", n_boot=0)
    assert list(res.metrics["models"]) == ["rand-1", "rand-1 (2)"]
    files = [e["curves_file"] for e in res.metrics["models"].values()]
    assert len(set(files)) == 2 and all((tmp_path / "o" / f).exists() for f in files)


def test_unknown_option_fails_before_scoring(setup, tmp_path):
    """A misspelt evaluate option is a ConfigError naming it, raised before any scoring."""
    from realbogus.errors import ConfigError

    with pytest.raises(ConfigError, match="n_boots"):
        evaluate_packages([setup / "pa"], setup / "data", tmp_path / "o", n_boots=3)
    assert not (tmp_path / "o").exists()


def test_rows_not_scored_are_left_out_of_the_metrics_with_a_warning(setup, tmp_path):
    """A stamp under the valid-fraction floor has no score (issue 19): evaluate leaves it out of
    every model's metrics and says so, instead of failing on a NaN score."""
    root = setup
    ds = open_dataset(root / "data")
    table = ds.table().drop(columns=["valid_fraction", "edge"])
    stamps = Stamps(
        np.concatenate([part.data for _, part in ds.iter_parts()]),
        np.r_[np.float32([0.1, 0.0]), np.ones(158, np.float32)],
        np.zeros(160, bool),
    )
    write_dataset(tmp_path / "data", table, stamps)
    with pytest.warns(RealBogusWarning) as caught:  # also the toy data's degenerate slices
        res = evaluate_packages([root / "pa"], tmp_path / "data", tmp_path / "o", n_boot=0)
    assert any("2 of 160 detections were not scored" in str(w.message) for w in caught)
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["provenance"]["not_scored"] == {"low-valid-fraction": 1, "no-valid-pixels": 1}
    assert res is not None


def test_cli_evaluate_refuses_other_units_unless_forced(setup, tmp_path):
    """Data in another pixel unit than a model's card: refused with the flag to use; --force
    evaluates it (the refusal used to name --force, which evaluate did not have)."""
    table, stamps = open_dataset(setup / "data").table(), open_dataset(setup / "data").stamps()
    write_dataset(
        tmp_path / "adu",
        table.drop(columns=["valid_fraction", "edge"], errors="ignore"),
        stamps,
        provenance={"pixel_units": "ADU"},
    )
    args = ["evaluate", "--model", "rubin-v0.1", "--data", str(tmp_path / "adu"), "--n-boot", "0"]
    refused = runner.invoke(app, [*args, "--out", str(tmp_path / "r1")])
    assert refused.exit_code == 1 and "--force" in refused.output
    assert not (tmp_path / "r1").exists()
    forced = runner.invoke(app, [*args, "--out", str(tmp_path / "r2"), "--force"])
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "r2" / "metrics.json").is_file()
