"""Races that SQLite's single writer hides but PostgreSQL (READ COMMITTED) and MariaDB
(REPEATABLE READ) expose: each test holds one transaction open at the worst moment and
runs the competing request against it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from volmgr import exception, states
from volmgr.db import Database, migration, models
from volmgr.db import engine as engine_mod
from volmgr.db import quota as quota_mod


@pytest.fixture(params=["postgres_url", "mysql_url"], ids=["postgresql", "mariadb"])
def real_db(request: pytest.FixtureRequest) -> Iterator[Database]:
    database = Database(engine_mod.create_engine(request.getfixturevalue(request.param)),
                        quota_limits={"volumes": 100, "gigabytes": 1000, "snapshots": 100})
    migration.upgrade(database.engine)
    yield database
    database.dispose()


def _in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = work()
        except Exception as error:
            box["error"] = error
    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def _available(db: Database, size: int = 1) -> models.Volume:
    return db.volume_create(project_id="p1", user_id="u1", size=size, host="node1",
                            status=states.AVAILABLE)


def _second_while_first_holds_its_lock(
        monkeypatch: pytest.MonkeyPatch, first: Callable[[], Any],
        second: Callable[[], Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``first`` until its quota reservation (its row lock is taken, nothing is
    committed), start ``second`` against it, then let ``first`` commit. Both outcomes."""
    inside, release = threading.Event(), threading.Event()
    real_reserve = quota_mod.reserve

    def held_reserve(session: Any, limits: Any, project_id: str, deltas: Any,
                     **options: Any) -> None:
        inside.set()
        release.wait(10)
        real_reserve(session, limits, project_id, deltas, **options)
    monkeypatch.setattr(quota_mod, "reserve", held_reserve)
    first_thread, first_outcome = _in_thread(first)
    assert inside.wait(10)
    second_thread, second_outcome = _in_thread(second)
    time.sleep(0.5)  # the second request now waits on the row
    release.set()
    first_thread.join(20)
    second_thread.join(20)
    monkeypatch.undo()
    return first_outcome, second_outcome


def test_a_delete_cannot_slip_in_while_a_snapshot_of_the_volume_is_being_created(
        real_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    volume = _available(real_db)
    snapshot, delete = _second_while_first_holds_its_lock(
        monkeypatch,
        lambda: real_db.snapshot_create(volume.id, project_id="p1", user_id="u1"),
        lambda: real_db.volume_transition_or_raise(
            volume.id, states.CAN_DELETE_FROM, {"status": states.DELETING},
            no_attachments=True, no_snapshots=True))
    assert "error" not in snapshot, snapshot
    assert isinstance(delete.get("error"), exception.VolumeHasSnapshots), delete
    assert real_db.volume_get(volume.id).status == states.AVAILABLE


def test_an_extend_is_measured_against_the_size_an_earlier_extend_left(
        real_db: Database) -> None:
    volume = _available(real_db, size=1)
    table = models.table(models.Volume)
    with real_db.engine.connect() as other:
        transaction = other.begin()
        # Another request holds the row (say, the end of an earlier 1 -> 5 extend).
        other.execute(sa.select(table.c.id).where(table.c.id == volume.id).with_for_update())
        thread, extend = _in_thread(lambda: real_db.volume_begin_extend(volume.id, 3))
        time.sleep(0.5)  # the new extend waits on the row before reading its size
        other.execute(sa.update(table).where(table.c.id == volume.id).values(size=5))
        transaction.commit()
    thread.join(20)
    assert isinstance(extend.get("error"), exception.InvalidInput), extend
    row = real_db.volume_get(volume.id)
    assert (row.size, row.status, row.target_size) == (5, states.AVAILABLE, None)


def test_a_snapshot_cannot_be_deleted_while_a_volume_is_being_made_from_it(
        real_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    origin = _available(real_db)
    snapshot = real_db.snapshot_create(origin.id, project_id="p1", user_id="u1")
    real_db.snapshot_transition(snapshot.id, [states.SNAP_CREATING],
                                {"status": states.SNAP_AVAILABLE})
    create, delete = _second_while_first_holds_its_lock(
        monkeypatch,
        lambda: real_db.volume_create(project_id="p1", user_id="u1", size=1, host="node1",
                                      snapshot_id=snapshot.id),
        lambda: real_db.snapshot_transition_or_raise(
            snapshot.id, states.SNAP_CAN_DELETE_FROM, {"status": states.SNAP_DELETING},
            no_volume_being_made=True))
    assert "error" not in create, create
    assert isinstance(delete.get("error"), exception.SnapshotInUse), delete
    assert real_db.snapshot_get(snapshot.id).status == states.SNAP_AVAILABLE
