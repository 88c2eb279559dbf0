"""Tests of realbogus.report: figures, HTML, and the report opened in real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from test_evaluate import make_detections

from realbogus.evaluation import metrics as M
from realbogus.evaluation.evaluate import evaluate
from realbogus.io.dataset import open_dataset
from realbogus.report import FIGURES, FigureData, render_html, write_figures

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
_CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var out = Array.prototype.map.call(document.images, function (img) {
    return {complete: img.complete, w: img.naturalWidth, h: img.naturalHeight};
  });
  var pre = document.createElement('pre');
  pre.id = 'imgcheck';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def two_model_report(tmp_path_factory) -> Path:
    """report.html for two models on a simulated test set."""
    table, scores = make_detections(n=800, seed=11)
    out = tmp_path_factory.mktemp("rep") / "report"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one-class slices are expected here; tested elsewhere
        evaluate(
            table,
            scores,
            out,
            cutoffs={"model-A": 0.5, "model-B v2": 0.3},
            n_boot=30,
            stamps=_fake_stamps,
        )
    return out


def _fake_stamps(rows: np.ndarray) -> np.ndarray:
    """Stamps for any rows: noise with a point source, a NaN strip on the first."""
    rng = np.random.default_rng(0)
    stamps = rng.normal(size=(len(rows), 3, 21, 21)).astype(np.float32)
    stamps[:, :, 10, 10] += 20
    stamps[:1, 0, :2] = np.nan
    return stamps


@pytest.fixture(scope="module")
def simulated_report(tmp_path_factory) -> Path:
    """report.html for two built-in models on a freshly simulated survey (the real chain)."""
    from realbogus.sim import simulate_survey
    from realbogus.workflows.evaluate import evaluate_packages

    root = tmp_path_factory.mktemp("simrep")
    data = simulate_survey(
        survey="rubin-small", n_visits=3, seed=77, out=root / "data", workers=1, preview=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truth-kind slices are one-class by construction
        evaluate_packages(["rubin-v0.1", "rubin-v0.3"], data, root / "report", n_boot=30)
    return root / "report"


def _expected_triplets(metrics: dict) -> int:
    galleries = list((metrics.get("galleries") or {}).values())
    galleries += [m["galleries"] for m in (metrics.get("alerts") or {}).get("models", {}).values()]
    return sum(len(v) for kinds in galleries for v in kinds.values())


def _assert_opens_in_chromium(report: Path, tmp_path: Path) -> None:
    """Chromium loads report.html offline, every <img> decodes at >= 800 px width, the galleries
    hold the expected triplets, and a screenshot is not blank."""
    page = (report / "report.html").read_text()
    metrics = json.loads((report / "metrics.json").read_text())
    assert [f["name"] for f in metrics["figures"]] == [name for name, *_ in FIGURES]
    n_drawn = sum(f["file"] is not None for f in metrics["figures"])
    n_drawn += len((metrics.get("alerts") or {}).get("figures", []))
    n_triplets = len(re.findall(r"<figure class=triplet>", page))
    assert n_triplets == _expected_triplets(metrics)
    for block in re.finditer(r"<div class=gallery [^>]*data-n='(\d+)'>(.*?)</div></div>", page):
        assert block.group(2).count("<figure class=triplet>") == int(block.group(1))
    n_figures = len(re.findall(r"<img ", page))
    assert n_figures == n_drawn + n_triplets
    probe = tmp_path / "probe.html"  # a copy with a tiny script that writes the check into the DOM
    probe.write_text(page.replace("</body>", _CHECK_SCRIPT + "</body>"))
    run = _chromium(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], tmp_path / "p1")
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r'<pre id="imgcheck">(.*?)</pre>', run.stdout, re.S)
    assert found, f"the check script did not run; DOM tail: {run.stdout[-500:]}"
    images = json.loads(found.group(1).replace("&quot;", '"'))
    for block in re.findall(r"by snr_bin</summary>(.*?)</details>", run.stdout, re.S):
        lows = [float(lo) for lo in re.findall(r'<td class="l">\[([-0-9.inf]+), ', block)]
        assert len(lows) >= 2 and lows == sorted(lows), lows  # as shown: numeric order
    assert len(images) == n_figures
    assert all(i["complete"] and i["w"] >= 800 and i["h"] > 0 for i in images), images

    shot = tmp_path / "shot.png"
    run = _chromium(
        [
            "--window-size=1280,2400",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            (report / "report.html").as_uri(),
        ],
        tmp_path / "p2",
    )
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    pixels = imread(shot)
    assert pixels.shape[:2] == (2400, 1280)
    assert pixels[..., :3].std() > 0.05  # text, tables and figures, not an empty page


@pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium)"
)
def test_report_opens_in_headless_chromium(two_model_report, tmp_path):
    """Generated detections: the report opens offline with every figure decoded."""
    _assert_opens_in_chromium(two_model_report, tmp_path)


@pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium)"
)
def test_simulated_survey_report_opens_in_headless_chromium(simulated_report, tmp_path):
    """rubin-v0.1 and rubin-v0.3 on a simulated survey: every figure drawn, none skipped, all decode."""
    metrics = json.loads((simulated_report / "metrics.json").read_text())
    assert set(metrics["models"]) == {"rubin-v0.1", "rubin-v0.3"}
    assert all(f["file"] is not None for f in metrics["figures"]), [
        f["note"] for f in metrics["figures"]
    ]
    labels = open_dataset(simulated_report.parent / "data").table(columns=["label"])["label"]
    for model, kinds in metrics["galleries"].items():  # the galleries are full where data allow
        assert len(kinds["random_real"]) == min(4, int((labels == 1).sum()))
        assert len(kinds["random_bogus"]) == min(4, int((labels == 0).sum()))
        fp = [t["reliability"] for t in kinds["false_positives"]]
        assert fp == sorted(fp, reverse=True)
        assert all(t["label"] == 0 for t in kinds["false_positives"])
        assert all(r >= metrics["models"][model]["cutoff"] for r in fp)
    _assert_opens_in_chromium(simulated_report, tmp_path)


def test_report_summary_and_numeric_slice_order(two_model_report):
    """The page opens with one verdict per model in words; SNR slices read in numeric order."""
    page = (two_model_report / "report.html").read_text()
    metrics = json.loads((two_model_report / "metrics.json").read_text())
    assert page.index("<section id=summary>") < page.index("id=requirement")
    for s in metrics["summary"]:
        window = metrics["models"][s["model"]]["populations"]["requirement"]["window"]
        assert s["verdict"] == ("meets" if window is not None else "does not meet")
        assert (" MEETS " if window is not None else " DOES NOT MEET ") in s["text"]
    block = re.search(r"model-A: by snr_bin</summary>(.*?)</details>", page, re.S).group(1)
    lows = [float(lo) for lo in re.findall(r"<td class=l>\[([-0-9.inf]+), ", block)]
    assert len(lows) >= 5 and lows == sorted(lows)


def test_report_tables_show_window_with_intervals_per_model(two_model_report):
    """The requirement table has one row per model and population, with interval text."""
    page = (two_model_report / "report.html").read_text()
    metrics = json.loads((two_model_report / "metrics.json").read_text())
    for model in ("model-A", "model-B v2"):
        for pop in ("overall", "requirement"):
            s = metrics["models"][model]["populations"][pop]
            row = re.search(
                rf"<tr><td class=l>{re.escape(model)}</td><td class=l title='[^']*'>{pop}</td>(.*?)</tr>",
                page,
            )
            assert row, (model, pop)
            if s["window"] is not None:
                assert f"[{s['window']['low']:.3f}, {s['window']['high']:.3f}]" in row.group(1)
                lo = s["intervals"]["window_low"]
                assert f"low in [{lo['low']:.3f}, {lo['high']:.3f}]" in row.group(1)
            else:
                assert ">none" in row.group(1)
    assert metrics["models"]["model-A"]["populations"]["overall"]["window"] is not None


def test_html_escapes_names_and_has_no_external_reference(tmp_path):
    """A hostile model name is escaped; the page references nothing outside itself."""
    table, scores = make_detections(n=150, seed=3)
    scores = {"<img src=x onerror=alert(1)>": scores["model-A"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate(table, scores, tmp_path / "r", n_boot=0)
    page = res.report.read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    bare = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert not re.search(r"https?:|//|url\(|<link|<script|@import", bare)


def test_write_figures_skips_with_notes(tmp_path):
    """Figures lacking columns are skipped with a note naming them; the rest are PNG files."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100).astype(bool)
    r = np.clip(0.4 * y + 0.6 * rng.random(100), 0, 1)
    data = FigureData(
        table=pd.DataFrame({"label": y.astype(float)}),
        scores={"m": r},
        cutoffs={"m": 0.5},
        curves={"m": {"overall": M.purity_completeness(y, r)}},
        calibrations={"m": M.calibration(y, r)},
    )
    records = write_figures(data, tmp_path)
    by_name = {rec.name: rec for rec in records}
    assert by_name["purity_completeness"].file == "purity_completeness.png"
    assert by_name["calibration"].file == "calibration.png"
    assert by_name["flux_vs_flux"].file is None and "apFlux" in by_name["flux_vs_flux"].note
    assert by_name["reliability_vs_psf_snr"].note.startswith("needs column(s) psfFlux, psfFluxErr")
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(rec.file for rec in records if rec.file)
    html = render_html(
        {
            "data": {
                "n_rows": 100,
                "n_real": int(y.sum()),
                "n_bogus": int((~y).sum()),
                "n_unlabelled": 0,
                "flag_source": None,
                "n_flagged": None,
            },
            "models": {},
            "provenance": {},
            "warnings": [],
            "realbogus_version": "x",
            "created": "now",
            "requirement": {"min_purity": 0.95, "min_completeness": 0.9},
            "bootstrap": {"level": 0.95, "n_boot": 0, "seed": 0},
            "populations": {},
        },
        records,
        tmp_path,
    )
    assert html.count("data:image/png;base64,") == len(written)
    assert "Not drawn: needs column(s) apFlux" in html


def test_no_fakes_skips_figure_seven(tmp_path):
    """Without injected fakes, Fig. 7 is skipped with a note, not drawn empty."""
    table, scores = make_detections(n=200, seed=6)
    table["origin"] = table["origin"].replace("injection", "ss")
    table["labelSource"] = "truth"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate(table, scores, tmp_path / "r", n_boot=0)
    notes = {f["name"]: f["note"] for f in res.metrics["figures"]}
    assert (
        notes["reliability_vs_snr_fakes"]
        == "no injected fakes (origin or labelSource == 'injection')"
    )
