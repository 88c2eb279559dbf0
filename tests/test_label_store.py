"""Storage of the labelling service, run against SQLite and PostgreSQL (REALBOGUS_TEST_POSTGRES_URL).

PostgreSQL runs when the URL is set (.ci/postgres.sh sets it in CI); outside CI the PostgreSQL
cases skip without it, in CI (CI=true) they fail.
"""

from __future__ import annotations

import os
import random
import threading
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from _label_helpers import POSTGRES_ENV, postgres_url
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from realbogus.errors import ConfigError, InputError
from realbogus.label.schema import metadata
from realbogus.label.store import Retirement, Store, database_url, open_store


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(database_url(url))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> Store:
    """A freshly migrated, empty store on each backend."""
    if request.param == "sqlite":
        url = str(tmp_path / "label.db")
    else:
        url = postgres_url()
        if url is None:
            if os.environ.get("CI") == "true":
                pytest.fail(f"{POSTGRES_ENV} is unset in CI: .ci/run must source .ci/postgres.sh")
            pytest.skip(f"{POSTGRES_ENV} unset (source .ci/postgres.sh to run these)")
        _reset_postgres(url)
    s = open_store(url)
    yield s
    s.close()


def _subjects(n: int, gold: dict[int, int] | None = None) -> pd.DataFrame:
    gold = gold or {}
    return pd.DataFrame(
        {
            "diaSourceId": [9000 + i for i in range(n)],
            "origin": "gaia",
            "metadata_json": "{}",
            "gold": [gold.get(i) for i in range(n)],
            "priority": [float(i) for i in range(n)],
        }
    )


def _ids(store: Store) -> list[int]:
    return store.subjects_frame()["id"].tolist()


def test_database_url():
    """Paths become SQLite URLs; postgresql:// uses psycopg 3; other schemes name --db."""
    assert database_url("x.db").startswith("sqlite:////")
    assert database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(ConfigError, match="--db"):
        database_url("mysql://u@h/db")


def test_migration_matches_schema(store):
    """alembic head creates exactly the tables, columns and indexes of schema.py; re-running
    the migration is a no-op."""
    assert store.revision() == "0002"
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    store.migrate()
    assert store.revision() == "0002"


def test_users_and_sessions(store):
    """Names are unique, roles checked, sessions expire and are stored by hash only."""
    uid = store.add_user("ada", "hash-a", "admin")
    with pytest.raises(InputError, match="already exists"):
        store.add_user("ada", "hash-b", "volunteer")
    with pytest.raises(ConfigError, match="--role"):
        store.add_user("bob", "h", "superuser")
    store.create_session(uid, "t1", "csrf1", lifetime=timedelta(hours=1))
    store.create_session(uid, "t2", "csrf2", lifetime=timedelta(seconds=-1))
    assert store.session_user("t1") == {
        "id": uid,
        "username": "ada",
        "role": "admin",
        "csrf": "csrf1",
    }
    assert store.session_user("t2") is None
    store.delete_session("t1")
    assert store.session_user("t1") is None


def test_subjects_idempotent_and_gold(store):
    """Adding the same detections twice stores them once; gold labels set, cleared, checked."""
    assert store.add_subjects(_subjects(5)) == 5
    assert store.add_subjects(_subjects(6)) == 1
    ids = _ids(store)
    assert store.set_gold({ids[0]: 1, ids[1]: 0}) == 2
    assert store.counts()["gold"] == 2
    store.set_gold({ids[1]: None})
    assert store.counts()["gold"] == 1
    with pytest.raises(InputError, match="unknown subject"):
        store.set_gold({10**6: 1})


def test_retirement_rule():
    """DMTN-337: retire at 2 if the first two agree, else at 7."""
    rule = Retirement()
    assert rule.reason([1]) is None
    assert rule.reason([1, 1]) == "consensus"
    assert rule.reason([0, 0]) == "consensus"
    assert rule.reason([1, 0, 1, 1, 1, 1]) is None
    assert rule.reason([1, 0, 1, 1, 1, 1, 0]) == "classification_count"
    with pytest.raises(ConfigError, match="agree_votes"):
        Retirement(agree_votes=3, max_votes=2)


def test_classify_retire_undo(store):
    """Consensus retires at 2, disagreement at 7; gold never retires; undo un-retires; a
    repeated (person, subject) pair is refused."""
    store.add_subjects(_subjects(3, gold={2: 1}))
    a, b, gold = _ids(store)
    people = [store.add_user(f"p{i}", "h", "volunteer") for i in range(8)]
    assert store.classify(people[0], a, 1)["retired"] is False
    assert store.classify(people[1], a, 1)["retired"] is True
    assert store.subject(a)["retirement_reason"] == "consensus"
    with pytest.raises(InputError, match="already classified"):
        store.classify(people[0], a, 0)
    with pytest.raises(LookupError):
        store.classify(people[0], 10**6, 0)
    removed = store.undo(people[1])
    assert removed == {
        "classification_id": removed["classification_id"],
        "subject_id": a,
        "answer": "real",
    }
    assert store.subject(a)["retired"] is False and store.subject(a)["n_classifications"] == 1
    for i, answer in enumerate([1, 0, 1, 1, 1, 0, 1]):
        out = store.classify(people[i], b, answer)
        assert out["retired"] is (i == 6)
    assert store.subject(b)["retirement_reason"] == "classification_count"
    for p in people[:3]:
        assert store.classify(p, gold, 1)["gold"] == 1
    assert store.subject(gold)["retired"] is False
    assert store.undo(store.add_user("nobody", "h", "volunteer")) is None


def test_next_subject_order(store):
    """Highest priority first; never a retired, gold or already-seen subject; None when done."""
    store.add_subjects(_subjects(4, gold={3: 0}))
    ids = _ids(store)  # priorities 0, 1, 2 (3 is gold)
    u = store.add_user("u", "h", "volunteer")
    rng = random.Random(0)
    seen = []
    for _ in range(3):
        row = store.next_subject(u, top_k=1, rng=rng)
        seen.append(row["id"])
        store.classify(u, row["id"], 1)
    assert seen == [ids[2], ids[1], ids[0]]
    assert store.next_subject(u, top_k=1, rng=rng) is None
    assert store.next_subject(u, gold_rate=1.0, rng=rng)["id"] == ids[3]
    v = store.add_user("v", "h", "volunteer")
    store.classify(v, ids[2], 1)  # ids[2] now retired by consensus (u and v agree)
    assert (
        store.next_subject(store.add_user("w", "h", "volunteer"), top_k=1, rng=rng)["id"] == ids[1]
    )


def test_concurrent_writers(store):
    """8 threads x 30 classifications at once: every one stored exactly once."""
    store.add_subjects(_subjects(40))
    ids = _ids(store)
    people = [store.add_user(f"t{i}", "h", "volunteer") for i in range(8)]
    errors: list[Exception] = []

    def work(uid: int) -> None:
        try:
            for sid in ids[:30]:
                store.classify(uid, sid, sid % 2)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(u,)) for u in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    votes = store.votes_frame()
    assert len(votes) == 240
    assert not votes.duplicated(["user_id", "subject_id"]).any()
    counts = store.subjects_frame().set_index("id")["n_classifications"]
    assert (counts.loc[ids[:30]] == 8).all() and (counts.loc[ids[30:]] == 0).all()


def test_queue_query_uses_the_index(tmp_path):
    """SQLite serves "next subject" from ix_subjects_queue_order (no sort of every subject) and
    the gold draw from ix_subjects_gold, and the order is still priority, then id."""
    store = open_store(str(tmp_path / "label.db"))
    try:
        table = _subjects(300, gold={5: 1, 7: 0})
        table["priority"] = [float(i % 3) for i in range(300)]  # many ties: broken by id
        store.add_subjects(table)
        u = store.add_user("u", "h", "volunteer")
        with store.read() as conn:
            for stmt, index in [
                (store.queue_query(), "ix_subjects_queue_order"),
                (store.gold_query(), "ix_subjects_gold"),
            ]:
                bound = stmt.params(user_id=u, limit=8)
                sql = str(bound.compile(store.engine, compile_kwargs={"literal_binds": True}))
                plan = " | ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
                assert f"USING INDEX {index}" in plan and "TEMP B-TREE" not in plan, plan
            top = [r.id for r in conn.execute(store.queue_query(), {"user_id": u, "limit": 8})]
        frame = store.subjects_frame()
        expect = frame[frame["gold"].isna()].sort_values(
            ["priority", "id"], ascending=[False, True]
        )
        assert top == expect["id"].head(8).tolist()
    finally:
        store.close()
