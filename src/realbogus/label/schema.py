"""The labelling database schema (SQLAlchemy Core tables), shared by the store and alembic.

Tables: `users` (argon2 password hashes, roles), `sessions` (hashed session tokens with their
CSRF token), `subjects` (one detection each, with its gold label, model uncertainty, queue
priority, live SWAP Pr(Real) and retirement) and `classifications` (one answer per person and
subject; 1 = Real, 0 = Bogus). Times are UTC.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["ROLES", "metadata", "users", "sessions", "subjects", "classifications", "settings"]

#: Roles, least to most privileged.
ROLES = ("volunteer", "expert", "admin")

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

subjects = sa.Table(
    "subjects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dia_source_id", sa.BigInteger, nullable=False, unique=True),
    sa.Column("origin", sa.String(64), nullable=False),
    sa.Column("metadata_json", sa.Text, nullable=False),
    sa.Column("gold", sa.SmallInteger, nullable=True),
    sa.Column("model_score", sa.Float, nullable=True),
    sa.Column("model_uncertainty", sa.Float, nullable=True),
    sa.Column("priority", sa.Float, nullable=False),
    sa.Column("p_real", sa.Float, nullable=False),
    sa.Column("n_classifications", sa.Integer, nullable=False),
    sa.Column("retired", sa.Boolean, nullable=False),
    sa.Column("retirement_reason", sa.String(32), nullable=True),
    sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_subjects_gold", "gold"),
)
#: The queue's order (highest priority first, ties by id) as an index: no sort per request.
sa.Index("ix_subjects_queue_order", subjects.c.retired, subjects.c.priority.desc(), subjects.c.id)

classifications = sa.Table(
    "classifications",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column(
        "subject_id",
        sa.Integer,
        sa.ForeignKey("subjects.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("answer", sa.SmallInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("user_id", "subject_id", name="uq_classifications_user_subject"),
    sa.Index("ix_classifications_subject", "subject_id"),
)

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
