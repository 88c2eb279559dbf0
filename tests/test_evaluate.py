"""Tests of realbogus.evaluate: metrics.json, figures, curves and report on a simulated table."""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from realbogus.errors import ConfigError, InputError, RealBogusWarning
from realbogus.evaluation import metrics as M
from realbogus.evaluation.evaluate import evaluate
from realbogus.report import FIGURES

DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"


def make_detections(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """A simulated detection table with every column evaluate uses, and two models' scores."""
    rng = np.random.default_rng(seed)
    origin = rng.choice(
        ["injection", "ss", "gaia", "galaxy", "tns"], n, p=[0.3, 0.3, 0.2, 0.1, 0.1]
    )
    label = np.where(origin == "injection", 1.0, (rng.random(n) < 0.5).astype(float))
    label[rng.random(n) < 0.1] = np.nan  # unlabelled
    kind = np.where(label == 0, "artifact", rng.choice(["transient", "variable", "ss"], n)).astype(
        object
    )
    snr = 4.0 + rng.exponential(4.0, n)
    snr[: n // 4] = rng.uniform(5.5, 6.5, n // 4)  # a well-filled requirement population
    err = rng.uniform(50, 150, n)
    negative = rng.random(n) < 0.2
    psf = np.where(negative, -1, 1) * snr * err
    diff = psf * np.where(label == 0, rng.uniform(-1, 3, n), 1 + rng.normal(0, 0.05, n))
    template = rng.uniform(0, 5000, n)
    table = pd.DataFrame(
        {
            "diaSourceId": np.arange(n, dtype=np.int64) + 1000,
            "snr": snr,
            "psfFlux": psf,
            "psfFluxErr": err,
            "apFlux": psf * (1 + rng.normal(0, 0.1, n)),
            "scienceFlux": template + diff,
            "templateFlux": template,
            "isNegative": negative,
            "origin": origin,
            "truthKind": kind,
            "truthMag": np.where(origin == "injection", rng.uniform(21, 24, n), np.nan),
            "label": label,
            "labelSource": np.where(origin == "injection", "injection", "truth"),
            "valid_fraction": np.where(rng.random(n) < 0.05, 0.8, 1.0).astype(np.float32),
        }
    )
    real = np.nan_to_num(label, nan=0.5)
    good = 1 / (1 + np.exp(-(6 * (real - 0.5) + rng.normal(0, 1.3, n))))
    poor = 1 / (1 + np.exp(-(2 * (real - 0.5) + rng.normal(0, 1.0, n))))
    return table, {"model-A": good, "model-B v2": poor}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """One evaluation of two models (shared by the tests of its outputs)."""
    table, scores = make_detections()
    out = tmp_path_factory.mktemp("eval") / "report"
    with pytest.warns(RealBogusWarning, match="degenerate"):
        result = evaluate(
            table, scores, out, cutoffs={"model-A": 0.5, "model-B v2": 0.3}, n_boot=40, seed=3
        )
    return table, scores, result


def test_metrics_equal_direct_computation(evaluated):
    """Population numbers in metrics.json equal metrics.summarize on the same rows."""
    table, scores, result = evaluated
    on_disk = json.loads((result.path / "metrics.json").read_text())
    assert on_disk == result.metrics
    lab = table["label"].to_numpy()
    for pop, mask in {
        "overall": ~np.isnan(lab) & (table["snr"] > 5).to_numpy(),
        "requirement": ~np.isnan(lab) & table["snr"].between(5.5, 6.5).to_numpy(),
    }.items():
        for model, cut in (("model-A", 0.5), ("model-B v2", 0.3)):
            ref = M.summarize(lab[mask] == 1, scores[model][mask], cutoff=cut)
            got = on_disk["models"][model]["populations"][pop]
            assert got["n_real"] == ref["n_real"] and got["n_bogus"] == ref["n_bogus"]
            assert got["auc"] == pytest.approx(ref["auc"])
            assert got["purity_at_cutoff"] == pytest.approx(ref["purity_at_cutoff"])
            assert got["window"] == ref["window"]
            assert got["crossing"] == pytest.approx(ref["crossing"])
            iv = got["intervals"]
            assert iv["auc"]["low"] - 1e-12 <= got["auc"] <= iv["auc"]["high"] + 1e-12
    a = on_disk["models"]["model-A"]["populations"]["overall"]
    b = on_disk["models"]["model-B v2"]["populations"]["overall"]
    assert a["auc"] > b["auc"]  # the better simulated model is ranked first


def test_slices_type_table_and_warnings(evaluated):
    """Slices by origin/truthKind/flux sign/SNR exist; one-class slices are listed, not fatal."""
    table, scores, result = evaluated
    entry = result.metrics["models"]["model-A"]
    assert set(entry["slices"]) == {"origin", "truthKind", "isNegative", "snr_bin"}
    assert set(entry["slices"]["isNegative"]) == {"true", "false"}
    inj = entry["slices"]["origin"]["injection"]
    assert inj["n_bogus"] == 0 and inj["auc"] is None
    assert any("origin=injection" in w for w in result.metrics["warnings"])
    kinds = {r["type"]: r for r in entry["type_table"]["truthKind"]}
    m = (table["truthKind"] == "variable").to_numpy() & (table["label"] == 1).to_numpy()
    assert kinds["variable"]["n_real"] == m.sum()
    assert kinds["variable"]["true_positives"] == int((scores["model-A"][m] >= 0.5).sum())


def test_curves_csv_is_the_full_table(evaluated):
    """curves/<model>.csv holds purity/completeness at every distinct threshold per population."""
    table, scores, result = evaluated
    curves = pd.read_csv(result.path / result.metrics["models"]["model-B v2"]["curves_file"])
    overall = curves[curves["population"] == "overall"]
    lab = table["label"].to_numpy()
    mask = ~np.isnan(lab) & (table["snr"] > 5).to_numpy()
    ref = M.purity_completeness(lab[mask] == 1, scores["model-B v2"][mask])
    np.testing.assert_allclose(overall["threshold"], ref.thresholds, rtol=1e-9)
    np.testing.assert_allclose(overall["purity"], ref.purity, rtol=1e-9)
    assert {"requirement", "origin=ss", "origin=gaia"} <= set(curves["population"])


def test_every_figure_written_and_embedded(evaluated):
    """With all columns present every figure is drawn, saved and embedded as a data URI."""
    _, _, result = evaluated
    figs = result.metrics["figures"]
    assert [f["name"] for f in figs] == [name for name, *_ in FIGURES]
    assert all(f["file"] and f["note"] is None for f in figs), figs
    page = result.report.read_text()
    srcs = re.findall(r"<img [^>]*src='([^']*)'", page)
    assert len(srcs) == len(FIGURES)
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    bare = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert "//" not in bare and "url(" not in bare and "href" not in bare  # nothing external
    assert "<script" not in bare and "<link" not in bare
    for f in figs:
        assert (result.path / f["file"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for model in ("model-A", "model-B v2"):  # the requirement table names both populations
        assert page.count(f"<td class=l>{model}</td>") >= 2


def test_missing_columns_skip_figures_with_notes(tmp_path):
    """A table with only label and scores: figures that need columns are skipped with a note."""
    rng = np.random.default_rng(1)
    table = pd.DataFrame({"label": rng.integers(0, 2, 200).astype(float)})
    r = np.clip(0.5 * table["label"].to_numpy() + rng.random(200) * 0.6, 0, 1)
    result = evaluate(table, {"m": r}, tmp_path / "out", n_boot=5)
    notes = {f["name"]: f["note"] for f in result.metrics["figures"]}
    assert notes["score_distribution"] is None and notes["purity_completeness"] is None
    assert "snr" in notes["reliability_vs_snr_fakes"]
    assert "apFlux" in notes["flux_vs_flux"]
    assert "origin" in notes["score_by_origin"]
    assert result.metrics["models"]["m"]["populations"]["requirement"] is None
    assert "no snr column" in result.metrics["populations"]["overall"]
    assert "Not drawn: needs column(s) psfFlux" in result.report.read_text()


def test_metrics_keys_documented(evaluated):
    """Every key that appears in metrics.json is documented in docs/metrics.md."""
    _, _, result = evaluated
    doc = DOCS.read_text()
    documented = set(re.findall(r"`([A-Za-z_]+)`", doc))

    def free(path):  # maps keyed by data values: model names, slice groups, package names
        return path in {("models",), ("provenance", "packages"), ("galleries",)} or (
            len(path) == 4 and path[:3] == ("models", "*", "slices")
        )

    def keys(obj, path=()):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if free(path):
                    yield from keys(v, (*path, "*"))
                else:
                    yield k
                    yield from keys(v, (*path, k))
        elif isinstance(obj, list):
            for v in obj:
                yield from keys(v, path)

    missing = {k for k in keys(result.metrics) if k not in documented}
    assert not missing, f"undocumented metrics.json keys: {sorted(missing)}"


def test_atomic_and_overwrite(tmp_path):
    """An existing output is refused unless overwrite; a failure leaves nothing behind."""
    table, scores = make_detections(n=200, seed=5)
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="already exists"):
        evaluate(table, scores, out, n_boot=0)
    assert (out / "keep.txt").exists()
    bad = dict(scores, broken=np.full(len(table), np.nan))
    with pytest.raises(InputError, match="broken"):
        evaluate(table, bad, tmp_path / "new", n_boot=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    with pytest.warns(RealBogusWarning):
        evaluate(table, scores, out, n_boot=0, overwrite=True)
    assert (out / "metrics.json").exists() and not (out / "keep.txt").exists()


def test_bad_inputs(tmp_path):
    """Bad labels, lengths and options are clear errors naming the problem."""
    table, scores = make_detections(n=100)
    with pytest.raises(InputError, match="'label' column"):
        evaluate(table.drop(columns="label"), scores, tmp_path / "a")
    t2 = table.assign(label=table["label"].fillna(2))
    with pytest.raises(InputError, match=r"label must be 1 \(Real\)"):
        evaluate(t2, scores, tmp_path / "a")
    with pytest.raises(InputError, match="shape"):
        evaluate(table, {"m": np.zeros(3)}, tmp_path / "a")
    with pytest.raises(ConfigError, match="unknown model"):
        evaluate(table, scores, tmp_path / "a", cutoffs={"zzz": 0.5})
    with pytest.raises(ConfigError, match="n_boot"):
        evaluate(table, scores, tmp_path / "a", n_boot=-1)


def test_empty_requirement_population_is_defined(tmp_path):
    """No detection in 5.5 <= SNR <= 6.5: the population is empty with NaN/None, not a crash."""
    table, scores = make_detections(n=200, seed=2)
    table["snr"] = np.where(table["snr"].between(5.4, 6.6), 9.0, table["snr"])
    with pytest.warns(RealBogusWarning, match="population requirement: empty sample"):
        result = evaluate(table, scores, tmp_path / "o", n_boot=5)
    req = result.metrics["models"]["model-A"]["populations"]["requirement"]
    assert req["n"] == 0 and req["window"] is None and req["auc"] is None
    assert not math.isnan(result.metrics["models"]["model-A"]["populations"]["overall"]["auc"])


def test_nullable_dtypes_are_read(tmp_path):
    """pandas nullable dtypes (Int64/boolean/Float64/string with NA) give the same numbers."""
    table, scores = make_detections(n=300, seed=8)
    nullable = table.assign(
        label=table["label"].astype("Int64"),
        isNegative=table["isNegative"].astype("boolean"),
        snr=table["snr"].astype("Float64"),
        origin=table["origin"].astype("string"),
        hasNanRowCol=pd.array([True, False, None] * 100, dtype="boolean"),
    )
    nullable.loc[0, "isNegative"] = pd.NA
    plain = table.assign(hasNanRowCol=[True, False, False] * 100)
    plain["isNegative"] = plain["isNegative"].astype(object)
    plain.loc[0, "isNegative"] = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RealBogusWarning)
        a = evaluate(nullable, scores, tmp_path / "a", n_boot=5).metrics
        b = evaluate(plain, scores, tmp_path / "b", n_boot=5).metrics
    assert a["data"]["n_flagged"] == 100
    for key in ("populations", "slices", "type_table", "calibration"):
        assert a["models"]["model-A"][key] == b["models"]["model-A"][key], key
    assert a["models"]["model-A"]["slices"]["isNegative"]["missing"]["n"] == 1


def test_empty_table_is_defined(tmp_path):
    """Zero detections: every number null, figures skipped with notes, the report still written."""
    table, scores = make_detections(n=40)
    table, scores = table.iloc[:0], {k: v[:0] for k, v in scores.items()}
    with pytest.warns(RealBogusWarning, match="empty sample"):
        result = evaluate(table, scores, tmp_path / "o", n_boot=5)
    overall = result.metrics["models"]["model-A"]["populations"]["overall"]
    assert overall["n"] == 0 and overall["auc"] is None and overall["intervals"] is None
    notes = {f["name"]: f["note"] for f in result.metrics["figures"]}
    assert notes["score_distribution"] == "no detections"
    assert result.report.exists()
