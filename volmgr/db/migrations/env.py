"""Alembic environment: runs on the connection volmgr.db.migration hands it."""

from __future__ import annotations

from alembic import context

from volmgr.db import models

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=models.Base.metadata,
    render_as_batch=True,  # SQLite can only ALTER tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
