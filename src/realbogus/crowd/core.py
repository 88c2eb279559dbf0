"""Shared core of the crowd aggregators: vote preparation, label tables, stability, skill.

Every aggregator (SWAP, majority vote, Dawid-Skene) takes the same input, a vote table plus an
optional reference ("gold") set, and returns the same `CrowdLabels`: one row per subject with
Pr(Real), a threshold label (the DMTN-337 "unstable" set), a stability flag (the "stable" set),
and one row per volunteer with their confusion estimates and skill in bits.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ConfigError, InputError
from ..io.atomic import atomic_path
from ..io.jsonfile import dumps_strict

__all__ = [
    "STABILITY_RULES",
    "PreparedVotes",
    "CrowdLabels",
    "prepare_votes",
    "as_gold",
    "skill_bits",
    "labels_from_trajectory",
    "read_labels",
    "AGGREGATORS",
    "Aggregator",
    "register_aggregator",
]

#: Stability rules: "dmtn" = DMTN-337 wording (the threshold holds at each of the last three
#: posterior values); "analysis-code" = the public analysis notebook (final value over the
#: threshold and every signed step of the last three < 0.01, the chain starting at the prior).
STABILITY_RULES = ("dmtn", "analysis-code")

_META_KEY = b"realbogus.crowd"


@dataclass(frozen=True)
class PreparedVotes:
    """Votes in time order, encoded as integer arrays (what aggregators work on).

    Attributes
    ----------
    subject_ids : ndarray of shape (n_subjects,)
        The distinct subject ids; `s` indexes into it.
    volunteers : ndarray of shape (n_volunteers,), object (str)
        The distinct volunteer keys; `v` indexes into it.
    s, v : ndarray of shape (n_votes,), int64
        Subject and volunteer index of each vote, in time order.
    y : ndarray of shape (n_votes,), int8
        The vote: 1 = "Real", 0 = "Bogus".
    gold : ndarray of shape (n_subjects,), int8
        Reference label of each subject: 1 Real, 0 Bogus, -1 none.
    """

    subject_ids: np.ndarray
    volunteers: np.ndarray
    s: np.ndarray
    v: np.ndarray
    y: np.ndarray
    gold: np.ndarray

    @property
    def n_subjects(self) -> int:
        """Number of distinct subjects."""
        return len(self.subject_ids)

    @property
    def n_volunteers(self) -> int:
        """Number of distinct volunteers."""
        return len(self.volunteers)

    def __len__(self) -> int:
        return len(self.y)


def as_gold(gold: pd.Series | pd.DataFrame | Mapping | None) -> pd.Series:
    """Normalise a reference set to a Series subject_id -> 0/1 (int8).

    Accepts a Series indexed by subject id, a mapping, or a DataFrame with columns `subject_id`
    and `label` (1 Real, 0 Bogus). Raises `InputError` on other labels or repeated subjects
    with conflicting labels.
    """
    if gold is None:
        return pd.Series([], dtype="int8")
    if isinstance(gold, pd.DataFrame):
        missing = [c for c in ("subject_id", "label") if c not in gold.columns]
        if missing:
            msg = f"reference table lacks columns {missing}; it needs subject_id and label"
            raise InputError(msg)
        gold = pd.Series(gold["label"].to_numpy(), index=gold["subject_id"].to_numpy())
    elif not isinstance(gold, pd.Series):
        gold = pd.Series(dict(gold))
    gold = gold.dropna()
    values = pd.to_numeric(gold, errors="coerce")
    bad = ~values.isin([0, 1])
    if bad.any():
        msg = f"reference labels must be 1 (Real) or 0 (Bogus); got {sorted(map(str, gold[bad].unique()))[:5]}"
        raise InputError(msg)
    values = values.astype("int8")
    dup = values.index.duplicated(keep=False)
    if dup.any():
        conflicting = values[dup].groupby(level=0).nunique()
        conflicting = conflicting[conflicting > 1]
        if len(conflicting):
            msg = (
                f"reference set gives conflicting labels for subjects {list(conflicting.index[:5])}"
            )
            raise InputError(msg)
        values = values[~values.index.duplicated()]
    return values


def prepare_votes(
    votes: pd.DataFrame, gold: pd.Series | pd.DataFrame | Mapping | None = None
) -> PreparedVotes:
    """Validate a vote table and encode it in time order.

    Parameters
    ----------
    votes : DataFrame
        One row per classification with columns `volunteer`, `subject_id`, `vote` (1 = "Real",
        0 = "Bogus"); when present, `created_at` then `classification_id` fix the time order
        (ties in the 1 s timestamps broken by id), otherwise row order is time order.
    gold : Series, DataFrame or mapping, optional
        Reference labels (see `as_gold`); subjects without votes are ignored.
    """
    missing = [c for c in ("volunteer", "subject_id", "vote") if c not in votes.columns]
    if missing:
        msg = f"vote table lacks columns {missing}; it needs volunteer, subject_id, vote"
        raise InputError(msg)
    keys = [c for c in ("created_at", "classification_id") if c in votes.columns]
    if keys and len(votes):
        votes = votes.sort_values(keys, kind="mergesort")
    if votes["volunteer"].isna().any() or votes["subject_id"].isna().any():
        msg = "vote table has missing volunteer or subject_id values"
        raise InputError(msg)
    raw = pd.to_numeric(votes["vote"], errors="coerce").to_numpy(dtype=float)
    if not np.isin(raw, (0.0, 1.0)).all():
        bad = np.unique(votes["vote"].to_numpy()[~np.isin(raw, (0.0, 1.0))].astype(str))[:5]
        msg = f"votes must be 1 (Real) or 0 (Bogus); got {list(bad)}"
        raise InputError(msg)
    s, subject_ids = pd.factorize(votes["subject_id"], sort=False)
    v, volunteers = pd.factorize(votes["volunteer"].astype(str), sort=False)
    gold_series = as_gold(gold)
    gold_arr = np.full(len(subject_ids), -1, dtype=np.int8)
    if len(gold_series):
        pos = pd.Index(subject_ids).get_indexer(gold_series.index)
        ok = pos >= 0
        gold_arr[pos[ok]] = gold_series.to_numpy()[ok]
    return PreparedVotes(
        subject_ids=np.asarray(subject_ids),
        volunteers=np.asarray(volunteers, dtype=object),
        s=s.astype(np.int64),
        v=v.astype(np.int64),
        y=raw.astype(np.int8),
        gold=gold_arr,
    )


def skill_bits(pl: np.ndarray | float, pd_: np.ndarray | float) -> np.ndarray:
    """Volunteer skill (Marshall et al. 2016, App. A): expected information at Pr = 0.5, bits.

    Parameters
    ----------
    pl, pd_ : array-like of shape (n,)
        P("Real" | Real) and P("Bogus" | Bogus). 0 for a random classifier (PL = 1 - PD),
        1 for a perfect one, 0.714 at the DMTN clip PL = PD = 0.95.
    """
    pl = np.asarray(pl, dtype=float)
    pd_ = np.asarray(pd_, dtype=float)

    def s(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x > 0, x * np.log2(np.where(x > 0, x, 1.0)), 0.0)

    p = 0.5
    return (
        p * (s(pl) + s(1 - pl))
        + (1 - p) * (s(pd_) + s(1 - pd_))
        - s(p * pl + (1 - p) * (1 - pd_))
        - s(p * (1 - pl) + (1 - p) * pd_)
    )


def group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Index of the first element of each element's group in a sorted key array, shape (n,)."""
    n = len(sorted_keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new[1:])
    first = np.flatnonzero(new)
    return np.repeat(first, np.diff(np.append(first, n)))


def labels_from_trajectory(
    s_sorted: np.ndarray,
    p_sorted: np.ndarray,
    n_subjects: int,
    *,
    prior: float,
    real_threshold: float = 0.9,
    bogus_threshold: float = 0.1,
    window: int = 3,
    stability: str = "dmtn",
    min_used: int = 0,
) -> dict[str, np.ndarray]:
    """Final Pr(Real), used-vote counts and stable/unstable flags from posterior trajectories.

    Parameters
    ----------
    s_sorted : ndarray of shape (n_used,), int64
        Subject index of each used vote, grouped by subject and in time order within a group.
    p_sorted : ndarray of shape (n_used,), float64
        Pr(Real) of that subject right after that vote.
    n_subjects : int
        Number of subjects; subjects without used votes keep `prior`.
    prior : float
        Pr(Real) before any vote (the start of every chain).
    stability : {"dmtn", "analysis-code"}
        See `STABILITY_RULES`. Both need at least `window` used votes.
    min_used : int
        Subjects with fewer used votes are in neither label set (the DMTN-337 analysis code
        scores only subjects with more than 4, i.e. `min_used=5`); 0 = no such filter.

    Returns
    -------
    dict of arrays of shape (n_subjects,)
        `p_real` (float64), `n_used` (int64), `unstable` and `stable` (bool).
    """
    if stability not in STABILITY_RULES:
        msg = f"stability must be one of {STABILITY_RULES}; got {stability!r}"
        raise ConfigError(msg)
    n_used = np.bincount(s_sorted, minlength=n_subjects).astype(np.int64)
    p_real = np.full(n_subjects, float(prior))
    ends = np.cumsum(n_used) - 1  # index of the last used vote of each subject
    has = n_used > 0
    p_real[has] = p_sorted[ends[has]]
    over = (p_real >= real_threshold) | (p_real <= bogus_threshold)
    stable = np.zeros(n_subjects, dtype=bool)
    enough = n_used >= window
    idx = np.flatnonzero(enough)
    if len(idx):
        last = ends[idx][:, None] - np.arange(window)[::-1][None, :]  # (k, window), time order
        chain = p_sorted[last]
        if stability == "dmtn":
            ok = (chain >= real_threshold).all(axis=1) | (chain <= bogus_threshold).all(axis=1)
        else:
            before = np.where(n_used[idx] > window, p_sorted[np.maximum(last[:, 0] - 1, 0)], prior)
            full = np.column_stack([before, chain])
            ok = (np.diff(full, axis=1) < 0.01).all(axis=1) & over[idx]
        stable[idx] = ok
    if min_used > 0:
        few = n_used < min_used
        over = over & ~few
        stable &= ~few
    return {"p_real": p_real, "n_used": n_used, "unstable": over, "stable": stable}


@dataclass(frozen=True)
class CrowdLabels:
    """Aggregated crowd labels: the common output of every aggregator.

    Attributes
    ----------
    subjects : DataFrame, one row per subject
        `subject_id`, `p_real` (Pr(Real), float64), `label` (Int8: 1 if p_real > 0.5, 0 if
        < 0.5, <NA> at exactly 0.5), `unstable` (bool: p_real >= 0.9 or <= 0.1, the DMTN-337
        unstable set), `stable` (bool: the stable set), `n_votes` (all votes), `n_used` (votes
        the method used), `reference` (Int8 reference label or <NA>).
    volunteers : DataFrame, one row per volunteer
        `volunteer`, `n_classifications`, `n_reference`, `used` (bool), `PL` = P("Real"|Real),
        `PD` = P("Bogus"|Bogus), `skill_bits`.
    method : str
        Registered aggregator name.
    config : dict
        The options used (JSON-serialisable); stored with the labels on disk.
    """

    subjects: pd.DataFrame
    volunteers: pd.DataFrame
    method: str
    config: dict = field(default_factory=dict)

    def label_set(self, which: str = "stable") -> pd.DataFrame:
        """Rows of the stable or unstable set (`label` is 1 or 0 there)."""
        if which not in ("stable", "unstable"):
            msg = f"which must be 'stable' or 'unstable'; got {which!r}"
            raise ConfigError(msg)
        return self.subjects[self.subjects[which].to_numpy()].reset_index(drop=True)

    def to_parquet(self, path: str | os.PathLike) -> Path:
        """Write the subject table atomically to Parquet, method and config in the metadata."""
        path = Path(path)
        table = pa.Table.from_pandas(self.subjects, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[_META_KEY] = dumps_strict(
            {"method": self.method, "config": self.config}, indent=None
        ).encode()
        table = table.replace_schema_metadata(meta)
        _atomic_parquet(table, path)
        return path


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_labels(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """Read a labels Parquet file written by `CrowdLabels.to_parquet`: (subjects, info)."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        msg = f"{path}: not a readable labels Parquet file ({exc})"
        raise InputError(msg) from exc
    needed = ["subject_id", "p_real", "label", "stable", "unstable"]
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        msg = f"{path}: not a crowd labels file (missing columns {missing})"
        raise InputError(msg)
    raw = (table.schema.metadata or {}).get(_META_KEY)
    info = json.loads(raw) if raw else {}
    return table.to_pandas(), info


def build_labels(
    pv: PreparedVotes,
    traj: dict[str, np.ndarray],
    *,
    method: str,
    config: dict,
    pl: np.ndarray,
    pd_: np.ndarray,
    used_volunteer: np.ndarray,
) -> CrowdLabels:
    """Assemble the `CrowdLabels` tables from per-subject and per-volunteer arrays."""
    p = traj["p_real"]
    label = pd.array(np.where(p > 0.5, 1, 0), dtype="Int8")
    label[p == 0.5] = pd.NA
    gold = pd.array(pv.gold, dtype="Int8")
    gold[pv.gold < 0] = pd.NA
    subjects = pd.DataFrame(
        {
            "subject_id": pv.subject_ids,
            "p_real": p,
            "label": label,
            "unstable": traj["unstable"],
            "stable": traj["stable"],
            "n_votes": np.bincount(pv.s, minlength=pv.n_subjects).astype(np.int64),
            "n_used": traj["n_used"],
            "reference": gold,
        }
    )
    is_ref = pv.gold[pv.s] >= 0
    volunteers = pd.DataFrame(
        {
            "volunteer": pv.volunteers.astype(str),
            "n_classifications": np.bincount(pv.v, minlength=pv.n_volunteers).astype(np.int64),
            "n_reference": np.bincount(pv.v, weights=is_ref, minlength=pv.n_volunteers).astype(
                np.int64
            ),
            "used": used_volunteer,
            "PL": pl,
            "PD": pd_,
            "skill_bits": skill_bits(pl, pd_),
        }
    )
    return CrowdLabels(subjects=subjects, volunteers=volunteers, method=method, config=config)


def grouped_cumsum(
    keys: np.ndarray, values: np.ndarray, *, exclusive: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Running sums of `values` within groups of `keys`, keeping the input (time) order inside groups.

    Parameters
    ----------
    keys : ndarray of shape (n,), int64
        Group index of each element.
    values : ndarray of shape (n,) or (n, k)
        Values to accumulate (converted to float64); columns are accumulated separately.
    exclusive : bool
        Sum of the *earlier* elements of the group only (the element itself excluded).

    Returns
    -------
    order : ndarray of shape (n,), int64
        Stable sort of `keys`: `keys[order]` is grouped, time order kept inside a group.
    sums : ndarray of shape (n,) or (n, k), float64
        Running sums in `order` order.
    """
    order = np.argsort(keys, kind="stable")
    x = np.asarray(values, dtype=np.float64)[order]
    total = np.cumsum(x, axis=0)
    starts = group_starts(keys[order])
    before = total[starts] - x[starts]  # running total just before each group
    sums = total - before
    if exclusive:
        sums -= x
    return order, sums


def scatter(order: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """Undo a permutation: out[order] = sorted_values."""
    out = np.empty_like(sorted_values)
    out[order] = sorted_values
    return out


Aggregator = Callable[..., CrowdLabels]
AGGREGATORS: dict[str, Aggregator] = {}


def register_aggregator(name: str) -> Callable[[Aggregator], Aggregator]:
    """Decorator registering an aggregator under `name` (an existing name is an error)."""

    def deco(func: Aggregator) -> Aggregator:
        if name in AGGREGATORS and AGGREGATORS[name] is not func:
            msg = f"an aggregator named {name!r} is already registered"
            raise ConfigError(msg)
        AGGREGATORS[name] = func
        return func

    return deco
