"""The labelling database as a Zooniverse Panoptes classification export.

One row per classification with the 14 `realbogus.crowd.panoptes.EXPORT_COLUMNS`, so
`realbogus crowd aggregate export.csv` reads it unchanged: the Real/Bogus question is task
``T0`` with answers "Real" / "Bogus"; subject metadata carries ``#diaSourceId``, ``#origin``
and, for gold subjects, ``#feedback_1_answer`` ("0" = Real, "1" = Bogus); the retirement record
is the subject's state at export time.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pandas as pd

from ..crowd.panoptes import EXPORT_COLUMNS
from ..io.atomic import atomic_path
from .store import Store

__all__ = ["TASK_LABEL", "export_csv", "write_export"]

TASK_LABEL = "Label the object seen in the center of the difference image as Real or Bogus"


def _subject_data(row: pd.Series, workflow_id: int) -> str:
    sid = int(row["id"])
    meta: dict = {"retired": None}
    if bool(row["retired"]):
        at = pd.Timestamp(row["retired_at"])
        at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
        meta["retired"] = {
            "workflow_id": workflow_id,
            "subject_id": sid,
            "classifications_count": int(row["n_classifications"]),
            "retired_at": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "retirement_reason": str(row["retirement_reason"]),
        }
    meta["#diaSourceId"] = int(row["dia_source_id"])
    meta["#origin"] = str(row["origin"])
    if pd.notna(row["gold"]):
        meta["#feedback_1_answer"] = "0" if int(row["gold"]) == 1 else "1"
    return json.dumps({str(sid): meta})


def export_csv(
    store: Store,
    *,
    workflow_id: int = 1,
    workflow_name: str = "Real or Bogus",
    workflow_version: str = "1.1",
) -> str:
    """Every classification in the database as Panoptes-export CSV text.

    Parameters
    ----------
    store : Store
        The labelling database.
    workflow_id, workflow_name, workflow_version
        Written into every row (``crowd aggregate --workflow-id`` selects by them).
    """
    votes = store.votes_frame()
    subjects = store.subjects_frame().set_index("id", drop=False)
    sdata = {
        sid: _subject_data(subjects.loc[sid], workflow_id) for sid in votes["subject_id"].unique()
    }
    created = votes["created_at"].dt.strftime("%Y-%m-%d %H:%M:%S UTC").to_numpy()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    meta = json.dumps(
        {
            "source": "realbogus-label",
            "live_project": True,
            "subject_selection_state": {
                "retired": False,
                "already_seen": False,
                "selection_state": "normal",
            },
        }
    )
    for i, row in enumerate(votes.itertuples(index=False)):
        answer = "Real" if row.vote == 1 else "Bogus"
        writer.writerow(
            [
                int(row.classification_id),
                row.username,
                int(row.user_id),
                "",
                workflow_id,
                workflow_name,
                workflow_version,
                created[i],
                "",
                "true" if row.role == "expert" else "",
                meta,
                json.dumps([{"task": "T0", "task_label": TASK_LABEL, "value": answer}]),
                sdata[row.subject_id],
                int(row.subject_id),
            ]
        )
    return buf.getvalue()


def write_export(store: Store, out: str | os.PathLike, **options: object) -> Path:
    """Write `export_csv` to `out` atomically; returns the path."""
    out = Path(out)
    text = export_csv(store, **options)  # type: ignore[arg-type]
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return out
