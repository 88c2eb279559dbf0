"""Storage of the labelling service: SQLite (default, WAL) or PostgreSQL, through SQLAlchemy.

Every write is one short transaction; on SQLite it starts with ``BEGIN IMMEDIATE`` so that
concurrent writers queue on the lock (``busy_timeout``) instead of failing, and WAL with
``synchronous=NORMAL`` keeps every committed row through a killed process. A classification is
acknowledged to its client only after its transaction has committed.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from ..errors import ConfigError, InputError
from .schema import ROLES, classifications, sessions, settings, subjects, users

__all__ = [
    "ANSWERS",
    "Retirement",
    "Store",
    "database_url",
    "open_store",
]

#: Answer strings of the API and their stored codes (1 = Real, 0 = Bogus).
ANSWERS = {"real": 1, "bogus": 0}
_MIGRATIONS = Path(__file__).with_name("migrations")


def database_url(url: str | os.PathLike) -> str:
    """Normalise a `--db` value to an SQLAlchemy URL.

    A plain path (or ``sqlite:///path``) is SQLite; ``postgresql://`` and ``postgres://`` use
    the psycopg 3 driver. Anything else is a `ConfigError` naming `--db`.
    """
    text = os.fspath(url)
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if text.startswith(("postgresql+psycopg://", "sqlite://")):
        return text
    if "://" in text:
        msg = f"--db {text!r}: use a file path, sqlite:///PATH or postgresql://USER@HOST/DB"
        raise ConfigError(msg)
    return f"sqlite:///{Path(text).resolve()}"


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:  # noqa: ANN001
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@dataclass(frozen=True)
class Retirement:
    """When a subject leaves the queue (DMTN-337's Zooniverse rule; gold subjects never retire).

    Attributes
    ----------
    agree_votes : int
        Retire after this many classifications if they all agree ("consensus"; 2).
    max_votes : int
        Otherwise retire after this many ("classification_count"; 7).
    """

    agree_votes: int = 2
    max_votes: int = 7

    def __post_init__(self) -> None:
        if not 1 <= self.agree_votes <= self.max_votes:
            msg = f"retirement needs 1 <= agree_votes <= max_votes; got {self.agree_votes}, {self.max_votes}"
            raise ConfigError(msg)

    def reason(self, answers: Sequence[int]) -> str | None:
        """The retirement reason after `answers` (in time order), or None to keep the subject."""
        first = list(answers[: self.agree_votes])
        if len(first) == self.agree_votes and len(set(first)) == 1:
            return "consensus"
        if len(answers) >= self.max_votes:
            return "classification_count"
        return None


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; they are UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class Store:
    """The labelling database. Thread-safe: every method uses its own short transaction.

    Parameters
    ----------
    url : str
        SQLAlchemy URL (see `database_url`).
    retirement : Retirement, optional
        The retirement rule.
    """

    def __init__(self, url: str, *, retirement: Retirement | None = None) -> None:
        self.url = database_url(url)
        self.retirement = retirement or Retirement()
        self.is_sqlite = self.url.startswith("sqlite")
        self._write_lock = threading.Lock()
        if self.is_sqlite:
            self.engine = sa.create_engine(self.url, pool_size=16, max_overflow=32)
            _sqlite_pragmas(self.engine)
        else:
            self.engine = sa.create_engine(self.url, pool_size=16, max_overflow=32)

    # --- transactions -----------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (SQLite: BEGIN IMMEDIATE); commits when the block succeeds.

        On SQLite, this process's writers also queue on a lock first: SQLite's busy handler
        sleeps in steps of up to 100 ms while holding a pooled connection, a lock wakes the
        next writer at once (other processes still meet the busy timeout).
        """
        with self._write_lock if self.is_sqlite else nullcontext():
            with self.engine.connect().execution_options(immediate=True) as conn, conn.begin():
                yield conn

    def migrate(self) -> None:
        """Bring the schema to the newest alembic revision (creates the tables on a new DB)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with self.engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()

    def revision(self) -> str | None:
        """The schema's alembic revision, None before `migrate`."""
        with self.read() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # --- settings ---------------------------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        """A stored setting (e.g. the data fingerprint), None when unset."""
        with self.read() as conn:
            return conn.execute(
                sa.select(settings.c.value).where(settings.c.key == key)
            ).scalar_one_or_none()

    def set_setting(self, key: str, value: str) -> None:
        """Store a setting, replacing an earlier value."""
        with self.write() as conn:
            conn.execute(sa.delete(settings).where(settings.c.key == key))
            conn.execute(sa.insert(settings).values(key=key, value=value))

    # --- users and sessions -----------------------------------------------------------------

    def add_user(self, username: str, password_hash: str, role: str) -> int:
        """Create a person; `InputError` if the name is taken or the role unknown."""
        if role not in ROLES:
            msg = f"--role must be one of {', '.join(ROLES)}; got {role!r}"
            raise ConfigError(msg)
        if not username or len(username) > 64 or not username.isprintable():
            msg = f"user name must be 1-64 printable characters; got {username!r}"
            raise InputError(msg)
        try:
            with self.write() as conn:
                return int(
                    conn.execute(
                        sa.insert(users)
                        .values(
                            username=username,
                            password_hash=password_hash,
                            role=role,
                            created_at=_now(),
                        )
                        .returning(users.c.id)
                    ).scalar_one()
                )
        except sa.exc.IntegrityError:
            msg = f"user {username!r} already exists; choose another name"
            raise InputError(msg) from None

    def user_by_name(self, username: str) -> dict | None:
        """id, username, password_hash, role of a person, or None."""
        with self.read() as conn:
            row = conn.execute(sa.select(users).where(users.c.username == username)).first()
        return dict(row._mapping) if row else None

    def list_users(self) -> list[dict]:
        """Every person: id, username, role, created_at, n_classifications."""
        n = (
            sa.select(sa.func.count())
            .where(classifications.c.user_id == users.c.id)
            .scalar_subquery()
        )
        with self.read() as conn:
            rows = conn.execute(
                sa.select(users.c.id, users.c.username, users.c.role, n.label("n")).order_by(
                    users.c.id
                )
            ).all()
        return [dict(r._mapping) for r in rows]

    def create_session(
        self, user_id: int, token_hash: str, csrf_token: str, *, lifetime: timedelta
    ) -> None:
        """Store a new session (the token itself is never stored, only its hash)."""
        now = _now()
        with self.write() as conn:
            conn.execute(sa.delete(sessions).where(sessions.c.expires_at < now))
            conn.execute(
                sa.insert(sessions).values(
                    token_hash=token_hash,
                    user_id=user_id,
                    csrf_token=csrf_token,
                    created_at=now,
                    expires_at=now + lifetime,
                )
            )

    def session_user(self, token_hash: str) -> dict | None:
        """The person of a live session: id, username, role, csrf_token; None if expired."""
        with self.read() as conn:
            row = conn.execute(
                sa.select(
                    users.c.id,
                    users.c.username,
                    users.c.role,
                    sessions.c.csrf_token,
                    sessions.c.expires_at,
                )
                .join(users, users.c.id == sessions.c.user_id)
                .where(sessions.c.token_hash == token_hash)
            ).first()
        if row is None or _utc(row.expires_at) < _now():
            return None
        return {"id": row.id, "username": row.username, "role": row.role, "csrf": row.csrf_token}

    def delete_session(self, token_hash: str) -> None:
        """End a session."""
        with self.write() as conn:
            conn.execute(sa.delete(sessions).where(sessions.c.token_hash == token_hash))

    # --- subjects ---------------------------------------------------------------------------

    def add_subjects(self, table: pd.DataFrame) -> int:
        """Insert subjects not yet stored (keyed by `diaSourceId`); returns how many were new.

        Parameters
        ----------
        table : DataFrame
            `diaSourceId` (int64), `origin` (str), `metadata_json` (str), `priority` (float),
            optional `gold` (1/0/NA), `model_score`, `model_uncertainty`.
        """
        with self.read() as conn:
            have = set(conn.execute(sa.select(subjects.c.dia_source_id)).scalars())
        new = table[~table["diaSourceId"].isin(have)]
        rows = []
        for rec in new.to_dict("records"):
            gold = rec.get("gold")
            rows.append(
                {
                    "dia_source_id": int(rec["diaSourceId"]),
                    "origin": str(rec.get("origin", "unknown"))[:64],
                    "metadata_json": rec["metadata_json"],
                    "gold": None if gold is None or pd.isna(gold) else int(gold),
                    "model_score": _float_or_none(rec.get("model_score")),
                    "model_uncertainty": _float_or_none(rec.get("model_uncertainty")),
                    "priority": float(rec["priority"]),
                    "p_real": 0.5,
                    "n_classifications": 0,
                    "retired": False,
                }
            )
        for start in range(0, len(rows), 2000):
            with self.write() as conn:
                conn.execute(sa.insert(subjects), rows[start : start + 2000])
        return len(rows)

    def set_priorities(self, priority: dict[int, float]) -> None:
        """Set queue priorities by subject id."""
        items = [{"sid": int(k), "p": float(v)} for k, v in priority.items()]
        stmt = (
            sa.update(subjects)
            .where(subjects.c.id == sa.bindparam("sid"))
            .values(priority=sa.bindparam("p"))
        )
        for start in range(0, len(items), 2000):
            with self.write() as conn:
                conn.execute(stmt, items[start : start + 2000])

    def set_gold(self, labels: dict[int, int | None]) -> int:
        """Set (1 Real / 0 Bogus) or clear (None) the gold label of subjects by subject id.

        Returns the number of subjects changed; an unknown id is an `InputError`.
        """
        items = [{"sid": int(k), "g": v if v is None else int(v)} for k, v in labels.items()]
        if any(i["g"] not in (None, 0, 1) for i in items):
            msg = "gold labels must be 1 (Real), 0 (Bogus) or null"
            raise InputError(msg)
        with self.write() as conn:
            known = set(
                conn.execute(
                    sa.select(subjects.c.id).where(subjects.c.id.in_([i["sid"] for i in items]))
                ).scalars()
            )
            unknown = sorted({i["sid"] for i in items} - known)
            if unknown:
                msg = f"unknown subject ids {unknown[:5]}"
                raise InputError(msg)
            if items:
                conn.execute(
                    sa.update(subjects)
                    .where(subjects.c.id == sa.bindparam("sid"))
                    .values(gold=sa.bindparam("g"), retired=False, retirement_reason=None),
                    items,
                )
        return len(items)

    def subject(self, subject_id: int) -> dict | None:
        """One subject row as a dict, or None."""
        with self.read() as conn:
            row = conn.execute(sa.select(subjects).where(subjects.c.id == subject_id)).first()
        return dict(row._mapping) if row else None

    def visible(self, user_id: int, subject_id: int) -> bool | None:
        """Whether a labeller may see a subject: it is in their queue (unretired, or gold) or
        in their own history. None if there is no such subject."""
        with self.read() as conn:
            row = conn.execute(
                sa.select(subjects.c.retired, subjects.c.gold).where(subjects.c.id == subject_id)
            ).first()
            if row is None:
                return None
            if not row.retired or row.gold is not None:
                return True
            mine = conn.execute(
                sa.select(classifications.c.id).where(
                    (classifications.c.subject_id == subject_id)
                    & (classifications.c.user_id == user_id)
                )
            ).first()
            return mine is not None

    def subjects_frame(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Every subject (one row each; all columns or `columns`), in id order."""
        cols = [subjects.c[c] for c in columns] if columns else [subjects]
        with self.read() as conn:
            return pd.read_sql(sa.select(*cols).order_by(subjects.c.id), conn)

    def counts(self) -> dict[str, int]:
        """Subjects, retired, gold, classifications, users."""
        with self.read() as conn:

            def one(stmt: sa.Select) -> int:
                return int(conn.execute(stmt).scalar_one())

            return {
                "subjects": one(sa.select(sa.func.count()).select_from(subjects)),
                "retired": one(
                    sa.select(sa.func.count()).select_from(subjects).where(subjects.c.retired)
                ),
                "gold": one(
                    sa.select(sa.func.count())
                    .select_from(subjects)
                    .where(subjects.c.gold.is_not(None))
                ),
                "classifications": one(sa.select(sa.func.count()).select_from(classifications)),
                "users": one(sa.select(sa.func.count()).select_from(users)),
            }

    # --- the queue --------------------------------------------------------------------------

    def next_subject(
        self, user_id: int, *, gold_rate: float = 0.0, top_k: int = 8, rng: random.Random
    ) -> dict | None:
        """The next subject for a person: a gold subject with probability `gold_rate` (when one
        is left unseen), else one of the `top_k` highest-priority unretired subjects they have
        not classified (drawn at random, so concurrent people spread over the queue)."""
        with self.read() as conn:
            if gold_rate > 0 and rng.random() < gold_rate:
                rows = conn.execute(_GOLD, {"user_id": user_id, "limit": 64}).all()
                if rows:
                    return dict(rng.choice(rows)._mapping)
            rows = conn.execute(_QUEUE, {"user_id": user_id, "limit": top_k}).all()
            return dict(rng.choice(rows)._mapping) if rows else None

    @staticmethod
    def queue_query() -> sa.Select:
        """The "next subject" statement (params `user_id`, `limit`): the `limit`
        highest-priority unretired, non-gold subjects that person has not classified (ties by
        id), whole rows. Built once; served by the index ``ix_subjects_queue_order``, no sort."""
        return _QUEUE

    @staticmethod
    def gold_query() -> sa.Select:
        """The gold draw's statement (params `user_id`, `limit`): up to `limit` gold subjects
        that person has not classified (index ``ix_subjects_gold``)."""
        return _GOLD

    # --- classifications --------------------------------------------------------------------

    def classify(self, user_id: int, subject_id: int, answer: int) -> dict:
        """Record one answer (1 Real, 0 Bogus) and apply the retirement rule, in one transaction.

        Returns
        -------
        dict
            `classification_id`, `subject_id`, `gold` (the subject's gold label or None),
            `retired` (bool). A repeated (person, subject) pair is an `InputError`; an unknown
            subject a `LookupError`.
        """
        if answer not in (0, 1):
            msg = f"answer must be 1 (Real) or 0 (Bogus); got {answer!r}"
            raise InputError(msg)
        now = _now()
        try:
            with self.write() as conn:
                subj = conn.execute(
                    sa.select(subjects.c.id, subjects.c.gold, subjects.c.retired)
                    .where(subjects.c.id == subject_id)
                    .with_for_update()
                ).first()
                if subj is None:
                    msg = f"no subject {subject_id}"
                    raise LookupError(msg)
                cid = conn.execute(
                    sa.insert(classifications)
                    .values(user_id=user_id, subject_id=subject_id, answer=answer, created_at=now)
                    .returning(classifications.c.id)
                ).scalar_one()
                retired = self._update_subject(conn, subject_id, subj.gold, now)
        except sa.exc.IntegrityError:
            msg = f"subject {subject_id} was already classified by this person"
            raise InputError(msg) from None
        return {
            "classification_id": int(cid),
            "subject_id": subject_id,
            "gold": subj.gold,
            "retired": retired,
        }

    def _update_subject(
        self, conn: Connection, subject_id: int, gold: int | None, now: datetime
    ) -> bool:
        answers = (
            conn.execute(
                sa.select(classifications.c.answer)
                .where(classifications.c.subject_id == subject_id)
                .order_by(classifications.c.id)
            )
            .scalars()
            .all()
        )
        reason = None if gold is not None else self.retirement.reason(answers)
        conn.execute(
            sa.update(subjects)
            .where(subjects.c.id == subject_id)
            .values(
                n_classifications=len(answers),
                retired=reason is not None,
                retirement_reason=reason,
                retired_at=now if reason else None,
            )
        )
        return reason is not None

    def undo(self, user_id: int) -> dict | None:
        """Delete a person's latest classification and re-apply the retirement rule.

        Returns the removed `{"classification_id", "subject_id", "answer"}`, or None if the
        person has none.
        """
        with self.write() as conn:
            row = conn.execute(
                sa.select(
                    classifications.c.id, classifications.c.subject_id, classifications.c.answer
                )
                .where(classifications.c.user_id == user_id)
                .order_by(classifications.c.id.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            conn.execute(sa.delete(classifications).where(classifications.c.id == row.id))
            gold = conn.execute(
                sa.select(subjects.c.gold).where(subjects.c.id == row.subject_id)
            ).scalar_one()
            self._update_subject(conn, row.subject_id, gold, _now())
        return {
            "classification_id": int(row.id),
            "subject_id": int(row.subject_id),
            "answer": "real" if row.answer == 1 else "bogus",
        }

    def history(self, user_id: int, *, limit: int = 100) -> list[dict]:
        """A person's classifications, newest first: id, subject_id, dia_source_id, answer,
        created_at (ISO), gold."""
        with self.read() as conn:
            rows = conn.execute(
                sa.select(
                    classifications.c.id,
                    classifications.c.subject_id,
                    subjects.c.dia_source_id,
                    classifications.c.answer,
                    classifications.c.created_at,
                    subjects.c.gold,
                )
                .join(subjects, subjects.c.id == classifications.c.subject_id)
                .where(classifications.c.user_id == user_id)
                .order_by(classifications.c.id.desc())
                .limit(limit)
            ).all()
        return [
            {
                "classification_id": int(r.id),
                "subject_id": int(r.subject_id),
                "dia_source_id": int(r.dia_source_id),
                "answer": "real" if r.answer == 1 else "bogus",
                "created_at": _utc(r.created_at).isoformat(),
                "gold": None if r.gold is None else ("real" if r.gold == 1 else "bogus"),
            }
            for r in rows
        ]

    def votes_frame(self) -> pd.DataFrame:
        """Every classification in id order, for SWAP and the export.

        Columns: `classification_id`, `user_id`, `username`, `role`, `subject_id`, `vote` (1/0),
        `created_at` (UTC).
        """
        with self.read() as conn:
            rows = conn.execute(
                sa.select(
                    classifications.c.id,
                    classifications.c.user_id,
                    users.c.username,
                    users.c.role,
                    classifications.c.subject_id,
                    classifications.c.answer,
                    classifications.c.created_at,
                )
                .join(users, users.c.id == classifications.c.user_id)
                .order_by(classifications.c.id)
            ).all()
        frame = pd.DataFrame(
            rows,
            columns=[
                "classification_id",
                "user_id",
                "username",
                "role",
                "subject_id",
                "vote",
                "created_at",
            ],
        )
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        frame["vote"] = frame["vote"].astype(np.int8)
        return frame

    def set_p_real(self, p_real: dict[int, float], priority: dict[int, float] | None) -> None:
        """Store live SWAP Pr(Real) (and, for the SWAP queue, priorities) by subject id."""
        items = [
            {"sid": int(k), "p": float(v), "q": float((priority or {}).get(k, 0.0))}
            for k, v in p_real.items()
        ]
        values = {"p_real": sa.bindparam("p")}
        if priority is not None:
            values["priority"] = sa.bindparam("q")
        stmt = sa.update(subjects).where(subjects.c.id == sa.bindparam("sid")).values(**values)
        for start in range(0, len(items), 500):
            if start:
                time.sleep(0.002)  # let waiting requests have the write lock and the GIL
            with self.write() as conn:
                conn.execute(stmt, items[start : start + 500])


_UNSEEN = ~sa.exists().where(
    (classifications.c.subject_id == subjects.c.id)
    & (classifications.c.user_id == sa.bindparam("user_id", type_=sa.Integer))
)
# "retired = false", not "NOT retired": the database then reads the queue index in order.
_QUEUE = (
    sa.select(subjects)
    .where((subjects.c.retired == sa.false()) & subjects.c.gold.is_(None) & _UNSEEN)
    .order_by(subjects.c.priority.desc(), subjects.c.id)
    .limit(sa.bindparam("limit", type_=sa.Integer))
)
# Gold is 1 or 0 when set: "IN (0, 1)" is an index lookup where "IS NOT NULL" is a scan.
_GOLD = (
    sa.select(subjects)
    .where(subjects.c.gold.in_((0, 1)) & _UNSEEN)
    .limit(sa.bindparam("limit", type_=sa.Integer))
)


def _float_or_none(value: object) -> float | None:
    if value is None:
        return None
    value = float(value)  # type: ignore[arg-type]
    return None if not np.isfinite(value) else value


def open_store(url: str | os.PathLike, *, migrate: bool = True, **kwargs: object) -> Store:
    """Open (and by default migrate) the labelling database at `url` (see `database_url`)."""
    store = Store(database_url(url), **kwargs)  # type: ignore[arg-type]
    if migrate:
        store.migrate()
    return store
