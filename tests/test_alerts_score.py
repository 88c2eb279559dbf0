"""Scoring alert packets with a model package, and `realbogus score PATH...`."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from realbogus.alerts import AlertScores, read_alerts, score_alerts
from realbogus.alerts._avro import decode_confluent, encode_confluent
from realbogus.alerts.units import to_units
from realbogus.alerts.writer import SIDE_TABLE
from realbogus.cli import app
from realbogus.inference.scorer import Scorer
from realbogus.model.card import ModelCard
from realbogus.model.package import init_package, load_package, save_package


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory):
    """A randomly initialised 51-px package (seeded)."""
    return init_package(tmp_path_factory.mktemp("pkg") / "untrained", stamp_size=51, seed=3)


@pytest.fixture(scope="module")
def scorer(package_dir):
    return Scorer(load_package(package_dir), device="cpu")


@pytest.fixture(scope="module")
def sources(shared_data):
    ztf = sorted((shared_data / "ztf" / "alerts").glob("*.avro"))[:60]
    rubin = sorted((shared_data / "rubin" / "alerts").glob("*.msg"))[:30]
    return ztf + rubin


def test_scores_equal_scoring_the_decoded_stamps(scorer, sources):
    """score_alerts = read_alerts + the survey's conventions (`to_units`; this card records no
    pixel units, so each alert keeps its own) + Scorer.score_stamps; ids and survey scores pass
    through."""
    result = score_alerts(scorer, sources, workers=2, chunk_size=16)
    batch = read_alerts(sources, stamp_size=51, workers=1)
    assert result.failures == [] and len(result.table) == 90
    expected = scorer.predict(to_units(batch, None, "untrained")[0].stamps.data)
    # Same stamps; torch may round the last bit differently for another batch composition.
    np.testing.assert_allclose(result.table.reliability.to_numpy(), expected, rtol=0, atol=1e-6)
    assert (result.table.diaSourceId.to_numpy() == batch.table.diaSourceId.to_numpy(np.int64)).all()
    ztf = result.table.survey == "ztf"
    assert (result.table.candid[ztf].to_numpy(np.int64) == result.table.diaSourceId[ztf]).all()
    np.testing.assert_array_equal(
        result.table.drb.to_numpy(float, na_value=np.nan),
        batch.table.drb.to_numpy(float, na_value=np.nan),
    )
    np.testing.assert_array_equal(
        result.table.surveyReliability[~ztf].to_numpy(float),
        batch.table.reliability[~ztf.to_numpy()].to_numpy(float),
    )
    assert set(result.table.reliabilityVersion) == {"untrained"}
    assert (result.table.passes_cutoff == (result.table.reliability >= 0.5)).all()


def test_torch_scorer_scores_here_while_workers_decode(package_dir, sources):
    """Without ONNX Runtime (torch, as on a GPU) workers only decode; the scores are the same."""
    onnx = score_alerts(
        Scorer(load_package(package_dir), device="cpu"), sources, workers=2, chunk_size=16
    )
    torch_scorer = Scorer(load_package(package_dir), device="cpu", backend="torch")
    in_main = score_alerts(torch_scorer, sources, workers=2, chunk_size=16)
    np.testing.assert_allclose(
        in_main.table.reliability.to_numpy(), onnx.table.reliability.to_numpy(), rtol=0, atol=1e-5
    )
    assert (
        in_main.table.diaSourceId == onnx.table.diaSourceId
    ).all() and in_main.failures == onnx.failures


def _with_units(package_dir, tmp_path, units: str):
    package = load_package(package_dir)
    card = ModelCard(
        **{**package.card.model_dump(), "pixel_units": units, "version": f"{units}-only"}
    )
    return Scorer(load_package(save_package(tmp_path / units, package.model, card)), device="cpu")


def test_ztf_stamps_are_converted_to_njy_with_magzpsci(package_dir, sources, tmp_path):
    """A nJy card scores ZTF alerts on DN stamps x 10**(0.4 (31.4 - magzpsci)); Rubin's are unchanged."""
    result = score_alerts(_with_units(package_dir, tmp_path, "nJy"), sources, workers=1)
    in_workers = score_alerts(
        _with_units(package_dir, tmp_path / "w", "nJy"), sources, workers=2, chunk_size=16
    )
    pd.testing.assert_frame_equal(
        in_workers.table.drop(columns="reliabilityVersion"),
        result.table.drop(columns="reliabilityVersion"),
    )
    assert in_workers.failures == result.failures
    batch = read_alerts(sources, stamp_size=51, workers=1)
    zp = batch.table.magzpsci.to_numpy(float, na_value=np.nan)
    ztf = (batch.table.survey == "ztf").to_numpy()
    convertible = ~ztf | np.isfinite(zp)
    assert len(result.table) == len(batch) and convertible.sum() > 80
    assert len(result.failures) == (~convertible).sum()
    assert result.table.reliability.isna().to_numpy().tolist() == (~convertible).tolist()
    result = AlertScores(result.table[convertible].reset_index(drop=True), result.failures)
    assert all("no usable magzpsci" in f.reason for f in result.failures)
    expected = np.where(ztf, 10.0 ** (0.4 * (31.4 - zp)), 1.0)[convertible]
    np.testing.assert_allclose(result.table.unitFactor.to_numpy(float), expected, rtol=1e-12)
    assert (result.table.stampUnits[result.table.survey == "ztf"] == "DN").all()
    njy = batch.stamps.data[convertible] * expected.astype(np.float32)[:, None, None, None]
    scorer = _with_units(package_dir, tmp_path / "again", "nJy")
    np.testing.assert_allclose(
        result.table.reliability.to_numpy(), scorer.predict(njy), rtol=0, atol=1e-6
    )


def test_unknown_units_are_a_failure_not_a_silent_score(package_dir, sources, tmp_path):
    """A card in units no alert is in rejects every alert with the reason."""
    result = score_alerts(_with_units(package_dir, tmp_path, "ADU"), sources, workers=1)
    assert len(result.table) == len(result.failures) == 90
    assert result.table.reliability.isna().all() and (result.table.status == "unconvertible").all()
    assert all(
        "no conversion to ADU; model ADU-only expects ADU" in f.reason for f in result.failures
    )


def test_cli_scores_writes_alerts_and_flags_failures(package_dir, shared_data, tmp_path):
    """`realbogus score PATH...`: scores, writes packets back, exits 1 when a packet failed."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("169298433320943633.msg", "169298432598474839.msg"):
        (folder / name).write_bytes((shared_data / "rubin" / "alerts" / name).read_bytes())
    runner = CliRunner()
    out = tmp_path / "scores.parquet"
    args = ["score", str(folder), "--model", str(package_dir), "--out", str(out), "--workers", "1"]
    ok = runner.invoke(app, [*args, "--write-alerts", str(tmp_path / "written")])
    assert ok.exit_code == 0, ok.output
    table = pd.read_parquet(out)
    assert set(table.diaSourceId) == {169298433320943633, 169298432598474839}
    written = sorted((tmp_path / "written").glob("*.msg"))
    assert len(written) == 2
    _, record = decode_confluent(written[0].read_bytes(), where="w")
    _, original = decode_confluent((folder / written[0].name).read_bytes(), where="o")
    # Why #4: Rubin's own reliability was overwritten; now kept, ours in the side table
    assert record == original
    side = pd.read_parquet(tmp_path / "written" / SIDE_TABLE).set_index("diaSourceId")
    assert side.reliability[record["diaSourceId"]] == pytest.approx(
        float(table.set_index("diaSourceId").reliability[record["diaSourceId"]])
    )
    assert set(side.reliabilityVersion) == {"untrained"} and not side.in_packet.any()
    _, record = decode_confluent((folder / "169298433320943633.msg").read_bytes(), where="x")
    (folder / "broken.msg").write_bytes(encode_confluent(dict(record, cutoutDifference=None), 900))
    bad = runner.invoke(app, [*args[:5], str(tmp_path / "scores2.parquet"), *args[6:]])
    assert bad.exit_code == 1
    assert "broken.msg" in bad.output and "cutoutDifference is missing" in bad.output
    again = pd.read_parquet(tmp_path / "scores2.parquet")  # the good ones and the broken one's row
    assert len(again) == 3 and list(again.status).count("decode-failed") == 1


def test_cli_refuses_a_folder_without_alert_files(package_dir, tmp_path):
    """A folder with no alert files is an error, not an empty score table; a dataset gets a hint."""
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "manifest.json").write_text("{}")
    (tmp_path / "dataset" / "part-00000.parquet").write_bytes(b"")
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(
        app, ["score", str(tmp_path / "dataset"), "--model", str(package_dir), "--out", str(out)]
    )
    assert result.exit_code == 1 and "no alert files" in result.output and "--data" in result.output
    assert not out.exists()


def test_cli_precision_on_real_alerts(shared_data, tmp_path):
    """--precision bf16 on the real Rubin alerts with rubin-v0.1: the gate's line, the column,
    scores within 0.01 of the fp32 run; --precision int8 is refused there and scores fp32."""
    folder = shared_data / "rubin" / "alerts"
    runner = CliRunner()
    tables = {}
    for precision in ("fp32", "bf16", "int8"):
        out = tmp_path / f"{precision}.parquet"
        args = ["score", "--model", "rubin-v0.1", "--out", str(out), "--precision", precision]
        result = runner.invoke(app, [*args, "--workers", "1", str(folder)])
        assert result.exit_code == 0, result.output
        tables[precision] = pd.read_parquet(out)
        if precision != "fp32":
            assert f"{precision} " in result.output and "126 check stamps" in result.output
    assert set(tables["fp32"]["precision"]) == {"fp32"}
    assert set(tables["bf16"]["precision"]) == {"bf16"}  # accepted on these stamps
    deviation = np.abs(tables["bf16"]["reliability"] - tables["fp32"]["reliability"]).max()
    assert 0 < deviation <= 0.01
    # int8 (first conv block fp32) flips none of these 126 but is off by 0.0168 > 0.01: refused
    assert set(tables["int8"]["precision"]) == {"fp32"}
    np.testing.assert_array_equal(tables["int8"]["reliability"], tables["fp32"]["reliability"])


def test_refused_alerts_keep_a_row_with_the_reason(shared_data):
    """Why #4: alerts without a usable magzpsci were missing from the table (the README promises
    one row per input); now they are rows with reliability NaN, status and reason."""
    folder = shared_data / "ztf" / "alerts"
    result = score_alerts(Scorer(load_package("ztf-v0.2"), device="cpu"), folder)
    n_files = len(list(folder.glob("*.avro")))
    assert len(result.table) == n_files == 611
    refused = result.table[result.table.status == "unconvertible"]
    assert len(refused) == len(result.failures) >= 1
    assert refused.reliability.isna().all() and not refused.passes_cutoff.any()
    assert refused.reason.str.contains("no usable magzpsci").all()
    assert refused.diaSourceId.notna().all()  # the alert's id is known, only its units are not


def test_a_model_for_another_survey_is_refused_unless_forced(shared_data):
    """Why #3: a ZTF model on Rubin alerts (or the reverse) scored them without a word."""
    rubin = sorted((shared_data / "rubin" / "alerts").glob("*.msg"))[:8]
    refused = score_alerts(Scorer(load_package("ztf-v0.2"), device="cpu"), rubin, workers=1).table
    assert len(refused) == 8 and refused.reliability.isna().all()
    assert (refused.status == "wrong-survey").all()
    assert refused.reason.str.contains("ztf-v0.2 is for ztf; this alert is rubin").all()
    assert refused.reason.str.contains("--force").all()
    ztf = sorted((shared_data / "ztf" / "alerts").glob("*.avro"))[:8]
    scorer = Scorer(load_package("rubin-v0.1"), device="cpu")
    assert (score_alerts(scorer, ztf, workers=1).table.status == "wrong-survey").all()
    forced = score_alerts(scorer, ztf, workers=1, force=True).table
    assert len(forced) == 8
    assert forced.reliability.notna().all() and (forced.status == "scored").all()
    assert forced.reason.str.startswith("forced (--force)").all()


#: `realbogus score ...` in this process and in every decoding worker it forks, each writing
#: "<pid> <whether torch is imported>" to $TORCH_LOG when it ends.
_TORCH_FREE_SCRIPT = """
import os, runpy, sys
from multiprocessing import util

def report():
    with open(os.environ["TORCH_LOG"], "a") as log:
        log.write(f"{os.getpid()} {'torch' in sys.modules}\\n")

def in_worker(_):
    util.Finalize(None, report, exitpriority=0)

util.register_after_fork(report, in_worker)
sys.argv = ["realbogus", *sys.argv[1:]]
try:
    runpy.run_module("realbogus.cli", run_name="__main__")
except SystemExit as exc:
    code = exc.code
report()
sys.exit(code)
"""


def test_onnx_scoring_of_an_alert_folder_never_imports_torch(shared_data, tmp_path):
    """`realbogus score` on alert files with ONNX Runtime: neither the process nor its decoding
    workers import torch (loading the package, the card, the graph, decoding and scoring)."""
    folder = tmp_path / "alerts"
    folder.mkdir()
    for path in sorted((shared_data / "ztf" / "alerts").glob("*.avro"))[:48]:
        (folder / path.name).symlink_to(path)
    log, out = tmp_path / "torch.log", tmp_path / "scores.parquet"
    command = [sys.executable, "-c", _TORCH_FREE_SCRIPT, "score", "--model", "ztf-v0.1"]
    command += ["--backend", "onnx", "--workers", "2", "--out", str(out), str(folder)]
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "TORCH_LOG": str(log)}
    )
    assert done.returncode in (0, 1), done.stderr  # 1: alerts without magzpsci are refused
    table = pd.read_parquet(out)
    assert len(table) == 48 and (table["status"] == "scored").sum() >= 40
    lines = [line.split() for line in log.read_text().splitlines()]
    assert len(lines) == 3, lines  # this process and its two workers
    assert [torch for _, torch in lines] == ["False"] * 3, lines
