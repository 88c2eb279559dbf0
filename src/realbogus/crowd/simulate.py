"""A simulated Zooniverse crowd that classifies a dataset's detections and writes a Panoptes export.

Volunteers have kinds (experts, good, noisy, always-Real optimists, always-Bogus pessimists),
each with its own P("Real"|Real) = PL and P("Bogus"|Bogus) = PD, and heavy-tailed (Pareto)
activity. Faint real sources are called Bogus more often (DMTN-337 Fig. 4): PL is multiplied by
sigmoid((snr - faint_snr) / faint_width). A subject is retired after 2 classifications if the
first two agree, else after 7 (DMTN-337's rule, read as a Caesar consensus rule). A fraction of
subjects are reference subjects carrying the hidden feedback answer ``#feedback_1_answer``
("0" = Real, "1" = Bogus); volunteers may also be shown them as extra feedback views.

The export (`write_export`) has the 14 Panoptes columns, so `panoptes.read_classifications`
reads it exactly like a real one (logged-out volunteers, trailing newlines, repeat views).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputError
from ..io.atomic import atomic_path
from ..numeric import sigmoid
from .panoptes import EXPORT_COLUMNS

__all__ = ["VOLUNTEER_KINDS", "CrowdConfig", "SimulatedCrowd", "simulate_crowd", "write_export"]

#: (PL range, PD range) of each volunteer kind.
VOLUNTEER_KINDS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "expert": ((0.93, 0.99), (0.93, 0.99)),
    "good": ((0.78, 0.92), (0.78, 0.92)),
    "noisy": ((0.55, 0.70), (0.55, 0.70)),
    "optimist": ((0.95, 0.99), (0.02, 0.10)),
    "pessimist": ((0.02, 0.10), (0.95, 0.99)),
}

_T0 = pd.Timestamp("2025-11-11 00:00:00", tz="UTC")


@dataclass(frozen=True)
class CrowdConfig:
    """Options of the simulated crowd.

    Attributes
    ----------
    n_volunteers : int
        Number of volunteers (>= `max_votes`).
    kind_fractions : dict str -> float
        Share of each kind in `VOLUNTEER_KINDS`; normalised.
    activity_alpha : float
        Pareto tail index of volunteer activity (smaller = heavier tail), > 0.
    reference_fraction : float
        Fraction of subjects that are reference subjects, in [0, 1).
    reference_rate : float
        Extra feedback views of reference subjects, as a fraction of all classifications.
    faint_snr, faint_width : float
        Low-SNR bias: PL times sigmoid((snr - faint_snr) / faint_width) for real subjects with an
        `snr`; `faint_width` = 0 switches it off.
    agree_votes, max_votes : int
        Retire after `agree_votes` if they all agree, else after `max_votes` (2, 7).
    logged_out_fraction : float
        Share of volunteers who classify without logging in.
    repeat_rate : float
        Share of extra repeat views (flagged `already_seen`) of a volunteer's earlier subject.
    newline_rate : float
        Share of answers exported with a trailing newline ("Bogus\\n").
    duration_days, gap_hours : float
        Subjects arrive uniformly over `duration_days`; a subject's successive classifications
        are separated by exponential gaps of mean `gap_hours`.
    """

    n_volunteers: int = 400
    kind_fractions: dict = field(
        default_factory=lambda: {
            "expert": 0.05,
            "good": 0.45,
            "noisy": 0.30,
            "optimist": 0.10,
            "pessimist": 0.10,
        }
    )
    activity_alpha: float = 1.2
    reference_fraction: float = 0.05
    reference_rate: float = 0.02
    faint_snr: float = 5.5
    faint_width: float = 0.6
    agree_votes: int = 2
    max_votes: int = 7
    logged_out_fraction: float = 0.2
    repeat_rate: float = 0.002
    newline_rate: float = 0.1
    duration_days: float = 60.0
    gap_hours: float = 4.0

    def __post_init__(self) -> None:
        unknown = set(self.kind_fractions) - set(VOLUNTEER_KINDS)
        if (
            unknown
            or not self.kind_fractions
            or min(self.kind_fractions.values()) < 0
            or sum(self.kind_fractions.values()) <= 0
        ):
            msg = f"kind_fractions must map kinds of {sorted(VOLUNTEER_KINDS)} to non-negative shares; got {self.kind_fractions}"
            raise ConfigError(msg)
        checks = [
            (self.agree_votes >= 1, "agree_votes", ">= 1"),
            (self.max_votes >= self.agree_votes, "max_votes", ">= agree_votes"),
            (self.n_volunteers >= self.max_votes, "n_volunteers", ">= max_votes"),
            (self.activity_alpha > 0, "activity_alpha", "> 0"),
            (0 <= self.reference_fraction < 1, "reference_fraction", "in [0, 1)"),
            (0 <= self.reference_rate < 1, "reference_rate", "in [0, 1)"),
            (self.faint_width >= 0, "faint_width", ">= 0"),
            (0 <= self.logged_out_fraction <= 1, "logged_out_fraction", "in [0, 1]"),
            (0 <= self.repeat_rate < 1, "repeat_rate", "in [0, 1)"),
            (0 <= self.newline_rate <= 1, "newline_rate", "in [0, 1]"),
            (self.duration_days > 0, "duration_days", "> 0"),
            (self.gap_hours > 0, "gap_hours", "> 0"),
        ]
        for ok, name, allowed in checks:
            if not ok:
                msg = f"crowd option {name} must be {allowed}; got {getattr(self, name)!r}"
                raise ConfigError(msg)


@dataclass(frozen=True)
class SimulatedCrowd:
    """The output of `simulate_crowd`.

    Attributes
    ----------
    votes : DataFrame, one row per classification in time order
        `classification_id`, `volunteer` (the key the parser derives), `user_name`, `user_id`,
        `user_ip`, `subject_id`, `created_at` (UTC, 1 s resolution), `vote` (1 Real, 0 Bogus),
        `feedback_view` (bool: an extra view of a reference subject), `already_seen` (bool: a
        repeat view; use `clean_votes` to aggregate without the parser).
    subjects : DataFrame, one row per subject
        `subject_id`, `diaSourceId`, `origin`, `truth` (1/0), `snr`, `reference` (bool),
        `retired`, `retirement_reason`, `classifications_count`, `retired_at`.
    volunteers : DataFrame, one row per volunteer
        `volunteer`, `user_name`, `user_id`, `kind`, `PL`, `PD`, `activity` (share).
    config : dict
        The options and seed used.
    """

    votes: pd.DataFrame
    subjects: pd.DataFrame
    volunteers: pd.DataFrame
    config: dict

    @property
    def clean_votes(self) -> pd.DataFrame:
        """`votes` without the repeat views (what the parser keeps from the export)."""
        return self.votes[~self.votes["already_seen"].to_numpy()].reset_index(drop=True)

    @property
    def gold(self) -> pd.Series:
        """Reference labels subject_id -> 1/0 (int8)."""
        ref = self.subjects[self.subjects["reference"]]
        return pd.Series(
            ref["truth"].to_numpy(np.int8), index=ref["subject_id"].to_numpy(), name="label"
        )


def _distinct_draws(
    rng: np.random.Generator, n_rows: int, k: int, weights: np.ndarray
) -> np.ndarray:
    """(n_rows, k) volunteer indices drawn by `weights`, distinct within each row."""
    n = len(weights)
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]

    def draw(m: int) -> np.ndarray:
        return np.minimum(np.searchsorted(cdf, rng.random(m), side="right"), n - 1)

    out = draw(n_rows * k).reshape(n_rows, k)
    for j in range(1, k):
        for _ in range(1000):
            clash = (out[:, [j]] == out[:, :j]).any(axis=1)
            if not clash.any():
                break
            out[clash, j] = draw(int(clash.sum()))
        else:  # a handful of volunteers hold nearly all the activity: fall back to uniform
            clash = (out[:, [j]] == out[:, :j]).any(axis=1)
            for r in np.flatnonzero(clash):
                free = np.setdiff1d(np.arange(n), out[r, :j])
                out[r, j] = rng.choice(free)
    return out


def simulate_crowd(
    table: pd.DataFrame, *, config: CrowdConfig | None = None, seed: int = 0
) -> SimulatedCrowd:
    """Simulate volunteers classifying the detections of `table`.

    Parameters
    ----------
    table : DataFrame
        A dataset's detection table: `label` (truth, 1 Real / 0 Bogus; rows with a missing
        label are not shown), and optionally `diaSourceId`, `snr` (for the low-SNR bias) and
        `origin`.
    config : CrowdConfig, optional
        Crowd options (defaults: `CrowdConfig()`).
    seed : int
        Seed; the same seed and inputs give the same crowd.
    """
    config = config or CrowdConfig()
    if "label" not in table.columns:
        msg = "the detection table needs a label column (1 Real, 0 Bogus) to simulate a crowd"
        raise InputError(msg)
    rows = table[table["label"].notna()].reset_index(drop=True)
    if rows.empty:
        msg = "no detection has a known label; nothing for the simulated crowd to classify"
        raise InputError(msg)
    truth = rows["label"].astype(int).to_numpy()
    if not np.isin(truth, (0, 1)).all():
        msg = "label must be 1 (Real) or 0 (Bogus)"
        raise InputError(msg)
    rng = np.random.default_rng([seed, 0])
    n_s, n_v = len(rows), config.n_volunteers

    # volunteers
    kinds = sorted(k for k, f in config.kind_fractions.items() if f > 0)
    shares = np.array([config.kind_fractions[k] for k in kinds], dtype=float)
    kind = np.array(kinds, dtype=object)[rng.choice(len(kinds), size=n_v, p=shares / shares.sum())]
    pl = np.empty(n_v)
    pd_ = np.empty(n_v)
    for k in kinds:
        m = kind == k
        (a, b), (c, d) = VOLUNTEER_KINDS[k]
        pl[m] = rng.uniform(a, b, m.sum())
        pd_[m] = rng.uniform(c, d, m.sum())
    activity = (1.0 - rng.random(n_v)) ** (-1.0 / config.activity_alpha)
    activity /= activity.sum()
    logged_out = rng.random(n_v) < config.logged_out_fraction
    ips = np.array(
        [bytes(b).hex() for b in rng.integers(0, 256, (n_v, 10), dtype=np.uint8)], dtype=object
    )
    user_id = np.where(logged_out, "", np.char.mod("%d", 2_000_000 + np.arange(n_v)).astype(object))
    user_name = np.where(
        logged_out,
        "not-logged-in-" + ips,
        np.char.mod("volunteer_%d", np.arange(n_v)).astype(object),
    )
    key = np.where(logged_out, user_name, user_id)

    # subjects
    subject_id = 100_000_000 + np.arange(n_s, dtype=np.int64)
    reference = rng.random(n_s) < config.reference_fraction
    snr = rows["snr"].to_numpy(dtype=float) if "snr" in rows.columns else np.full(n_s, np.inf)
    faint = (
        sigmoid((snr - config.faint_snr) / config.faint_width)
        if config.faint_width > 0
        else np.ones(n_s)
    )
    faint = np.where(np.isfinite(snr), faint, 1.0)

    # main pool: up to max_votes distinct volunteers per subject, retired by agreement
    k = config.max_votes
    who = _distinct_draws(rng, n_s, k, activity)
    p_real = np.where(truth[:, None] == 1, pl[who] * faint[:, None], 1.0 - pd_[who])
    said = (rng.random((n_s, k)) < p_real).astype(np.int8)
    a = config.agree_votes
    agree = (said[:, :a] == said[:, :1]).all(axis=1)
    n_cls = np.where(agree, a, k)
    arrive = rng.uniform(0, config.duration_days * 86400.0, n_s)
    times = arrive[:, None] + np.cumsum(
        rng.exponential(config.gap_hours * 3600.0, (n_s, k)), axis=1
    )
    mask = np.arange(k)[None, :] < n_cls[:, None]
    s_idx = np.broadcast_to(np.arange(n_s)[:, None], (n_s, k))[mask]
    v_idx, y, t = who[mask], said[mask], times[mask]
    feedback = np.zeros(len(y), dtype=bool)

    # extra feedback views of reference subjects
    ref_ids = np.flatnonzero(reference)
    n_fb = (
        int(round(config.reference_rate / (1 - config.reference_rate) * len(y)))
        if len(ref_ids)
        else 0
    )
    if n_fb:
        fs = ref_ids[rng.integers(0, len(ref_ids), n_fb)]
        fv = _distinct_draws(rng, n_fb, 1, activity)[:, 0]
        fy = (
            rng.random(n_fb) < np.where(truth[fs] == 1, pl[fv] * faint[fs], 1.0 - pd_[fv])
        ).astype(np.int8)
        ft = rng.uniform(0, (config.duration_days + 7) * 86400.0, n_fb)
        s_idx, v_idx = np.concatenate([s_idx, fs]), np.concatenate([v_idx, fv])
        y, t = np.concatenate([y, fy]), np.concatenate([t, ft])
        feedback = np.concatenate([feedback, np.ones(n_fb, dtype=bool)])
        pair = pd.DataFrame({"s": s_idx, "v": v_idx, "t": t})
        first = (
            ~pair.sort_values("t", kind="mergesort").duplicated(["s", "v"]).sort_index().to_numpy()
        )
        s_idx, v_idx, y, t, feedback = (
            s_idx[first],
            v_idx[first],
            y[first],
            t[first],
            feedback[first],
        )

    # repeat views, flagged already_seen (the parser drops them)
    seen = np.zeros(len(y), dtype=bool)
    n_rep = int(round(config.repeat_rate * len(y)))
    if n_rep:
        src = rng.integers(0, len(y), n_rep)
        s_idx, v_idx = np.concatenate([s_idx, s_idx[src]]), np.concatenate([v_idx, v_idx[src]])
        y = np.concatenate([y, (rng.random(n_rep) < 0.5).astype(np.int8)])
        t = np.concatenate([t, t[src] + rng.exponential(3600.0, n_rep)])
        feedback = np.concatenate([feedback, feedback[src]])
        seen = np.concatenate([seen, np.ones(n_rep, dtype=bool)])

    sec = np.floor(t).astype(np.int64)
    order = np.lexsort((rng.random(len(sec)), sec))
    s_idx, v_idx, y, sec, feedback, seen = (
        x[order] for x in (s_idx, v_idx, y, sec, feedback, seen)
    )
    created = _T0 + pd.to_timedelta(sec, unit="s")
    votes = pd.DataFrame(
        {
            "classification_id": 600_000_000 + np.arange(len(y), dtype=np.int64),
            "volunteer": key[v_idx],
            "user_name": user_name[v_idx],
            "user_id": user_id[v_idx],
            "user_ip": ips[v_idx],
            "subject_id": subject_id[s_idx],
            "created_at": created,
            "vote": y,
            "feedback_view": feedback,
            "already_seen": seen,
        }
    )
    main = ~feedback & ~seen
    last_t = pd.Series(sec[main]).groupby(s_idx[main]).max()
    retired_at = np.full(n_s, np.nan)
    retired_at[last_t.index.to_numpy()] = last_t.to_numpy()
    subjects = pd.DataFrame(
        {
            "subject_id": subject_id,
            "diaSourceId": rows["diaSourceId"].to_numpy()
            if "diaSourceId" in rows
            else np.arange(n_s),
            "origin": rows["origin"].astype(str).to_numpy() if "origin" in rows else "unknown",
            "truth": truth.astype(np.int8),
            "snr": snr,
            "reference": reference,
            # A subject seen only in feedback views or repeats was never retired.
            "retired": np.isfinite(retired_at),
            "retirement_reason": np.where(
                np.isfinite(retired_at), np.where(agree, "consensus", "classification_count"), None
            ),
            "classifications_count": n_cls.astype(np.int64),
            "retired_at": _T0 + pd.to_timedelta(retired_at, unit="s"),
        }
    )
    volunteers = pd.DataFrame(
        {
            "volunteer": key,
            "user_name": user_name,
            "user_id": user_id,
            "kind": kind,
            "PL": pl,
            "PD": pd_,
            "activity": activity,
        }
    )
    cfg = asdict(config)
    cfg["seed"] = seed
    return SimulatedCrowd(votes=votes, subjects=subjects, volunteers=volunteers, config=cfg)


def write_export(
    crowd: SimulatedCrowd,
    path: str | os.PathLike,
    *,
    workflow_id: int = 24125,
    workflow_name: str = "Real or Bogus",
    workflow_version: str = "12.3",
    answers: tuple[str, str] = ("Real", "Bogus"),
    seed: int = 0,
) -> Path:
    """Write a simulated crowd as a Panoptes classification export CSV (atomically).

    Subject metadata carries the hidden ``#diaSourceId``, ``#origin`` and, for reference
    subjects, ``#feedback_1_answer`` ("0" = answers[0] = Real, "1" = Bogus); the retirement
    record is the subject's state at export time, as in real exports.
    """
    path = Path(path)
    rng = np.random.default_rng([seed, 1])
    votes, subjects = crowd.votes, crowd.subjects.set_index("subject_id")
    sdata: dict[int, str] = {}
    for sid, row in subjects.iterrows():
        meta: dict = {"retired": None}
        if row["retired"]:
            meta["retired"] = {
                "workflow_id": workflow_id,
                "subject_id": int(sid),
                "classifications_count": int(row["classifications_count"]),
                "retired_at": row["retired_at"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "retirement_reason": str(row["retirement_reason"]),
            }
        meta["#diaSourceId"] = int(row["diaSourceId"])
        meta["#origin"] = str(row["origin"])
        if row["reference"]:
            meta["#feedback_1_answer"] = "0" if int(row["truth"]) == 1 else "1"
        sdata[int(sid)] = json.dumps({str(sid): meta})
    newline = rng.random(len(votes)) < crowd.config.get("newline_rate", 0.0)
    task_label = "Label the object seen in the center of the difference image as Real or Bogus"
    created = votes["created_at"].dt.strftime("%Y-%m-%d %H:%M:%S UTC").to_numpy()
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(EXPORT_COLUMNS)
        for i, (cid, name, uid, ip, sid, vote, seen) in enumerate(
            zip(
                votes["classification_id"],
                votes["user_name"],
                votes["user_id"],
                votes["user_ip"],
                votes["subject_id"],
                votes["vote"],
                votes["already_seen"],
                strict=True,
            )
        ):
            answer = answers[0] if vote == 1 else answers[1]
            meta = json.dumps(
                {
                    "source": "api",
                    "live_project": True,
                    "user_language": "en",
                    "subject_selection_state": {
                        "retired": False,
                        "already_seen": bool(seen),
                        "selection_state": "normal",
                    },
                    "feedback": {},
                }
            )
            ann = json.dumps(
                [
                    {
                        "task": "T0",
                        "task_label": task_label,
                        "value": answer + ("\n" if newline[i] else ""),
                    }
                ]
            )
            writer.writerow(
                [
                    cid,
                    name,
                    uid,
                    ip,
                    workflow_id,
                    workflow_name,
                    workflow_version,
                    created[i],
                    "",
                    "",
                    meta,
                    ann,
                    sdata[int(sid)],
                    sid,
                ]
            )
    return path
