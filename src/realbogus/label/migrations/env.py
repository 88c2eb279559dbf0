"""Alembic environment of the labelling database: runs on the connection the store passes in."""

from __future__ import annotations

from alembic import context

from realbogus.label.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
