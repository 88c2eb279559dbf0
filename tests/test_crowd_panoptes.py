"""Tests of the Panoptes classification-export parser, on the real exports in shared/data."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from realbogus.crowd.panoptes import (
    parse_version,
    read_classifications,
    read_export,
    read_reference,
    workflow_answers,
)
from realbogus.errors import ConfigError, InputError

SLSN = "crowd/panoptes/aggregation-for-caesar__cls_export.csv"
CATS = "crowd/panoptes/aggregation-for-caesar__cat-project-classifications.csv"
ANDROMEDA = "crowd/panoptes/Data-digging__ap-aas229-test-classifications.csv"
MIXED = "crowd/panoptes/Data-digging__example_classifications.csv"
FOSSIL = "crowd/panoptes/Data-digging__fossil-finder-classifications_test.csv"


def test_slsn_question_export_parses(shared_data):
    """The real Superluminous Supernovae export: 7 label-string answers, one logged-out volunteer."""
    c = read_classifications(shared_data / SLSN, answers=("Yes", "No"))
    v = c.votes
    assert len(v) == 7
    assert v["volunteer"].unique().tolist() == ["not-logged-in-b644753d0e3948f81dc2"]
    assert not v["logged_in"].any()
    assert v["answer"].tolist() == ["Yes", "No", "Yes", "No", "Yes", "No", "No"]
    assert v["vote"].tolist() == [1, 0, 1, 0, 1, 0, 0]
    assert v["classification_id"].is_monotonic_increasing
    assert v["created_at"].is_monotonic_increasing
    assert str(v["created_at"].dt.tz) == "UTC"
    assert c.gold.empty  # no feedback metadata in this project


def test_conditional_task_rows_are_dropped(shared_data):
    """T1 is conditional (reached after T0 = Yes): only 3 of 7 classifications hold it."""
    c = read_classifications(shared_data / SLSN, task="T1", answers=("Yes", "No"))
    assert len(c.votes) == 3
    assert c.dropped["task_absent"] == 4
    assert c.votes["answer"].tolist() == ["Yes", "No", "No"]


def test_retirement_fields(shared_data):
    """subject_data.retired gives the retirement reason and count."""
    s = read_classifications(shared_data / SLSN, answers=("Yes", "No")).subjects
    assert len(s) == 7 and s["retired"].all()
    assert set(s["retirement_reason"]) == {"classification_count"}
    assert s["classifications_count"].tolist() == [10] * 7


def test_logged_out_volunteers_keyed_by_name(shared_data):
    """Logged-out users (empty user_id) get their not-logged-in-<hash> name, not one shared NaN key."""
    rows = read_export(shared_data / CATS)
    out = rows[~rows["logged_in"]]
    assert len(out) == 114
    assert out["volunteer"].str.startswith("not-logged-in-").all()
    assert (out["volunteer"] == out["user_name"]).all()
    assert out["volunteer"].nunique() > 1
    logged = rows[rows["logged_in"]]
    assert (logged["volunteer"] == logged["user_id"]).all()


def test_workflow_version_filter(shared_data):
    """Major version keeps every minor; exact version keeps one; versions are never floats."""
    assert parse_version("13.19") == (13, 19) and parse_version("16") == (16,)
    assert parse_version("16.6") < parse_version("16.55")
    assert len(read_export(shared_data / CATS, workflow_version="13")) == 147
    assert len(read_export(shared_data / CATS, workflow_version="13.16")) == 18
    with pytest.raises(InputError, match="no classifications of workflow version 99"):
        read_export(shared_data / CATS, workflow_version="99")
    with pytest.raises(InputError, match="not 'major' or 'major.minor'"):
        parse_version("v2")


def test_several_workflows_need_a_choice(shared_data):
    """A mixed export must name its workflow; an absent one is an error too."""
    with pytest.raises(InputError, match="choose one with --workflow-id"):
        read_classifications(shared_data / MIXED)
    with pytest.raises(InputError, match="workflow 5 is not in the export"):
        read_classifications(shared_data / MIXED, workflow_id=5)


@pytest.mark.parametrize(
    ("path", "kwargs", "kind"),
    [
        (CATS, {}, "drawing"),
        (ANDROMEDA, {}, "drawing"),
        (MIXED, {"workflow_id": 4994}, "survey"),
        (MIXED, {"workflow_id": 4759, "task": "T2"}, "multiple-answer question"),
        (MIXED, {"workflow_id": 4870, "task": "T0"}, "drawing"),
    ],
)
def test_other_task_types_are_clear_errors(shared_data, path, kwargs, kind):
    """Drawing, survey and multiple-answer exports are rejected with the task type named."""
    with pytest.raises(
        InputError, match=f"is a {kind} task; realbogus reads a single-answer question"
    ):
        read_classifications(shared_data / path, **kwargs)


def test_text_task_answers_are_unknown(shared_data):
    """A free-text task's strings are none of the answers: error naming them, or dropped on request."""
    with pytest.raises(InputError, match="Calm and light Easterly airs"):
        read_classifications(shared_data / MIXED, workflow_id=4870, task="T1")
    c = read_classifications(
        shared_data / FOSSIL,
        workflow_id=1962,
        task="T5",
        answers=("OK to study", "Nothing of interest"),
        unknown_answers="drop",
    )
    assert c.dropped["unknown_answer"] == 1  # "Not good enough"
    assert len(c.votes) == 24 and set(c.votes["vote"]) == {0, 1}


def test_fossil_finder_trailing_newline_and_missing_answer(shared_data):
    """'Too Noisy (speckled)\\n' matches its label; a null answer drops the row."""
    c = read_classifications(
        shared_data / MIXED,
        workflow_id=371,
        task="T5",
        answers=("OK to study", "Too Noisy (speckled)"),
    )
    assert (c.votes["answer"] == "Too Noisy (speckled)").sum() == 1
    c2 = read_classifications(
        shared_data / FOSSIL,
        workflow_id=371,
        task="T5",
        answers=("OK to study", "Too Bushy"),
        unknown_answers="drop",
    )
    assert c2.dropped["no_answer"] == 1


def test_already_seen_and_seen_before_are_dropped(shared_data, tmp_path):
    """Repeat views flagged by Panoptes are dropped; legacy `seen_before` counts too."""
    e = pd.read_csv(shared_data / SLSN, dtype=str, keep_default_na=False)
    meta = json.loads(e.at[2, "metadata"])
    meta["subject_selection_state"]["already_seen"] = True
    e.at[2, "metadata"] = json.dumps(meta)
    meta = json.loads(e.at[4, "metadata"])
    meta["seen_before"] = True
    e.at[4, "metadata"] = json.dumps(meta)
    e.to_csv(tmp_path / "x.csv", index=False)
    c = read_classifications(tmp_path / "x.csv", answers=("Yes", "No"))
    assert c.dropped["already_seen"] == 2 and len(c.votes) == 5
    assert (
        len(
            read_classifications(
                tmp_path / "x.csv", answers=("Yes", "No"), drop_already_seen=False
            ).votes
        )
        == 7
    )


def _rubin_like(tmp_path, rows):
    """A tiny export in the real format with Real/Bogus answers and feedback metadata."""
    header = [
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
    ]
    out = []
    for cid, name, uid, t, sid, value, feedback in rows:
        sd = {"retired": None, "#diaSourceId": sid * 10, "#origin": "ss"}
        if feedback is not None:
            sd["#feedback_1_answer"] = feedback
        out.append(
            [
                cid,
                name,
                uid,
                "abc",
                24125,
                "RDD",
                "12.3",
                t,
                "",
                "",
                "{}",
                json.dumps([{"task": "T0", "task_label": "Real or Bogus?", "value": value}]),
                json.dumps({str(sid): sd}),
                sid,
            ]
        )
    path = tmp_path / "rdd.csv"
    pd.DataFrame(out, columns=header).to_csv(path, index=False)
    return path


def test_indices_duplicates_order_and_feedback_gold(tmp_path):
    """Answer indices and label strings mix; ties in created_at break by id; first duplicate kept."""
    path = _rubin_like(
        tmp_path,
        [
            (12, "ann", "7", "2025-11-12 10:00:00 UTC", 1, "Bogus\n", "1"),
            (11, "ann", "7", "2025-11-12 10:00:00 UTC", 2, 0, "0"),
            (
                13,
                "ann",
                "7",
                "2025-11-12 10:00:05 UTC",
                1,
                "Real",
                "1",
            ),  # duplicate of (7, 1): dropped
            (10, "not-logged-in-ff", "", "2025-11-12 09:00:00 UTC", 3, "real", None),
        ],
    )
    c = read_classifications(path)
    assert c.votes["classification_id"].tolist() == [10, 11, 12]
    assert c.votes["vote"].tolist() == [1, 1, 0]
    assert c.dropped["duplicate"] == 1
    assert c.gold.to_dict() == {1: 0, 2: 1}
    assert c.subjects.set_index("subject_id")["diaSourceId"].to_dict() == {1: 10, 2: 20, 3: 30}


def test_reference_csv_replaces_feedback(tmp_path):
    """A reference CSV (label or answer column) gives the gold labels instead of the metadata."""
    path = _rubin_like(tmp_path, [(1, "a", "1", "2025-11-12 10:00:00 UTC", 1, "Real", "1")])
    (tmp_path / "ref.csv").write_text("subject_id,answer\n1,Real\n5,1\n")
    c = read_classifications(path, reference=tmp_path / "ref.csv")
    assert c.gold.to_dict() == {1: 1, 5: 0}
    (tmp_path / "bad.csv").write_text("subject_id,label\n1,1\n1,0\n")
    with pytest.raises(InputError, match="conflicting labels"):
        read_reference(tmp_path / "bad.csv")
    (tmp_path / "cols.csv").write_text("id,label\n1,1\n")
    with pytest.raises(InputError, match="needs subject_id"):
        read_reference(tmp_path / "cols.csv")


def test_bad_inputs(tmp_path):
    """Missing columns, bad JSON and bad options are clear errors."""
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    with pytest.raises(InputError, match="missing columns"):
        read_classifications(tmp_path / "a.csv")
    with pytest.raises(InputError, match="not a readable CSV"):
        read_classifications(tmp_path / "nope.csv")
    with pytest.raises(ConfigError, match="two distinct labels"):
        read_classifications(tmp_path / "a.csv", answers=("Real", "real"))
    path = _rubin_like(tmp_path, [(1, "a", "1", "2025-11-12 10:00:00 UTC", 1, "Real", None)])
    e = pd.read_csv(path, dtype=str, keep_default_na=False)
    e.at[0, "annotations"] = "[{"
    e.to_csv(tmp_path / "j.csv", index=False)
    with pytest.raises(InputError, match="not valid JSON"):
        read_classifications(tmp_path / "j.csv")


def test_live_only_drops_development_classifications(shared_data, tmp_path):
    """live_project = false rows are kept by default and dropped with live_only."""
    e = pd.read_csv(shared_data / SLSN, dtype=str, keep_default_na=False)
    meta = json.loads(e.at[0, "metadata"])
    meta["live_project"] = False
    e.at[0, "metadata"] = json.dumps(meta)
    e.to_csv(tmp_path / "x.csv", index=False)
    assert len(read_classifications(tmp_path / "x.csv", answers=("Yes", "No")).votes) == 7
    c = read_classifications(tmp_path / "x.csv", answers=("Yes", "No"), live_only=True)
    assert len(c.votes) == 6 and c.dropped["not_live"] == 1


def test_workflow_export_gives_answer_labels(shared_data, tmp_path):
    """The real workflow export: T0/T1 are single-answer questions with labels Yes/No in order."""
    wf = shared_data / "crowd/panoptes/aggregation-for-caesar__wf_export.csv"
    assert workflow_answers(wf, workflow_id=10) == ("Yes", "No")
    assert workflow_answers(wf, workflow_id=10, task="T1", workflow_version="14.52") == (
        "Yes",
        "No",
    )
    answers = workflow_answers(wf, workflow_id=10)
    assert len(read_classifications(shared_data / SLSN, answers=answers).votes) == 7
    with pytest.raises(InputError, match="has no task T9"):
        workflow_answers(wf, workflow_id=10, task="T9")
    with pytest.raises(InputError, match="no version 3"):
        workflow_answers(wf, workflow_id=10, workflow_version="3")
    e = pd.read_csv(wf, dtype=str, keep_default_na=False)
    tasks = json.loads(e.at[5, "tasks"])
    tasks["T0"]["type"] = "drawing"
    e.at[5, "tasks"] = json.dumps(tasks)
    e.to_csv(tmp_path / "wf.csv", index=False)
    with pytest.raises(InputError, match="is a 'drawing' task"):
        workflow_answers(tmp_path / "wf.csv", workflow_id=10)


def test_real_answer_need_not_be_first(tmp_path):
    """With index order (Bogus, Real), real_answer picks the Real class for votes and gold."""
    path = _rubin_like(
        tmp_path,
        [
            (
                1,
                "a",
                "1",
                "2025-11-12 10:00:00 UTC",
                1,
                0,
                "1",
            ),  # index 0 = Bogus; feedback "1" = Real
            (2, "a", "1", "2025-11-12 10:00:01 UTC", 2, "Real", "0"),
        ],
    )
    c = read_classifications(path, answers=("Bogus", "Real"), real_answer="real")
    assert c.votes["vote"].tolist() == [0, 1] and c.votes["answer"].tolist() == ["Bogus", "Real"]
    assert c.gold.to_dict() == {1: 1, 2: 0} and c.real_answer == "Real"
    with pytest.raises(ConfigError, match="real_answer 'Maybe'"):
        read_classifications(path, real_answer="Maybe")
