"""The data layer on real PostgreSQL and MariaDB: migrations and races between threads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from tests.db_reads import quota_usage
from volmgr import exception, states
from volmgr.db import Database, migration, quota
from volmgr.db import engine as engine_mod

MANAGE = os.path.join(os.path.dirname(sys.executable), "volmgr-manage")


def _run_manage(tmp_path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    conf_file = tmp_path / "volmgr.conf"
    conf_file.write_text(f"[database]\nconnection = {url}\n")
    return subprocess.run(
        [MANAGE, "--config-file", str(conf_file), *args],
        capture_output=True, text=True, timeout=120)


def _race(threads: int, work: Callable[[], bool]) -> list[bool]:
    barrier = threading.Barrier(threads)
    results: list[bool] = []
    lock = threading.Lock()

    def runner() -> None:
        barrier.wait()
        outcome = work()
        with lock:
            results.append(outcome)

    workers = [threading.Thread(target=runner) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    # A worker whose work raised (anything but the outcome it returns) left no result.
    assert len(results) == threads, (
        f"{threads - len(results)} of {threads} workers raised; see the thread warnings")
    return results


def test_db_sync_on_empty_postgres_creates_schema_twice_harmlessly(tmp_path,
                                                                   postgres_url: str) -> None:
    first = _run_manage(tmp_path, postgres_url, "db", "sync")
    assert first.returncode == 0, first.stderr
    second = _run_manage(tmp_path, postgres_url, "db", "sync")
    assert second.returncode == 0, second.stderr
    check = _run_manage(tmp_path, postgres_url, "db", "check")
    assert check.returncode == 0, check.stderr
    tables = sa.inspect(sa.create_engine(postgres_url)).get_table_names()
    assert {"volumes", "volume_attachments", "snapshots", "services", "quota_usages"} <= set(
        tables)


@pytest.mark.parametrize("url_fixture", ["postgres_url", "mysql_url"])
def test_migrations_round_trip_down_then_up(request, url_fixture: str) -> None:
    engine = engine_mod.create_engine(request.getfixturevalue(url_fixture))
    migration.upgrade(engine)
    migration.downgrade(engine, "base")
    assert migration.current_revision(engine) is None
    migration.upgrade(engine)
    assert migration.drift(engine) == []
    engine.dispose()


def test_twenty_threads_race_to_delete_and_exactly_one_wins(postgres_db: Database) -> None:
    volume = postgres_db.volume_create(project_id="p1", user_id="u1", size=1, host="h",
                                       status=states.AVAILABLE)
    results = _race(20, lambda: postgres_db.volume_transition(
        volume.id, states.CAN_DELETE_FROM, {"status": states.DELETING}))
    assert sorted(results) == [False] * 19 + [True]
    assert postgres_db.volume_get(volume.id).status == states.DELETING


def test_fifty_reservations_against_twenty_gib_admit_exactly_twenty(
        postgres_db: Database) -> None:
    postgres_db.quota_limits["gigabytes"] = 20

    def reserve() -> bool:
        try:
            postgres_db.run(lambda s: quota.reserve(s, postgres_db.quota_limits, "p1",
                                                    {"gigabytes": 1}))
            return True
        except exception.QuotaExceeded:
            return False

    results = _race(50, reserve)
    assert results.count(True) == 20
    assert quota_usage(postgres_db, "p1")["gigabytes"] == 20


def test_fifty_concurrent_creates_respect_the_volume_quota(postgres_db: Database) -> None:
    postgres_db.quota_limits["volumes"] = 7

    def create() -> bool:
        try:
            postgres_db.volume_create(project_id="p9", user_id="u", size=1)
            return True
        except exception.QuotaExceeded:
            return False

    assert _race(50, create).count(True) == 7
    assert len(postgres_db.volume_list("p9")) == 7
    assert quota_usage(postgres_db, "p9") == {"volumes": 7, "gigabytes": 7}


def test_concurrent_creates_on_mariadb_respect_the_quota(mysql_url: str) -> None:
    database = Database(engine_mod.create_engine(mysql_url),
                        quota_limits={"volumes": 5, "gigabytes": 100, "snapshots": 5})
    migration.upgrade(database.engine)

    def create() -> bool:
        try:
            database.volume_create(project_id="p1", user_id="u", size=1)
            return True
        except exception.QuotaExceeded:
            return False

    assert _race(20, create).count(True) == 5
    assert quota_usage(database, "p1")["volumes"] == 5
    database.dispose()


def test_concurrent_writers_on_embedded_sqlite_do_not_fail(db: Database) -> None:
    db.quota_limits["volumes"] = -1
    def create() -> bool:
        db.volume_create(project_id="p1", user_id="u", size=1)
        return True

    assert _race(30, create).count(True) == 30
    assert len(db.volume_list("p1")) == 30
