"""Continuous reconcile as a specification: a lost export of an attached volume comes
back, a stale export goes after the grace period and not before, an unexplained volume is
reported and left alone, and a repair never overtakes an operation on its volume."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator

import prometheus_client
import pytest
from oslo_config import cfg

from tests.unit.volume_fakes import FakeDriver
from volmgr import states
from volmgr.db import Database
from volmgr.volume.manager import VolumeManager
from volmgr.volume.notifications import VolumeNotifier
from volmgr.volume.reconcile import Reconciler

HOST = "reconcile-node"
GRACE = 600.0


@pytest.fixture
def driver() -> FakeDriver:
    return FakeDriver()


@pytest.fixture
def manager(conf: cfg.ConfigOpts, db: Database,
            driver: FakeDriver) -> Iterator[VolumeManager]:
    mgr = VolumeManager(conf, db, driver, VolumeNotifier(None), host=HOST)
    yield mgr
    mgr.wait_idle(10)
    mgr.close()


@pytest.fixture
def reconciler(db: Database, driver: FakeDriver, manager: VolumeManager) -> Reconciler:
    return Reconciler(db, driver, manager, GRACE)


def volume(db: Database, driver: FakeDriver, status: str, exported: bool) -> str:
    volume_id = db.volume_create(project_id="p1", user_id="u1", size=1, host=HOST,
                                 display_name="v", status=status).id
    db.volume_update(volume_id, {"provider_auth": "CHAP user secret"})
    driver.volumes[volume_id] = 1
    if exported:
        driver.exports.add(volume_id)
    return volume_id


def sample(name: str, **labels: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, {"host": HOST, **labels}) or 0.0


def run(reconciler: Reconciler, manager: VolumeManager, now: float) -> None:
    reconciler.run_once(now)
    assert manager.wait_idle(10)


def test_a_lost_export_of_an_attached_volume_is_rebuilt(
        reconciler: Reconciler, manager: VolumeManager, db: Database,
        driver: FakeDriver) -> None:
    attached = volume(db, driver, states.IN_USE, exported=False)
    before = sample("volmgr_reconcile_repairs_total", kind="export_rebuilt")
    run(reconciler, manager, 0.0)
    assert attached in driver.exports
    assert sample("volmgr_reconcile_repairs_total", kind="export_rebuilt") == before + 1
    # An export in place is checked (ACL, CHAP) but not counted as rebuilt.
    run(reconciler, manager, 1.0)
    assert sample("volmgr_reconcile_repairs_total", kind="export_rebuilt") == before + 1
    assert driver.calls.count(("ensure_export", attached)) == 2


def test_a_stale_export_is_removed_only_after_the_grace_period(
        reconciler: Reconciler, manager: VolumeManager, db: Database,
        driver: FakeDriver) -> None:
    detached = volume(db, driver, states.AVAILABLE, exported=True)
    run(reconciler, manager, 0.0)
    run(reconciler, manager, GRACE - 1)
    assert detached in driver.exports, "removed before the grace period"
    run(reconciler, manager, GRACE)
    assert detached not in driver.exports
    assert db.volume_get(detached).status == states.AVAILABLE
    assert detached in driver.volumes, "the volume itself is untouched"


def test_an_export_that_is_stale_only_for_a_moment_is_not_removed(
        reconciler: Reconciler, manager: VolumeManager, db: Database,
        driver: FakeDriver) -> None:
    volume_id = volume(db, driver, states.AVAILABLE, exported=True)
    run(reconciler, manager, 0.0)
    db.volume_update(volume_id, {"status": states.IN_USE})  # attached meanwhile
    run(reconciler, manager, 10.0)
    db.volume_update(volume_id, {"status": states.AVAILABLE})
    run(reconciler, manager, GRACE + 1)  # the clock restarted when it was explained
    assert volume_id in driver.exports


def test_a_removal_queued_behind_an_attach_sees_the_attach_and_keeps_the_export(
        reconciler: Reconciler, manager: VolumeManager, db: Database,
        driver: FakeDriver) -> None:
    volume_id = volume(db, driver, states.AVAILABLE, exported=True)
    run(reconciler, manager, 0.0)
    release = threading.Event()

    def attach_in_flight() -> None:  # the volume's turn is taken by an attach
        assert release.wait(10)
        db.volume_update(volume_id, {"status": states.IN_USE})
    manager.run_in_turn(volume_id, attach_in_flight)
    reconciler.run_once(GRACE)  # finds it stale, queues the removal behind the attach
    release.set()
    assert manager.wait_idle(10)
    assert volume_id in driver.exports


def test_an_unexplained_volume_is_reported_and_left_alone(
        reconciler: Reconciler, manager: VolumeManager, driver: FakeDriver,
        caplog: pytest.LogCaptureFixture) -> None:
    stranger = str(uuid.uuid4())
    driver.volumes[stranger] = 3
    with caplog.at_level(logging.WARNING, logger="volmgr.volume.reconcile"):
        run(reconciler, manager, 0.0)
        run(reconciler, manager, GRACE * 2)
    assert stranger in driver.volumes
    assert ("delete_volume", stranger) not in driver.calls
    assert sample("volmgr_unexplained_lvs") == 1
    assert sum(stranger in r.getMessage() for r in caplog.records) == 1, "logged once"
    del driver.volumes[stranger]
    run(reconciler, manager, GRACE * 3)
    assert sample("volmgr_unexplained_lvs") == 0


# -- snapshots (the continuous reconcile and volmgr-manage reconcile share the comparison)


class SnapshotListingDriver(FakeDriver):
    def list_snapshots(self) -> dict[str, str] | None:
        return dict(self.snapshots)


def test_snapshots_no_row_explains_and_rows_whose_snapshot_is_gone_are_found_and_fixed(
        db: Database) -> None:
    from volmgr.volume import drift
    driver = SnapshotListingDriver()
    parent = volume(db, driver, states.AVAILABLE, exported=False)
    orphan = str(uuid.uuid4())
    driver.snapshots[orphan] = parent                       # on the backend only
    lost = db.snapshot_create(parent, project_id="p1", user_id="u1")
    db.snapshot_transition(lost.id, (states.SNAP_CREATING,),
                           {"status": states.SNAP_AVAILABLE})  # row only
    creating = db.snapshot_create(parent, project_id="p1", user_id="u1")  # being made
    healthy = db.snapshot_create(parent, project_id="p1", user_id="u1")
    db.snapshot_transition(healthy.id, (states.SNAP_CREATING,),
                           {"status": states.SNAP_AVAILABLE})
    driver.snapshots[healthy.id] = parent

    findings = drift.find_problems(db, driver, HOST)
    assert [(f.problem, f.snapshot_id, f.volume_id) for f in findings] == [
        ("orphan_snapshot", orphan, parent), ("missing_snapshot", lost.id, parent)]
    assert creating.id not in str([f.row() for f in findings])

    drift.fix_problems(db, driver, findings)
    assert [f.action for f in findings] == ["snapshot removed", "set to error"]
    assert orphan not in driver.snapshots and healthy.id in driver.snapshots
    assert db.snapshot_get(lost.id).status == states.SNAP_ERROR
    assert drift.find_problems(db, driver, HOST) == []


def test_the_continuous_reconcile_only_reports_an_unexplained_snapshot(
        conf: cfg.ConfigOpts, db: Database, caplog: pytest.LogCaptureFixture) -> None:
    driver = SnapshotListingDriver()
    mgr = VolumeManager(conf, db, driver, VolumeNotifier(None), host=HOST)
    try:
        parent = volume(db, driver, states.AVAILABLE, exported=False)
        orphan = str(uuid.uuid4())
        driver.snapshots[orphan] = parent
        with caplog.at_level(logging.WARNING, logger="volmgr.volume.reconcile"):
            run(Reconciler(db, driver, mgr, GRACE), mgr, GRACE * 2)
        assert orphan in driver.snapshots
        assert sample("volmgr_unexplained_lvs") == 1
        assert any(f"orphan_snapshot {orphan}" in r.getMessage() for r in caplog.records)
    finally:
        mgr.wait_idle(10)
        mgr.close()
