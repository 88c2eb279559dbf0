"""Evaluating model packages on a labelled stamp dataset: score each, then `evaluate` them side by side."""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError, PackageError, RealBogusWarning
from ..evaluation.evaluate import EvaluationResult, evaluate, evaluate_alerts
from ..inference.scorer import SCORED, Scorer
from ..io.dataset import open_dataset
from ..model.package import load_package
from ..report.gallery import dataset_loader
from .alerts import score_alert_folder
from .score import score_dataset

__all__ = ["evaluate_packages"]


def evaluate_packages(
    packages: Sequence[str | os.PathLike],
    data: str | os.PathLike | None,
    out: str | os.PathLike,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    alerts: str | os.PathLike | None = None,
    force: bool = False,
    **options: object,
) -> EvaluationResult:
    """Score a stamp dataset with each model package, then :func:`evaluate` them side by side.

    Parameters
    ----------
    packages : sequence of str or path
        Model package names (built-in versions) or paths, as ``realbogus.load_package``
        takes them.
    data : path-like or None
        A dataset directory (``realbogus.io.dataset``) with a ``label`` column; None with
        `alerts` writes a report of the real alerts alone (:func:`evaluate_alerts`).
    out : path-like
        Report directory.
    progress : callable (stage, done, total), optional
        ``stage`` is ``"score <model>"`` or ``"evaluate"``.
    alerts : path-like, optional
        Folder of Rubin or ZTF alert packets with the survey's own score, scored by the same
        packages for the report's real-alerts section.
    force : bool
        Score a dataset of another survey or pixel unit than a model's card states (the CLI's
        ``--force``); the report's scores then come with that reason.
    **options
        Passed to :func:`evaluate` (n_boot, seed, overwrite, ...).

    Returns
    -------
    EvaluationResult
    """
    if not packages:
        msg = "give at least one model package"
        raise ConfigError(msg)
    allowed = set(inspect.signature(evaluate).parameters) - {
        "table",
        "scores",
        "out",
        "cutoffs",
        "provenance",
        "progress",
        "stamps",
        "alerts",
    }
    unknown = sorted(set(options) - allowed)
    if unknown:
        msg = f"unknown option(s) {unknown} for evaluate; allowed: {sorted(allowed)}"
        raise ConfigError(msg)
    if data is None and alerts is None:
        msg = "give a labelled dataset (--data), a folder of alert packets (--alerts), or both"
        raise ConfigError(msg)
    out = Path(out)
    if out.exists() and not options.get("overwrite", False):
        msg = f"{out} already exists; choose another directory or pass --overwrite (from Python: overwrite=True)"
        raise InputError(msg)
    if data is None:
        return _evaluate_alerts_only(packages, alerts, out, progress, options)
    dataset = open_dataset(data)
    table = dataset.table()
    scores: dict[str, np.ndarray] = {}
    cutoffs: dict[str, float] = {}
    sources: dict[str, str] = {}
    loaded = []
    not_scored = np.zeros(len(table), bool)
    statuses: dict[str, int] = {}
    for ref in packages:
        package = load_package(ref)
        stage = f"score {ref}"
        scored = score_dataset(
            Scorer(package),
            dataset,
            progress=None if progress is None else (lambda d, t, s=stage: progress(s, d, t)),
            force=force,
        )
        if len(scored) != len(table):
            msg = f"{ref}: the scorer returned {len(scored)} rows for {len(table)} detections"
            raise InputError(msg)
        if "diaSourceId" in table.columns and not np.array_equal(
            scored["diaSourceId"].to_numpy(), table["diaSourceId"].to_numpy()
        ):
            msg = f"{ref}: the score table is not in dataset order (diaSourceId differs)"
            raise InputError(msg)
        version = str(package.version)
        name = version
        k = 1
        while name in scores:  # two packages with the same version string
            k += 1
            name = f"{version} ({k})"
        scores[name] = scored["reliability"].to_numpy(np.float64)
        refused = (scored["status"] != SCORED).to_numpy()
        for status in scored.loc[refused & ~not_scored, "status"]:
            statuses[status] = statuses.get(status, 0) + 1
        not_scored |= refused
        cutoffs[name] = _card_cutoff(package)
        sources[name] = str(ref)
        loaded.append((name, package))
    for col in ("valid_fraction", "edge"):
        if col not in table.columns and col in scored.columns:
            table[col] = scored[col].to_numpy()
    provenance = {
        "data": str(Path(data)),
        "data_content_hash": dataset.manifest.get("content_hash"),
        "packages": sources,
        "not_scored": statuses,
    }
    if not_scored.any():  # no score to judge: left out of every model's metrics alike
        warnings.warn(
            f"{data}: {int(not_scored.sum())} of {len(table)} detections were not scored "
            f"({', '.join(f'{n} {k}' for k, n in statuses.items())}; docs/design.md, 'Input "
            "faults') and are left out of the metrics",
            RealBogusWarning,
            stacklevel=2,
        )
        keep = ~not_scored
        table = table[keep].reset_index(drop=True)
        scores = {k: v[keep] for k, v in scores.items()}
    run = score_alert_folder(loaded, alerts) if alerts is not None else None
    return evaluate(
        table,
        scores,
        out,
        cutoffs=cutoffs,
        provenance=provenance,
        stamps=dataset_loader(dataset),
        alerts=run,
        progress=None if progress is None else (lambda d, t: progress("evaluate", d, t)),
        **options,
    )


def _evaluate_alerts_only(
    packages: Sequence[str | os.PathLike],
    alerts: str | os.PathLike,
    out: Path,
    progress: Callable[[str, int, int], None] | None,
    options: dict,
) -> EvaluationResult:
    """Score the alert packets with each package and write the alerts-only report."""
    ignored = sorted(set(options) - {"overwrite"})
    if ignored:  # n_boot, seed, ...: options of the labelled evaluation
        warnings.warn(
            f"{ignored} apply to a labelled dataset (--data) and are ignored for --alerts alone",
            RealBogusWarning,
            stacklevel=3,
        )
    loaded = []
    for k, ref in enumerate(packages):
        if progress is not None:
            progress("score alerts", k, len(packages))
        package = load_package(ref)
        loaded.append((str(package.version), package))
    names = [n for n, _ in loaded]
    if len(set(names)) != len(names):
        msg = f"two packages share a version string ({names}); evaluate --alerts needs distinct versions"
        raise ConfigError(msg)
    run = score_alert_folder(loaded, alerts)
    if progress is not None:
        progress("score alerts", len(packages), len(packages))
    provenance = {
        "alerts": str(Path(alerts)),
        "packages": {n: str(r) for n, r in zip(names, packages, strict=True)},
    }
    return evaluate_alerts(
        run, out, overwrite=bool(options.get("overwrite", False)), provenance=provenance
    )


def _card_cutoff(package: object) -> float:
    """The package card's reliability cutoff."""
    value = getattr(getattr(package, "card", None), "cutoff", None)
    if value is None:
        msg = f"model package {getattr(package, 'source', package)} has no card cutoff"
        raise PackageError(msg)
    return float(value)
