"""The registry of label aggregators and the one entry point, `aggregate`.

An aggregator is a function ``f(votes: PreparedVotes, **options) -> CrowdLabels``. The built-ins
are ``swap`` (DMTN-337's modified SWAP), ``majority`` and ``dawid-skene``; others are added with
`register_aggregator`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd

from ..errors import ConfigError
from .core import CrowdLabels, PreparedVotes, prepare_votes

__all__ = ["register_aggregator", "get_aggregator", "aggregator_names", "aggregate"]

Aggregator = Callable[..., CrowdLabels]
_REGISTRY: dict[str, Aggregator] = {}


def register_aggregator(name: str) -> Callable[[Aggregator], Aggregator]:
    """Decorator registering an aggregator under `name` (an existing name is an error)."""

    def deco(func: Aggregator) -> Aggregator:
        if name in _REGISTRY and _REGISTRY[name] is not func:
            msg = f"an aggregator named {name!r} is already registered"
            raise ConfigError(msg)
        _REGISTRY[name] = func
        return func

    return deco


def _load_builtins() -> None:
    from . import baselines, swap  # noqa: F401  (importing registers them)


def aggregator_names() -> tuple[str, ...]:
    """Names of the registered aggregators, sorted."""
    _load_builtins()
    return tuple(sorted(_REGISTRY))


def get_aggregator(name: str) -> Aggregator:
    """The aggregator registered as `name`; `ConfigError` listing the valid names otherwise."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        msg = f"unknown aggregation method {name!r}; choose one of {sorted(_REGISTRY)}"
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
