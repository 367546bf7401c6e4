"""Recovery as a specification: stuck rows of this host are re-driven to their final
status, the attempt count is bounded, busy or young rows are left alone, and attached
volumes get their exports back at start-up."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from oslo_config import cfg

from tests.db_reads import quota_usage
from tests.unit.volume_fakes import FakeDriver
from volmgr import exception, states
from volmgr.db import Database, models
from volmgr.volume.manager import VolumeManager
from volmgr.volume.recovery import Recovery

HOST = "node-a"


@pytest.fixture
def driver() -> FakeDriver:
    return FakeDriver()


@pytest.fixture
def manager(conf: cfg.ConfigOpts, db: Database,
            driver: FakeDriver) -> Iterator[VolumeManager]:
    conf.set_override("recovery_age", 30, group="volume")
    conf.set_override("recovery_max_attempts", 2, group="volume")
    mgr = VolumeManager(conf, db, driver, host=HOST)
    yield mgr
    mgr.wait_idle(10)
    mgr.close()


@pytest.fixture
def recovery(conf: cfg.ConfigOpts, db: Database, manager: VolumeManager) -> Recovery:
    return Recovery(conf, db, manager)


def age(db: Database, table: type[models.Base], row_id: str, seconds: int = 120) -> None:
    """Pretend the row's status was asked for ``seconds`` ago (a lost cast)."""
    stamp = models.utcnow() - datetime.timedelta(seconds=seconds)
    with db.transaction() as session:
        session.execute(sa.update(models.table(table)).where(
            models.table(table).c.id == row_id).values(status_changed_at=stamp))


def stuck_volume(db: Database, status: str = states.CREATING, host: str = HOST,
                 size: int = 1) -> str:
    volume_id = db.volume_create(project_id="p1", user_id="u1", size=size, host=host,
                                 status=status).id
    age(db, models.Volume, volume_id)
    return volume_id


def run(recovery: Recovery, manager: VolumeManager) -> None:
    recovery.run_once()
    assert manager.wait_idle(10)


def test_a_create_whose_cast_was_lost_is_completed(recovery: Recovery,
                                                   manager: VolumeManager, db: Database,
                                                   driver: FakeDriver) -> None:
    volume_id = stuck_volume(db)
    report = recovery.run_once()
    assert report.redriven == [(volume_id, states.CREATING)]
    assert manager.wait_idle(10)
    assert db.volume_get(volume_id).status == states.AVAILABLE
    assert volume_id in driver.volumes


def test_every_transitional_volume_status_is_re_driven(recovery: Recovery,
                                                       manager: VolumeManager,
                                                       db: Database,
                                                       driver: FakeDriver) -> None:
    deleting = stuck_volume(db, states.AVAILABLE)
    db.volume_transition(deleting, [states.AVAILABLE], {"status": states.DELETING})
    extending = stuck_volume(db, states.AVAILABLE)
    db.volume_begin_extend(extending, 2)
    attaching = stuck_volume(db, states.AVAILABLE)
    db.attachment_begin(attaching, server_id="srv-1", device=None)
    detaching = stuck_volume(db, states.IN_USE)
    with db.transaction() as session:
        session.add(models.VolumeAttachment(volume_id=detaching, server_id="srv-2",
                                            attach_status=states.ATTACH_ATTACHED))
    db.detach_begin(detaching, "srv-2")
    for volume_id in (deleting, extending, attaching, detaching):
        age(db, models.Volume, volume_id)
    run(recovery, manager)
    with pytest.raises(exception.VolumeNotFound):
        db.volume_get(deleting)
    assert (db.volume_get(extending).status, db.volume_get(extending).size) == (
        states.AVAILABLE, 2)
    assert db.volume_get(attaching).status == states.IN_USE
    assert db.volume_get(detaching).status == states.AVAILABLE


def test_stuck_snapshots_are_re_driven(recovery: Recovery, manager: VolumeManager,
                                       db: Database, driver: FakeDriver) -> None:
    volume_id = stuck_volume(db, states.AVAILABLE)
    creating = db.snapshot_create(volume_id, project_id="p1", user_id="u1").id
    deleting = db.snapshot_create(volume_id, project_id="p1", user_id="u1").id
    db.snapshot_transition(deleting, [states.SNAP_CREATING], {"status": states.SNAP_DELETING})
    age(db, models.Snapshot, creating)
    age(db, models.Snapshot, deleting)
    run(recovery, manager)
    assert db.snapshot_get(creating).status == states.SNAP_AVAILABLE
    with pytest.raises(exception.SnapshotNotFound):
        db.snapshot_get(deleting)


def test_young_rows_and_other_hosts_rows_are_left_alone(recovery: Recovery,
                                                        manager: VolumeManager,
                                                        db: Database,
                                                        driver: FakeDriver) -> None:
    young = db.volume_create(project_id="p1", user_id="u1", size=1, host=HOST).id
    foreign = stuck_volume(db, host="node-b")
    assert not recovery.run_once()
    assert manager.wait_idle(10)
    assert db.volume_get(young).status == states.CREATING
    assert db.volume_get(foreign).status == states.CREATING
    assert driver.calls == []


def test_a_row_with_work_queued_in_this_daemon_is_not_claimed(
        recovery: Recovery, manager: VolumeManager, db: Database,
        driver: FakeDriver) -> None:
    import threading
    gate = threading.Event()
    driver.gates["create_volume"] = gate
    volume_id = stuck_volume(db)
    manager.create_volume({}, volume_id)
    while not driver.calls:
        pass
    assert not recovery.run_once()
    gate.set()
    assert manager.wait_idle(10)
    row = db.volume_get(volume_id)
    assert (row.status, row.recovery_attempts) == (states.AVAILABLE, 0)


def test_a_request_that_never_completes_ends_in_error_after_the_attempt_limit(
        recovery: Recovery, manager: VolumeManager, db: Database) -> None:
    volume_id = stuck_volume(db)
    with db.transaction() as session:  # two earlier passes re-drove it; it never finished
        session.execute(sa.update(models.table(models.Volume)).where(
            models.table(models.Volume).c.id == volume_id).values(recovery_attempts=2))
    report = recovery.run_once()
    assert report.failed == [(volume_id, states.CREATING)]
    assert manager.wait_idle(10)
    row = db.volume_get(volume_id)
    assert row.status == states.ERROR
    assert row.status_reason is not None
    assert row.status_reason.startswith("gave up after 2 recovery attempts")


@pytest.mark.parametrize(("status", "error_status"), [
    (states.EXTENDING, states.ERROR_EXTENDING),
    (states.ATTACHING, states.ERROR_ATTACHING),
    (states.DELETING, states.ERROR_DELETING),
])
def test_giving_up_uses_the_matching_error_status(recovery: Recovery,
                                                  manager: VolumeManager, db: Database,
                                                  status: str, error_status: str) -> None:
    volume_id = stuck_volume(db, states.AVAILABLE)
    if status == states.EXTENDING:
        db.volume_begin_extend(volume_id, 3)
    elif status == states.ATTACHING:
        db.attachment_begin(volume_id, server_id="srv-1", device=None)
    else:
        db.volume_transition(volume_id, [states.AVAILABLE], {"status": status})
    age(db, models.Volume, volume_id)
    with db.transaction() as session:
        session.execute(sa.update(models.table(models.Volume)).where(
            models.table(models.Volume).c.id == volume_id).values(recovery_attempts=5))
    run(recovery, manager)
    row = db.volume_get(volume_id)
    assert row.status == error_status
    assert "recovery attempts" in (row.status_reason or "")
    if status == states.EXTENDING:
        assert quota_usage(db, "p1")["gigabytes"] == 1  # the reserved GiB came back


def test_a_stuck_snapshot_gives_up_into_error(recovery: Recovery, manager: VolumeManager,
                                              db: Database) -> None:
    volume_id = stuck_volume(db, states.AVAILABLE)
    snapshot_id = db.snapshot_create(volume_id, project_id="p1", user_id="u1").id
    age(db, models.Snapshot, snapshot_id)
    with db.transaction() as session:
        session.execute(sa.update(models.table(models.Snapshot)).where(
            models.table(models.Snapshot).c.id == snapshot_id).values(recovery_attempts=2))
    run(recovery, manager)
    row = db.snapshot_get(snapshot_id)
    assert row.status == states.SNAP_ERROR
    assert "recovery attempts" in (row.status_reason or "")


def test_each_pass_counts_one_attempt_and_a_claimed_row_waits_recovery_age_again(
        recovery: Recovery, manager: VolumeManager, db: Database,
        driver: FakeDriver) -> None:
    driver.fail["create_volume"] = exception.BackendError(reason="boom")
    volume_id = stuck_volume(db)
    db.volume_transition(volume_id, [states.CREATING], {"status": states.DELETING})
    age(db, models.Volume, volume_id)
    driver.fail["delete_volume"] = exception.BackendError(reason="busy")
    run(recovery, manager)
    row = db.volume_get(volume_id)
    assert (row.status, row.recovery_attempts) == (states.ERROR_DELETING, 1)
    db.volume_transition(volume_id, [states.ERROR_DELETING], {"status": states.DELETING})
    assert not recovery.run_once()  # just asked for: younger than recovery_age


def test_start_up_restores_the_exports_of_attached_volumes(recovery: Recovery,
                                                           manager: VolumeManager,
                                                           db: Database,
                                                           driver: FakeDriver) -> None:
    attached = db.volume_create(project_id="p1", user_id="u1", size=1, host=HOST,
                                status=states.IN_USE).id
    db.volume_create(project_id="p1", user_id="u1", size=1, host=HOST,
                     status=states.AVAILABLE)
    db.volume_create(project_id="p1", user_id="u1", size=1, host="node-b",
                     status=states.IN_USE)
    assert recovery.restore_exports() == 1
    assert manager.wait_idle(10)
    assert driver.exports == {attached}


def test_a_failed_export_restore_does_not_stop_the_others(recovery: Recovery,
                                                          manager: VolumeManager,
                                                          db: Database,
                                                          driver: FakeDriver) -> None:
    for _ in range(2):
        db.volume_create(project_id="p1", user_id="u1", size=1, host=HOST,
                         status=states.IN_USE)
    driver.fail["ensure_export"] = exception.TargetError(reason="tgtd not running")
    assert recovery.restore_exports() == 2
    assert manager.wait_idle(10)
    assert [c for c, _ in driver.calls] == ["ensure_export", "ensure_export"]
