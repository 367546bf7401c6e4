"""Schema migrations (Alembic): upgrade, downgrade, current revision and drift check.

The migration scripts ship inside the package, so ``volmgr-manage db sync`` works from
an installed wheel as well as from a checkout.
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from volmgr import exception
from volmgr.db import engine as engine_mod
from volmgr.db import models

_SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", _SCRIPTS)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision``; a no-op when it is there already."""
    with engine.begin() as connection:
        command.upgrade(_config(connection), revision)


def downgrade(engine: sa.Engine, revision: str) -> None:
    with engine.begin() as connection:
        command.downgrade(_config(connection), revision)


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def require_schema(engine: sa.Engine) -> None:
    """Raise DBError with the fix when the database has no volmgr schema or an old one."""
    try:
        current = current_revision(engine)
    except sa.exc.DBAPIError as error:
        raise exception.DBError(reason=f"cannot reach the database: {error.orig}") from None
    head = head_revision()
    if current is None:
        raise exception.DBError(reason="the database has no volmgr schema; run "
                                "'volmgr-manage db sync'")
    if current != head:
        raise exception.DBError(reason=f"the database schema is at revision {current}, "
                                f"this volmgr needs {head}; run 'volmgr-manage db sync'")


def require_database(url: str) -> None:
    """``require_schema`` for the database at ``url``, without creating an SQLite file
    that does not exist yet."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not os.path.exists(parsed.database):
        raise exception.DBError(reason=f"{parsed.database} does not exist; run "
                                "'volmgr-manage db sync' (or pass --config-file)")
    engine = engine_mod.create_engine(url)
    try:
        require_schema(engine)
    finally:
        engine.dispose()


def drift(engine: sa.Engine) -> list[Any]:
    """Differences between the models and the database schema; empty means in sync.

    A database that is not at the head revision is reported as drift too.
    """
    problems: list[Any] = []
    current, head = current_revision(engine), head_revision()
    if current is None:
        return [("revision", "the database has no volmgr schema; run 'volmgr-manage db sync'")]
    if current != head:
        problems.append(("revision", f"database is at {current}, migrations head is {head}"))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        problems.extend(compare_metadata(context, models.Base.metadata))
    return problems
