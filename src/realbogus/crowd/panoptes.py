"""Zooniverse Panoptes classification exports -> a vote table and a reference set.

The export has one row per classification and 14 columns (`EXPORT_COLUMNS`); `metadata`,
`annotations` and `subject_data` hold JSON. What this parser does, in order:

1. keep one workflow (`workflow_id`; required when the export holds several) and, optionally,
   one major version (or an exact "major.minor") of it, parsed as integers, never as a float;
2. key volunteers by `user_id`, else by `user_name` (logged-out volunteers are
   ``not-logged-in-<ip hash>``, with an empty `user_id`);
3. read the answer of one single-answer question task: a label string (the CSV export; trailing
   whitespace such as "Bogus\\n" stripped) or an answer index (API / Caesar); a task absent from
   a classification (a conditional task not reached) or left unanswered drops that row;
   drawing, survey, multiple-answer, text and other task types are an `InputError`;
4. drop repeat views (`subject_selection_state.already_seen`, legacy `seen_before`) and then
   repeated (volunteer, subject) pairs, keeping the first;
5. order by (`created_at`, `classification_id`);
6. take reference ("gold") answers from hidden subject metadata (default key
   ``#feedback_1_answer``, an answer index or label) or from a reference CSV.

`workflow_answers` reads the companion workflow export to check the task type and get the answer
labels in index order.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputError

__all__ = [
    "EXPORT_COLUMNS",
    "Classifications",
    "read_export",
    "read_classifications",
    "read_reference",
    "workflow_answers",
    "parse_version",
]

EXPORT_COLUMNS = (
    "classification_id",
    "user_name",
    "user_id",
    "user_ip",
    "workflow_id",
    "workflow_name",
    "workflow_version",
    "created_at",
    "gold_standard",
    "expert",
    "metadata",
    "annotations",
    "subject_data",
    "subject_ids",
)
_UNKNOWN_POLICIES = ("error", "drop")


def parse_version(version: str | int | float) -> tuple[int, ...]:
    """ "16.55" -> (16, 55); "16" -> (16,). Raises `InputError` on anything else."""
    text = str(version).strip()
    try:
        parts = tuple(int(p) for p in text.split("."))
    except ValueError:
        msg = f"workflow version {version!r} is not 'major' or 'major.minor'"
        raise InputError(msg) from None
    if not 1 <= len(parts) <= 2:
        msg = f"workflow version {version!r} is not 'major' or 'major.minor'"
        raise InputError(msg)
    return parts


def read_export(
    path: str | os.PathLike,
    *,
    workflow_id: int | None = None,
    workflow_version: str | int | None = None,
) -> pd.DataFrame:
    """Read a classification export and keep one workflow (and version); JSON left unparsed.

    Parameters
    ----------
    path : path-like
        The classification export CSV.
    workflow_id : int, optional
        Workflow to keep. Required when the export holds more than one.
    workflow_version : str or int, optional
        "16" keeps every minor version of major 16; "16.55" keeps exactly that version.

    Returns
    -------
    DataFrame
        The export's columns as strings, plus `volunteer` (user_id, else user_name),
        `logged_in` (bool) and `version` (tuple of int).
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        msg = f"{path}: not a readable CSV classification export ({exc})"
        raise InputError(msg) from exc
    missing = [c for c in EXPORT_COLUMNS if c not in raw.columns]
    if missing:
        msg = f"{path}: not a Panoptes classification export; missing columns {missing}"
        raise InputError(msg)
    ids = sorted(raw["workflow_id"].unique(), key=lambda x: (len(x), x))
    if workflow_id is None:
        if len(ids) > 1:
            msg = f"{path}: export holds workflows {ids}; choose one with --workflow-id (from Python: workflow_id=)"
            raise InputError(msg)
    else:
        if str(workflow_id) not in ids:
            msg = f"{path}: workflow {workflow_id} is not in the export (it holds {ids})"
            raise InputError(msg)
        raw = raw[raw["workflow_id"] == str(workflow_id)]
    versions = raw["workflow_version"].map(parse_version)
    if workflow_version is not None:
        want = parse_version(workflow_version)
        keep = versions.map(lambda v: v[: len(want)] == want)
        if not keep.any():
            have = sorted({".".join(map(str, v)) for v in versions})
            msg = f"{path}: no classifications of workflow version {workflow_version} (export has {have})"
            raise InputError(msg)
        raw, versions = raw[keep.to_numpy()], versions[keep.to_numpy()]
    out = raw.copy()
    out["version"] = versions
    user_id = out["user_id"].str.strip()
    out["logged_in"] = user_id != ""
    out["volunteer"] = np.where(out["logged_in"], user_id, out["user_name"].str.strip())
    no_key = out["volunteer"] == ""
    if no_key.any():
        # neither id nor name: fall back on the hashed IP, as Panoptes names logged-out users
        out.loc[no_key, "volunteer"] = "not-logged-in-" + out.loc[no_key, "user_ip"].str.strip()
    return out.reset_index(drop=True)


@dataclass(frozen=True)
class Classifications:
    """A parsed export.

    Attributes
    ----------
    votes : DataFrame, one row per kept classification, in (created_at, classification_id) order
        `classification_id` (int64), `volunteer` (str), `user_name`, `logged_in` (bool),
        `subject_id` (int64), `created_at` (datetime64 UTC), `workflow_version`, `answer` (the
        answer label), `vote` (int8: 1 = the Real answer, 0 = the other).
    gold : Series subject_id -> int8 (1 Real, 0 Bogus)
        The reference set.
    subjects : DataFrame, one row per subject seen in the kept rows
        `subject_id`, `retired` (bool), `retirement_reason`, `classifications_count` (Int64,
        from the retirement record), `retired_at`, and the hidden metadata `diaSourceId` and
        `origin` when the subject carries them (as ``#diaSourceId`` / ``#origin``).
    dropped : dict str -> int
        Rows dropped and why: `task_absent`, `no_answer`, `already_seen`, `duplicate`,
        `unknown_answer`.
    answers : tuple of str
        The answer labels in index order.
    real_answer : str
        The label that means Real.
    """

    votes: pd.DataFrame
    gold: pd.Series
    subjects: pd.DataFrame
    dropped: dict = field(default_factory=dict)
    answers: tuple[str, ...] = ("Real", "Bogus")
    real_answer: str = "Real"


def _task_kind(value: object) -> str:
    """Name the task type an annotation value belongs to (for error messages)."""
    if isinstance(value, dict):
        return "a combo/shortcut (object-valued)"
    if isinstance(value, list):
        items = [x for x in value if x is not None]
        if not items:
            return "an empty list-valued (drawing, survey or multiple-answer)"
        first = items[0]
        if isinstance(first, dict):
            if "choice" in first:
                return "a survey"
            if {"x", "y", "tool", "pathX", "points", "x1"} & set(first):
                return "a drawing"
            if {"start", "end"} & set(first):
                return "a highlighter/text"
            return "a list-of-objects"
        return "a multiple-answer question"
    return f"a {type(value).__name__}-valued"


def _match_answer(value: object, answers: tuple[str, ...], lookup: dict[str, int]) -> int | None:
    """Answer index for a label string (whitespace-stripped, case-insensitive) or index; None if unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value) if 0 <= value < len(answers) else None
    if isinstance(value, float) and value.is_integer():
        return _match_answer(int(value), answers, lookup)
    if isinstance(value, str):
        text = value.strip()
        if text in lookup:
            return lookup[text]
        if text.casefold() in lookup:
            return lookup[text.casefold()]
        if text.isdigit():
            return _match_answer(int(text), answers, lookup)
    return None


def _real_index(answers: tuple[str, ...], real_answer: str | None) -> int:
    """Index of the Real answer in `answers` (case-insensitive); ConfigError if absent."""
    if real_answer is None:
        return 0
    folded = [a.strip().casefold() for a in answers]
    key = str(real_answer).strip().casefold()
    if key not in folded:
        msg = f"real_answer {real_answer!r} is not one of the answers {list(answers)}"
        raise ConfigError(msg)
    return folded.index(key)


def read_classifications(
    path: str | os.PathLike,
    *,
    task: str = "T0",
    answers: tuple[str, ...] | list[str] = ("Real", "Bogus"),
    real_answer: str | None = None,
    workflow_id: int | None = None,
    workflow_version: str | int | None = None,
    reference: str | os.PathLike | pd.DataFrame | None = None,
    feedback_key: str = "#feedback_1_answer",
    drop_already_seen: bool = True,
    drop_duplicates: bool = True,
    live_only: bool = False,
    unknown_answers: str = "error",
) -> Classifications:
    """Parse a Panoptes classification export of a two-answer question task into votes.

    Parameters
    ----------
    path : path-like
        The classification export CSV.
    task : str
        Task key of the Real/Bogus question ("T0").
    answers : sequence of 2 str
        Answer labels in answer-index order (index i is label i): ("Real", "Bogus") for Rubin
        Difference Detectives, e.g. ("Yes", "No") elsewhere (`workflow_answers` reads them).
    real_answer : str, optional
        The label meaning Real (vote 1); default `answers[0]`.
    workflow_id, workflow_version
        See `read_export`.
    reference : path-like or DataFrame, optional
        Reference labels (`read_reference`); when given, they replace the feedback metadata.
    feedback_key : str
        Hidden subject-metadata key holding the reference answer (index or label).
    drop_already_seen : bool
        Drop classifications flagged as repeat views by Panoptes.
    drop_duplicates : bool
        Keep only the first classification of each (volunteer, subject).
    live_only : bool
        Drop classifications made while the project was not live (`metadata.live_project`).
    unknown_answers : {"error", "drop"}
        What to do with answer strings that are none of `answers` (e.g. a text task).
    """
    path = Path(path)
    answers = tuple(str(a) for a in answers)
    if len(answers) != 2 or answers[0].strip().casefold() == answers[1].strip().casefold():
        msg = f"answers must be two distinct labels in index order; got {answers}"
        raise ConfigError(msg)
    real_index = _real_index(answers, real_answer)
    if unknown_answers not in _UNKNOWN_POLICIES:
        msg = f"unknown_answers must be one of {_UNKNOWN_POLICIES}; got {unknown_answers!r}"
        raise ConfigError(msg)
    lookup = {a.strip(): i for i, a in enumerate(answers)}
    lookup.update({a.strip().casefold(): i for i, a in enumerate(answers)})
    rows = read_export(path, workflow_id=workflow_id, workflow_version=workflow_version)
    dropped = {
        "task_absent": 0,
        "no_answer": 0,
        "unknown_answer": 0,
        "not_live": 0,
        "already_seen": 0,
        "duplicate": 0,
    }

    n = len(rows)
    index = np.full(n, -1, dtype=np.int64)
    seen_before = np.zeros(n, dtype=bool)
    live = np.ones(n, dtype=bool)
    unknown: dict[str, int] = {}
    structured: tuple[str, object] | None = None
    tasks: dict[str, int] = {}  # task keys seen, for the error when none is `task`
    for i, (cid, ann, meta) in enumerate(
        zip(rows["classification_id"], rows["annotations"], rows["metadata"], strict=True)
    ):
        try:
            entries = json.loads(ann) if ann else []
            info = json.loads(meta) if meta else {}
        except json.JSONDecodeError as exc:
            msg = f"{path}: classification {cid}: annotations/metadata are not valid JSON ({exc})"
            raise InputError(msg) from exc
        if not isinstance(entries, list) or not isinstance(info, dict):
            msg = f"{path}: classification {cid}: annotations must be a JSON list and metadata an object"
            raise InputError(msg)
        state = info.get("subject_selection_state") or {}
        seen_before[i] = bool(state.get("already_seen")) or bool(info.get("seen_before"))
        live[i] = info.get("live_project", True) is not False
        for e in entries:
            if isinstance(e, dict) and "task" in e:
                tasks[str(e["task"])] = tasks.get(str(e["task"]), 0) + 1
        entry = next((e for e in entries if isinstance(e, dict) and e.get("task") == task), None)
        if entry is None:
            dropped["task_absent"] += 1
            continue
        value = entry.get("value")
        if value is None or (isinstance(value, str) and not value.strip()):
            dropped["no_answer"] += 1
            continue
        if isinstance(value, (list, dict)):
            if structured is None or (not structured[1] and value):
                structured = (cid, value)  # keep looking for a non-empty value to name the type
            continue
        k = _match_answer(value, answers, lookup)
        if k is None:
            unknown[str(value).strip()] = unknown.get(str(value).strip(), 0) + 1
            continue
        index[i] = k
    if structured is not None:
        cid, value = structured
        msg = (
            f"{path}: task {task} (e.g. classification {cid}) is {_task_kind(value)} task; "
            "realbogus reads a single-answer question task (Real/Bogus). Pick the question "
            "task with --task (from Python: task=), or export that workflow"
        )
        raise InputError(msg)
    if unknown:
        if unknown_answers == "error":
            shown = sorted(unknown, key=unknown.get, reverse=True)[:5]
            msg = (
                f"{path}: task {task} has answers {shown} ({sum(unknown.values())} classifications) "
                f"that are none of {list(answers)}: a text task, or pass the workflow's answer "
                "labels with answers= (in index order)"
            )
            raise InputError(msg)
        dropped["unknown_answer"] = sum(unknown.values())

    if rows["subject_ids"].str.contains(";").any():
        cid = rows.loc[rows["subject_ids"].str.contains(";"), "classification_id"].iloc[0]
        msg = f"{path}: classification {cid} shows several subjects at once; realbogus needs one subject per classification"
        raise InputError(msg)
    try:
        subject_id = rows["subject_ids"].astype("int64").to_numpy()
        class_id = rows["classification_id"].astype("int64").to_numpy()
    except ValueError as exc:
        msg = f"{path}: subject_ids and classification_id must be integers ({exc})"
        raise InputError(msg) from exc
    created = _parse_time(rows["created_at"], path)

    votes = pd.DataFrame(
        {
            "classification_id": class_id,
            "volunteer": rows["volunteer"].to_numpy(dtype=object),
            "user_name": rows["user_name"].to_numpy(dtype=object),
            "logged_in": rows["logged_in"].to_numpy(dtype=bool),
            "subject_id": subject_id,
            "created_at": created,
            "workflow_version": rows["workflow_version"].to_numpy(dtype=object),
            "answer": np.array([answers[k] if k >= 0 else "" for k in index], dtype=object),
            "vote": np.where(index == real_index, 1, 0).astype(np.int8),
        }
    )
    subjects = _subjects(rows, subject_id, path, feedback_key)
    keep = index >= 0
    if live_only:
        dropped["not_live"] = int((keep & ~live).sum())
        keep &= live
    votes = votes[keep].sort_values(["created_at", "classification_id"], kind="mergesort")
    seen = seen_before[votes.index.to_numpy()]
    if drop_already_seen:
        dropped["already_seen"] = int(seen.sum())
        votes = votes[~seen]
    if drop_duplicates:
        dup = votes.duplicated(["volunteer", "subject_id"], keep="first").to_numpy()
        dropped["duplicate"] = int(dup.sum())
        votes = votes[~dup]
    votes = votes.reset_index(drop=True)
    if not len(votes):
        kept = "" if workflow_id is None else f" of workflow {workflow_id}"
        seen = ", ".join(f"{k} ({n})" for k, n in sorted(tasks.items())) or "none"
        lost = ", ".join(f"{k} {n}" for k, n in dropped.items() if n)
        msg = (
            f"{path}: no classification left to aggregate from the {n} rows{kept} (dropped: "
            f"{lost or 'none'}); task {task} was asked for, the annotations hold tasks {seen}: "
            "choose one with --task (and --workflow-id, --workflow-version)"
        )
        raise InputError(msg)
    subjects = subjects[subjects["subject_id"].isin(votes["subject_id"])].reset_index(drop=True)

    if reference is not None:
        gold = read_reference(reference, answers=answers, real_answer=answers[real_index])
    else:
        gold = _feedback_gold(subjects, answers, lookup, path, feedback_key, real_index)
    return Classifications(
        votes=votes,
        gold=gold,
        subjects=subjects.drop(columns=["_feedback"]),
        dropped=dropped,
        answers=answers,
        real_answer=answers[real_index],
    )


def _parse_time(column: pd.Series, path: Path) -> pd.Series:
    text = column.str.strip().str.removesuffix(" UTC")
    try:
        return pd.to_datetime(text, format="%Y-%m-%d %H:%M:%S", utc=True)
    except (ValueError, TypeError):
        try:
            return pd.to_datetime(text, format="ISO8601", utc=True)
        except (ValueError, TypeError) as exc:
            msg = f"{path}: created_at values are not 'YYYY-MM-DD HH:MM:SS UTC' timestamps ({exc})"
            raise InputError(msg) from exc


def _subjects(
    rows: pd.DataFrame, subject_id: np.ndarray, path: Path, feedback_key: str
) -> pd.DataFrame:
    """One row per subject from `subject_data` (the last row of each subject wins)."""
    last = pd.Series(np.arange(len(rows))).groupby(subject_id).last()
    records = []
    for sid, i in last.items():
        try:
            data = json.loads(rows["subject_data"].iat[i] or "{}")
        except json.JSONDecodeError as exc:
            msg = f"{path}: subject {sid}: subject_data is not valid JSON ({exc})"
            raise InputError(msg) from exc
        meta = data.get(str(sid)) if isinstance(data, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        retired = meta.get("retired") if isinstance(meta.get("retired"), dict) else None
        records.append(
            {
                "subject_id": int(sid),
                "retired": retired is not None,
                "retirement_reason": (retired or {}).get("retirement_reason"),
                "classifications_count": (retired or {}).get("classifications_count"),
                "retired_at": (retired or {}).get("retired_at"),
                "diaSourceId": meta.get("#diaSourceId", meta.get("diaSourceId")),
                "origin": meta.get("#origin"),
                "_feedback": meta.get(feedback_key),
            }
        )
    frame = pd.DataFrame.from_records(
        records,
        columns=[
            "subject_id",
            "retired",
            "retirement_reason",
            "classifications_count",
            "retired_at",
            "diaSourceId",
            "origin",
            "_feedback",
        ],
    )
    frame["classifications_count"] = pd.array(frame["classifications_count"], dtype="Int64")
    frame["diaSourceId"] = pd.array(
        pd.to_numeric(frame["diaSourceId"], errors="coerce"), dtype="Int64"
    )
    frame["retired"] = frame["retired"].astype(bool)
    return frame


def _feedback_gold(
    subjects: pd.DataFrame,
    answers: tuple[str, ...],
    lookup: dict[str, int],
    path: Path,
    key: str,
    real_index: int,
) -> pd.Series:
    """Reference labels from hidden subject metadata (answer index or label); 1 = the Real answer."""
    has = subjects["_feedback"].notna() & (subjects["_feedback"].astype(str).str.strip() != "")
    ids, labels, bad = [], [], []
    for sid, value in zip(
        subjects.loc[has, "subject_id"], subjects.loc[has, "_feedback"], strict=True
    ):
        k = _match_answer(value, answers, lookup)
        if k is None:
            bad.append(value)
            continue
        ids.append(int(sid))
        labels.append(1 if k == real_index else 0)
    if bad:
        msg = f"{path}: subject metadata {key} holds {sorted(map(str, set(bad)))[:5]}, none of {list(answers)} or their indices"
        raise InputError(msg)
    return pd.Series(
        np.asarray(labels, dtype=np.int8),
        index=pd.Index(ids, dtype="int64", name="subject_id"),
        name="label",
    )


def read_reference(
    source: str | os.PathLike | pd.DataFrame,
    *,
    answers: tuple[str, ...] | list[str] = ("Real", "Bogus"),
    real_answer: str | None = None,
) -> pd.Series:
    """Read a reference ("gold") CSV: `subject_id` plus `label` (1 Real / 0 Bogus) or `answer`.

    `answer` holds answer labels or indices (`answers` in index order; `real_answer`, default
    `answers[0]`, means Real), as Panoptes feedback metadata does. Returns a Series subject_id -> int8; conflicting repeats are an `InputError`.
    """
    from .core import as_gold

    name = "reference table" if isinstance(source, pd.DataFrame) else str(source)
    if isinstance(source, pd.DataFrame):
        table = source
    else:
        try:
            table = pd.read_csv(source, dtype=str, keep_default_na=False)
        except (
            OSError,
            pd.errors.ParserError,
            pd.errors.EmptyDataError,
            UnicodeDecodeError,
        ) as exc:
            msg = f"{name}: not a readable reference CSV ({exc})"
            raise InputError(msg) from exc
    if "subject_id" not in table.columns or not ({"label", "answer"} & set(table.columns)):
        msg = f"{name}: a reference CSV needs subject_id and label (1/0) or answer columns; got {list(table.columns)}"
        raise InputError(msg)
    answers = tuple(str(a) for a in answers)
    real_index = _real_index(answers, real_answer)
    try:
        sid = table["subject_id"].astype("int64")
    except (ValueError, TypeError) as exc:
        msg = f"{name}: subject_id must be integers ({exc})"
        raise InputError(msg) from exc
    if "label" in table.columns:
        labels = pd.to_numeric(table["label"], errors="coerce")
    else:
        lookup = {a.strip(): i for i, a in enumerate(answers)}
        lookup.update({a.strip().casefold(): i for i, a in enumerate(answers)})
        ks = [_match_answer(a, answers, lookup) for a in table["answer"]]
        if any(k is None for k in ks):
            bad = sorted({str(a) for a, k in zip(table["answer"], ks, strict=True) if k is None})[
                :5
            ]
            msg = f"{name}: answers {bad} are none of {list(answers)} or their indices"
            raise InputError(msg)
        labels = pd.Series([1 if k == real_index else 0 for k in ks])
    try:
        gold = as_gold(pd.Series(labels.to_numpy(), index=sid.to_numpy()))
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from None
    gold.index.name = "subject_id"
    gold.name = "label"
    return gold


def workflow_answers(
    path: str | os.PathLike,
    *,
    workflow_id: int,
    task: str = "T0",
    workflow_version: str | int | None = None,
) -> tuple[str, ...]:
    """Answer labels of a single-answer question task, in index order, from a workflow export.

    Parameters
    ----------
    path : path-like
        The workflows CSV export (columns `workflow_id`, `version`, `minor_version`, `tasks`,
        `strings`).
    workflow_id : int
        The workflow.
    task : str
        The task key.
    workflow_version : str or int, optional
        Major ("16") or exact ("16.55") version; default the latest.

    Returns
    -------
    tuple of str
        The answer labels; index i of a classification's answer is label i. Pass them
        to `read_classifications(answers=..., real_answer=...)`.
    """
    path = Path(path)
    try:
        wf = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        msg = f"{path}: not a readable CSV workflow export ({exc})"
        raise InputError(msg) from exc
    missing = [
        c for c in ("workflow_id", "version", "minor_version", "tasks") if c not in wf.columns
    ]
    if missing:
        msg = f"{path}: not a Panoptes workflow export; missing columns {missing}"
        raise InputError(msg)
    rows = wf[wf["workflow_id"] == str(workflow_id)]
    if rows.empty:
        msg = f"{path}: workflow {workflow_id} is not in the export"
        raise InputError(msg)
    versions = [
        parse_version(f"{a}.{b}")
        for a, b in zip(rows["version"], rows["minor_version"], strict=True)
    ]
    keep = list(range(len(rows)))
    if workflow_version is not None:
        want = parse_version(workflow_version)
        keep = [i for i, v in enumerate(versions) if v[: len(want)] == want]
        if not keep:
            msg = f"{path}: workflow {workflow_id} has no version {workflow_version}"
            raise InputError(msg)
    row = rows.iloc[max(keep, key=lambda i: versions[i])]
    try:
        tasks = json.loads(row["tasks"] or "{}")
        strings = json.loads(row["strings"] or "{}") if "strings" in row.index else {}
    except json.JSONDecodeError as exc:
        msg = f"{path}: workflow {workflow_id}: tasks/strings are not valid JSON ({exc})"
        raise InputError(msg) from exc
    if task not in tasks:
        msg = f"{path}: workflow {workflow_id} has no task {task} (it has {sorted(tasks)})"
        raise InputError(msg)
    kind = tasks[task].get("type")
    if kind != "single":
        msg = f"{path}: task {task} of workflow {workflow_id} is a {kind!r} task; realbogus reads a single-answer question"
        raise InputError(msg)
    labels = []
    for answer in tasks[task].get("answers", []):
        label = str(answer.get("label", ""))
        labels.append(str(strings.get(label, label)).strip())
    return tuple(labels)
