"""The volume-type data layer's specifications (tests/unit/test_db_types.py), run again
on real PostgreSQL and MariaDB: default type from the migration, private-type access,
JSON extra specs and QoS, retype guards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.test_db_types import *  # noqa: F403 - the same specifications
from volmgr.db import Database, migration
from volmgr.db import engine as engine_mod


@pytest.fixture(params=["postgres_url", "mysql_url"], ids=["postgresql", "mariadb"])
def db(request: pytest.FixtureRequest) -> Iterator[Database]:
    url = request.getfixturevalue(request.param)
    database = Database(engine_mod.create_engine(url),
                        quota_limits={"volumes": 10, "gigabytes": 1000, "snapshots": 10})
    migration.upgrade(database.engine)
    yield database
    database.dispose()
