"""The registry of label aggregators and the one entry point, `aggregate`.

An aggregator is a function ``f(votes: PreparedVotes, **options) -> CrowdLabels``. The built-ins
are ``swap`` (DMTN-337's modified SWAP), ``majority`` and ``dawid-skene``; others are added with
`register_aggregator`.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ..errors import ConfigError
from . import baselines, swap  # noqa: F401  (importing them registers the built-ins)
from .core import (
    AGGREGATORS,
    Aggregator,
    CrowdLabels,
    PreparedVotes,
    prepare_votes,
    register_aggregator,
)

__all__ = [
    "register_aggregator",
    "get_aggregator",
    "aggregator_names",
    "aggregate",
    "aggregate_export",
]


def aggregator_names() -> tuple[str, ...]:
    """Names of the registered aggregators, sorted."""
    return tuple(sorted(AGGREGATORS))


def get_aggregator(name: str) -> Aggregator:
    """The aggregator registered as `name`; `ConfigError` listing the valid names otherwise."""
    try:
        return AGGREGATORS[name]
    except KeyError:
        msg = f"unknown aggregation method {name!r}; choose one of {sorted(AGGREGATORS)}"
        raise ConfigError(msg) from None


def aggregate(
    votes: pd.DataFrame | PreparedVotes,
    gold: pd.Series | pd.DataFrame | Mapping | None = None,
    *,
    method: str = "swap",
    **options: object,
) -> CrowdLabels:
    """Aggregate volunteer votes into per-subject labels.

    Parameters
    ----------
    votes : DataFrame or PreparedVotes
        One row per classification: `volunteer`, `subject_id`, `vote` (1 Real, 0 Bogus) and,
        for the time order, `created_at` and `classification_id` (see `prepare_votes`).
    gold : Series, DataFrame or mapping, optional
        Reference labels subject_id -> 1/0 (ignored when `votes` is already prepared).
    method : str
        A registered aggregator: "swap", "majority", "dawid-skene", ...
    **options
        Keyword options of that aggregator (validated by it).
    """
    func = get_aggregator(method)
    pv = votes if isinstance(votes, PreparedVotes) else prepare_votes(votes, gold)
    return func(pv, **options)


def aggregate_export(
    path: str,
    *,
    method: str = "swap",
    reference: str | pd.DataFrame | None = None,
    task: str = "T0",
    answers: tuple[str, ...] = ("Real", "Bogus"),
    real_answer: str | None = None,
    workflow_id: int | None = None,
    workflow_version: str | None = None,
    **options: object,
) -> tuple[CrowdLabels, dict]:
    """Parse a Panoptes export and aggregate it; subjects gain `diaSourceId`, `origin`, retirement.

    Parameters
    ----------
    path : path-like
        Classification export CSV.
    method : str
        Registered aggregator.
    reference : path or DataFrame, optional
        Reference CSV (`panoptes.read_reference`); default: the export's feedback metadata.
    task, answers, real_answer, workflow_id, workflow_version
        See `panoptes.read_classifications`.
    **options
        Aggregator options.

    Returns
    -------
    (CrowdLabels, dict)
        The labels and the parser's dropped-row counts.
    """
    from .panoptes import read_classifications

    parsed = read_classifications(
        path,
        task=task,
        answers=answers,
        real_answer=real_answer,
        workflow_id=workflow_id,
        workflow_version=workflow_version,
        reference=reference,
    )
    labels = aggregate(parsed.votes, parsed.gold, method=method, **options)
    extra = parsed.subjects[["subject_id", "diaSourceId", "origin", "retired", "retirement_reason"]]
    subjects = labels.subjects.merge(extra, on="subject_id", how="left", validate="one_to_one")
    out = CrowdLabels(
        subjects=subjects,
        volunteers=labels.volunteers,
        method=labels.method,
        config={
            **labels.config,
            "export": str(path),
            "task": task,
            "answers": list(parsed.answers),
            "real_answer": parsed.real_answer,
        },
    )
    return out, parsed.dropped
