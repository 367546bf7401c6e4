"""Fixtures shared by unit and functional tests."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from oslo_config import cfg

from tests import services
from volmgr import config
from volmgr.db import Database, migration
from volmgr.db import engine as engine_mod


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """Entry points install a stderr handler on the root logger; keep it from leaking
    into the next test's captured output."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def conf(tmp_path: Any) -> cfg.ConfigOpts:
    """A parsed conf with every volmgr option, state under tmp_path, no config file."""
    conf = config.new_conf()
    config.parse_args([], conf, default_config_files=[])
    conf.set_override("state_path", str(tmp_path / "state"))
    conf.set_override("connection", f"sqlite:///{tmp_path}/volmgr.sqlite", group="database")
    return conf


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite file migrated to head per test session, for ``db`` to copy: a copy
    costs ~2 ms of CPU where running the migrations costs ~150 ms and several fsyncs,
    for each of the many tests that need a database."""
    path = tmp_path_factory.mktemp("migrated") / "volmgr.sqlite"
    engine = engine_mod.create_engine(f"sqlite:///{path}")
    try:
        migration.upgrade(engine)
    finally:
        engine.dispose()
    return str(path)


@pytest.fixture
def db(conf: cfg.ConfigOpts, migrated_sqlite: str) -> Iterator[Database]:
    """A migrated SQLite database (file, WAL) for unit tests: a copy of the session's
    migrated file (``migrated_sqlite``), or migrated here for any other URL."""
    url = sa.engine.make_url(conf.database.connection)
    copied = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if copied:
        with contextlib.closing(sqlite3.connect(migrated_sqlite)) as source, \
                contextlib.closing(sqlite3.connect(str(url.database))) as target:
            source.backup(target)
    database = Database.from_conf(conf)
    if not copied:
        migration.upgrade(database.engine)
    yield database
    database.dispose()


def _create_scratch_database(admin_url: str, name: str) -> str:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f"CREATE DATABASE {name}"))
    finally:
        admin.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


def _drop_scratch_database(admin_url: str, name: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            if admin.dialect.name == "postgresql":
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
    finally:
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    services.require_port("PostgreSQL", "127.0.0.1", 5432)
    name = f"volmgr_test_{uuid.uuid4().hex[:12]}"
    url = _create_scratch_database(services.POSTGRES_ADMIN_URL, name)
    yield url
    _drop_scratch_database(services.POSTGRES_ADMIN_URL, name)


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """URL of a fresh, empty MariaDB/MySQL database, dropped after the test."""
    services.require_port("MariaDB", "127.0.0.1", 3306)
    name = f"volmgr_test_{uuid.uuid4().hex[:12]}"
    url = _create_scratch_database(services.MYSQL_ADMIN_URL, name)
    yield url
    _drop_scratch_database(services.MYSQL_ADMIN_URL, name)


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[Database]:
    """A migrated PostgreSQL database with default quota limits."""
    database = Database(engine_mod.create_engine(postgres_url),
                        quota_limits={"volumes": 1000, "gigabytes": 100000,
                                      "snapshots": 1000})
    migration.upgrade(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def rabbit_url() -> str:
    services.require_port("RabbitMQ", "127.0.0.1", 5672)
    return services.RABBIT_URL
