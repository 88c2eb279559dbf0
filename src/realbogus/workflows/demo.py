"""`realbogus demo`: the whole system, small, on a fresh install.

Simulates a small new survey, scores it with a built-in model (or with a model trained on the
spot, `retrain=True`), evaluates it and writes, under `out`:

    data/           the simulated stamp dataset (with preview.png)
    scores.parquet  the score table
    evaluation/     metrics.json, figures, curves
    report.html     the self-contained report (a copy of evaluation/report.html)
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import RealBogusWarning
from ..evaluation.evaluate import evaluate
from ..inference.scorer import Scorer
from ..io.atomic import atomic_path
from ..io.dataset import open_dataset
from ..io.tables import write_table
from ..model.package import load_package
from .score import score_dataset

__all__ = ["DemoResult", "run_demo"]

#: Seeds never used to build the built-in models (scripts/train_builtin.sh uses 1xx-3xx).
DEMO_SEED = 20261126


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its outputs, and the headline numbers."""

    out: Path
    report: Path
    scores: Path
    model_version: str
    n_detections: int
    metrics: dict


def run_demo(
    out: str | os.PathLike = "realbogus-demo",
    *,
    model: str = "rubin-v0.1",
    survey: str = "rubin",
    visits: int = 6,
    seed: int = DEMO_SEED,
    retrain: bool = False,
    train_visits: int = 40,
    epochs: int = 6,
    workers: int | None = None,
    stage: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Run the demo; see the module docstring for what it writes.

    Parameters
    ----------
    model : str
        Built-in model name or package path used to score (ignored with `retrain`).
    visits : int
        Science visits of the simulated survey to score.
    retrain : bool
        Simulate a separate training survey (`train_visits`, another seed), train a model for
        `epochs`, and use it instead of `model`.
    stage : callable(str), optional
        Told the name of each stage as it starts.
    progress : callable(done, total), optional
        Progress within the current stage.
    """
    from ..sim import simulate_survey

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = stage or (lambda _: None)

    package = None if retrain else load_package(model)  # fail before any work
    say(f"simulating {visits} {survey} visits (seed {seed})")
    data = simulate_survey(
        survey=survey,
        n_visits=visits,
        seed=seed,
        out=out / "data",
        workers=workers,
        progress=progress,
        overwrite=True,
    )
    if retrain:
        from ..training.train import TrainConfig, train

        say(f"simulating {train_visits} training visits (seed {seed + 1})")
        train_data = simulate_survey(
            survey=survey,
            n_visits=train_visits,
            seed=seed + 1,
            out=out / "train-data",
            workers=workers,
            progress=progress,
            overwrite=True,
            preview=False,
        )
        say(f"training for up to {epochs} epochs")
        shutil.rmtree(out / "model", ignore_errors=True)
        package_path = train(
            train_data,
            out / "model",
            # no test split: the demo evaluates on its own, separate simulation
            config=TrainConfig(epochs=epochs, seed=seed, lr=1e-3, fractions=(0.9, 0.1, 0.0)),
            name="demo",
            version=f"demo-retrained-s{seed}",
            progress=progress,
        )
        package = load_package(package_path)

    say(f"scoring with {package.version}")
    dataset = open_dataset(data)
    scores = score_dataset(Scorer(package), dataset, progress=progress)
    scores_path = write_table(scores, out / "scores.parquet")

    say("evaluating")
    table = dataset.table()
    with warnings.catch_warnings():
        # One-class slices (truth kinds are all Real or all Bogus) are listed in metrics.json.
        warnings.simplefilter("ignore", RealBogusWarning)
        result = evaluate(
            table,
            {package.version: scores["reliability"].to_numpy()},
            out / "evaluation",
            cutoffs={package.version: package.card.cutoff},
            overwrite=True,
            provenance={"demo_seed": seed, "survey": survey, "visits": visits},
        )
    report = out / "report.html"
    with atomic_path(report) as tmp:
        shutil.copyfile(result.report, tmp)
    return DemoResult(
        out=out,
        report=report,
        scores=scores_path,
        model_version=package.version,
        n_detections=len(table),
        metrics=result.metrics["models"][package.version],
    )
