"""The volume manager as a specification: each cast moves its row to the final status or
to error_* with a reason, duplicates are no-ops, one volume's operations never overlap."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

from tests.db_reads import quota_usage
from tests.unit.volume_fakes import FakeDriver, RecordingSink
from volmgr import exception, rpc, states
from volmgr.context import RequestContext
from volmgr.db import Database
from volmgr.volume import rpcapi
from volmgr.volume.manager import VolumeManager
from volmgr.volume.notifications import VolumeNotifier

HOST = "node-a"
CTX = RequestContext(project_id="p1", user_id="u1", request_id="req-test").to_dict()


@pytest.fixture
def driver() -> FakeDriver:
    return FakeDriver()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def manager(conf: cfg.ConfigOpts, db: Database, driver: FakeDriver,
            sink: RecordingSink) -> Iterator[VolumeManager]:
    mgr = VolumeManager(conf, db, driver, VolumeNotifier(sink), host=HOST)
    yield mgr
    mgr.wait_idle(10)
    mgr.close()


def new_volume(db: Database, status: str = states.CREATING, size: int = 1,
               **kwargs: Any) -> str:
    return db.volume_create(project_id="p1", user_id="u1", size=size, host=HOST,
                            display_name="vol", status=status, **kwargs).id


def settle(manager: VolumeManager) -> None:
    assert manager.wait_idle(10), "operations did not finish"


# -- create --------------------------------------------------------------------------


def test_create_moves_the_row_to_available_and_keeps_the_provider_location(
        manager: VolumeManager, db: Database, driver: FakeDriver) -> None:
    volume_id = new_volume(db)
    manager.create_volume(CTX, volume_id)
    settle(manager)
    row = db.volume_get(volume_id)
    assert (row.status, row.status_reason) == (states.AVAILABLE, None)
    assert row.provider_location == f"fake:{volume_id}"
    assert driver.volumes == {volume_id: 1}


def reference_in(reason: str | None) -> str:
    """The log reference a status_reason carries (see operations.failure_reason)."""
    match = re.search(r"\(reference ([0-9a-f]{12}) in the volmgr-volume log\)", reason or "")
    assert match, reason
    return match.group(1)


def logged_under(caplog: pytest.LogCaptureFixture, reference: str) -> str:
    return "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records
                     if reference in r.getMessage())


def test_create_that_fails_lands_in_error_with_a_reason_and_the_details_in_the_log(
        manager: VolumeManager, db: Database, driver: FakeDriver,
        caplog: pytest.LogCaptureFixture) -> None:
    driver.fail["create_volume"] = exception.BackendError(reason="VG volmgr is full")
    volume_id = new_volume(db)
    manager.create_volume(CTX, volume_id)
    settle(manager)
    row = db.volume_get(volume_id)
    assert row.status == states.ERROR
    assert (row.status_reason or "").startswith(
        "the storage backend could not complete the operation (reference ")
    assert "VG volmgr is full" not in (row.status_reason or "")
    assert "VG volmgr is full" in logged_under(caplog, reference_in(row.status_reason))


def test_unexpected_driver_error_is_an_internal_error_with_a_log_reference(
        manager: VolumeManager, db: Database, driver: FakeDriver,
        caplog: pytest.LogCaptureFixture) -> None:
    driver.fail["create_volume"] = OSError(28, "No space left on device")
    volume_id = new_volume(db)
    manager.create_volume(CTX, volume_id)
    settle(manager)
    reason = db.volume_get(volume_id).status_reason
    assert (reason or "").startswith("unexpected internal error (reference ")
    assert "No space left on device" in logged_under(caplog, reference_in(reason))


def test_duplicate_create_runs_the_driver_once(
        manager: VolumeManager, db: Database, driver: FakeDriver) -> None:
    volume_id = new_volume(db)
    manager.create_volume(CTX, volume_id)
    manager.create_volume(CTX, volume_id)
    settle(manager)
    assert driver.calls.count(("create_volume", volume_id)) == 1
    assert db.volume_get(volume_id).status == states.AVAILABLE


def test_create_of_a_volume_that_is_gone_is_a_no_op(
        manager: VolumeManager, driver: FakeDriver) -> None:
    manager.create_volume(CTX, "00000000-0000-0000-0000-000000000000")
    settle(manager)
    assert driver.calls == []


def test_create_from_snapshot_copies_the_snapshot(
        manager: VolumeManager, db: Database, driver: FakeDriver) -> None:
    source = new_volume(db, status=states.AVAILABLE)
    snapshot = db.snapshot_create(source, project_id="p1", user_id="u1")
    manager.create_snapshot(CTX, snapshot.id)
    settle(manager)
    volume_id = new_volume(db, snapshot_id=snapshot.id)
    manager.create_volume(CTX, volume_id, snapshot_id=snapshot.id)
    settle(manager)
    assert db.volume_get(volume_id).status == states.AVAILABLE
    assert ("create_volume_from_snapshot", volume_id) in driver.calls


# -- delete --------------------------------------------------------------------------


def _begin_delete(db: Database, volume_id: str) -> None:
    db.volume_transition_or_raise(volume_id, states.CAN_DELETE_FROM,
                                  {"status": states.DELETING})


def test_delete_removes_backing_store_and_row_and_a_duplicate_is_harmless(
        manager: VolumeManager, db: Database, driver: FakeDriver) -> None:
    volume_id = new_volume(db)
    manager.create_volume(CTX, volume_id)
    settle(manager)
    _begin_delete(db, volume_id)
    manager.delete_volume(CTX, volume_id)
    manager.delete_volume(CTX, volume_id)
    settle(manager)
    with pytest.raises(exception.VolumeNotFound):
        db.volume_get(volume_id)
    assert driver.volumes == {}
    assert driver.calls.count(("delete_volume", volume_id)) == 1
    assert quota_usage(db, "p1")["volumes"] == 0


def test_delete_that_fails_lands_in_error_deleting(
        manager: VolumeManager, db: Database, driver: FakeDriver) -> None:
    volume_id = new_volume(db, status=states.AVAILABLE)
    _begin_delete(db, volume_id)
    driver.fail["delete_volume"] = exception.ProcessExecutionError(
        cmd="lvremove", exit_code=5, stderr="Logical volume in use")
    manager.delete_volume(CTX, volume_id)
    settle(manager)
    row = db.volume_get(volume_id)
    assert row.status == states.ERROR_DELETING
    assert (row.status_reason or "").startswith(
        "storage command lvremove failed with exit code 5 (reference ")


# -- attach / detach -----------------------------------------------------------------

CONNECTOR = {"initiator": "iqn.1993-08.org.debian:01:abc", "host": "compute-1"}


def _attached(manager: VolumeManager, db: Database) -> tuple[str, str]:
    volume_id = new_volume(db, status=states.AVAILABLE)
    attachment = db.attachment_begin(volume_id, server_id="srv-1", device="/dev/vdb",
                                     connector=CONNECTOR)
    manager.attach_volume(CTX, volume_id, attachment.id)
    settle(manager)
    return volume_id, attachment.id


def test_attach_exports_the_volume_and_stores_connection_info(
        manager: VolumeManager, db: Database, driver: FakeDriver) -> None:
    volume_id, attachment_id = _attached(manager, db)
    row = db.volume_get(volume_id)
    assert row.status == states.IN_USE
    assert row.provider_auth == "CHAP user secret"
    attachment = db.attachment_get(attachment_id)
    assert attachment.attach_status == states.ATTACH_ATTACHED
    assert attachment.connection_info is not None
    assert attachment.connection_info["data"]["auth_password"] == "secret"
    assert attachment.connection_info["data"]["initiator"] == CONNECTOR["initiator"]
    assert driver.exports == {volume_id}


def test_attach_that_fails_lands_in_error_attaching_and_withdraws_the_export(
        manager: VolumeManager, db: Database, driver: FakeDriver) -> None:
    driver.fail["initialize_connection"] = exception.TargetError(reason="tgtd is down")
    volume_id = new_volume(db, status=states.AVAILABLE)
    attachment = db.attachment_begin(volume_id, server_id="srv-1", device=None)
    manager.attach_volume(CTX, volume_id, attachment.id)
    settle(manager)
    row = db.volume_get(volume_id)
    assert row.status == states.ERROR_ATTACHING
    assert (row.status_reason or "").startswith("the iSCSI target could not be changed")
    assert driver.exports == set()


def test_duplicate_attach_is_a_no_op(manager: VolumeManager, db: Database,
                                     driver: FakeDriver) -> None:
    volume_id, attachment_id = _attached(manager, db)
    manager.attach_volume(CTX, volume_id, attachment_id)
    settle(manager)
    assert driver.calls.count(("create_export", volume_id)) == 1
    assert db.volume_get(volume_id).status == states.IN_USE


def test_detach_withdraws_the_export_and_frees_the_volume(
        manager: VolumeManager, db: Database, driver: FakeDriver) -> None:
    volume_id, _ = _attached(manager, db)
    attachment = db.detach_begin(volume_id, "srv-1")
    manager.detach_volume(CTX, volume_id, attachment.id)
    manager.detach_volume(CTX, volume_id, attachment.id)
    settle(manager)
    assert db.volume_get(volume_id).status == states.AVAILABLE
    assert db.attachment_list(volume_id=volume_id) == []
    assert driver.exports == set()
    assert driver.calls.count(("terminate_connection", volume_id)) == 1


def test_detach_that_fails_lands_in_error_detaching(
        manager: VolumeManager, db: Database, driver: FakeDriver) -> None:
    volume_id, _ = _attached(manager, db)
    attachment = db.detach_begin(volume_id, "srv-1")
    driver.fail["terminate_connection"] = exception.TargetError(reason="ACL busy")
    manager.detach_volume(CTX, volume_id, attachment.id)
    settle(manager)
    row = db.volume_get(volume_id)
    assert row.status == states.ERROR_DETACHING
    assert (row.status_reason or "").startswith("the iSCSI target could not be changed")


# -- extend --------------------------------------------------------------------------


def test_extend_grows_the_volume(manager: VolumeManager, db: Database,
                                 driver: FakeDriver) -> None:
    volume_id = new_volume(db, status=states.AVAILABLE)
    db.volume_begin_extend(volume_id, 3)
    manager.extend_volume(CTX, volume_id, 3)
    manager.extend_volume(CTX, volume_id, 3)
    settle(manager)
    row = db.volume_get(volume_id)
    assert (row.status, row.size) == (states.AVAILABLE, 3)
    assert driver.volumes[volume_id] == 3
    assert driver.calls.count(("extend_volume", volume_id)) == 1


def test_extend_that_fails_lands_in_error_extending_and_gives_the_quota_back(
        manager: VolumeManager, db: Database, driver: FakeDriver) -> None:
    volume_id = new_volume(db, status=states.AVAILABLE)
    db.volume_begin_extend(volume_id, 4)
    driver.fail["extend_volume"] = exception.BackendError(reason="insufficient free space")
    manager.extend_volume(CTX, volume_id, 4)
    settle(manager)
    row = db.volume_get(volume_id)
    assert (row.status, row.size) == (states.ERROR_EXTENDING, 1)
    assert (row.status_reason or "").startswith("the storage backend could not complete")
    assert quota_usage(db, "p1")["gigabytes"] == 1


# -- snapshots -----------------------------------------------------------------------


def test_snapshot_create_and_delete(manager: VolumeManager, db: Database,
                                    driver: FakeDriver) -> None:
    volume_id = new_volume(db, status=states.AVAILABLE)
    snapshot = db.snapshot_create(volume_id, project_id="p1", user_id="u1")
    manager.create_snapshot(CTX, snapshot.id)
    manager.create_snapshot(CTX, snapshot.id)
    settle(manager)
    assert db.snapshot_get(snapshot.id).status == states.SNAP_AVAILABLE
    assert driver.snapshots == {snapshot.id: volume_id}
    db.snapshot_transition(snapshot.id, states.SNAP_CAN_DELETE_FROM,
                           {"status": states.SNAP_DELETING})
    manager.delete_snapshot(CTX, snapshot.id)
    manager.delete_snapshot(CTX, snapshot.id)
    settle(manager)
    with pytest.raises(exception.SnapshotNotFound):
        db.snapshot_get(snapshot.id)
    assert driver.snapshots == {}


def test_snapshot_that_fails_lands_in_error_with_reason(
        manager: VolumeManager, db: Database, driver: FakeDriver) -> None:
    volume_id = new_volume(db, status=states.AVAILABLE)
    snapshot = db.snapshot_create(volume_id, project_id="p1", user_id="u1")
    driver.fail["create_snapshot"] = exception.BackendError(
        reason="Can't create snapshot without using device-mapper kernel driver")
    manager.create_snapshot(CTX, snapshot.id)
    settle(manager)
    row = db.snapshot_get(snapshot.id)
    assert row.status == states.SNAP_ERROR
    assert (row.status_reason or "").startswith("the storage backend could not complete")


# -- concurrency ---------------------------------------------------------------------


def test_operations_on_one_volume_never_overlap(manager: VolumeManager, db: Database,
                                                driver: FakeDriver) -> None:
    driver.delay = 0.02
    volume_id = new_volume(db)
    for _ in range(4):
        manager.create_volume(CTX, volume_id)
    settle(manager)
    snapshots = [db.snapshot_create(volume_id, project_id="p1", user_id="u1").id
                 for _ in range(3)]
    for snapshot_id in snapshots:  # keyed by the parent volume: one at a time too
        manager.create_snapshot(CTX, snapshot_id)
        manager.create_snapshot(CTX, snapshot_id)
    settle(manager)
    assert driver.max_active[volume_id] == 1
    assert len(driver.calls) == 4
    assert {db.snapshot_get(s).status for s in snapshots} == {states.SNAP_AVAILABLE}


def test_different_volumes_run_in_parallel_up_to_the_pool_size(
        conf: cfg.ConfigOpts, db: Database, driver: FakeDriver) -> None:
    conf.set_override("executor_thread_pool_size", 3, group="volume")
    manager = VolumeManager(conf, db, driver, host=HOST)
    gate = threading.Event()
    driver.gates["create_volume"] = gate
    volume_ids = [new_volume(db) for _ in range(6)]
    for volume_id in volume_ids:
        manager.create_volume(CTX, volume_id)
    deadline = time.monotonic() + 5
    while len(driver.calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert len(driver.calls) == 3  # three workers busy, three jobs waiting
    gate.set()
    settle(manager)
    manager.close()
    assert driver.max_active_total == 3
    assert {db.volume_get(v).status for v in volume_ids} == {states.AVAILABLE}


# -- notifications, calls ------------------------------------------------------------


def test_create_notifies_start_and_end_with_ceilometer_payload(
        manager: VolumeManager, db: Database, sink: RecordingSink) -> None:
    volume_id = new_volume(db, size=2)
    manager.create_volume(CTX, volume_id)
    settle(manager)
    assert sink.events() == ["volume.create.start", "volume.create.end"]
    payload = sink.sent[-1][2]
    for key in ("volume_id", "tenant_id", "user_id", "size", "status", "display_name",
                "availability_zone", "created_at", "host"):
        assert key in payload
    assert (payload["volume_id"], payload["tenant_id"], payload["size"],
            payload["status"], payload["host"]) == (volume_id, "p1", 2, "available", HOST)


def test_every_operation_has_its_event_types(manager: VolumeManager, db: Database,
                                             sink: RecordingSink,
                                             driver: FakeDriver) -> None:
    volume_id, _ = _attached(manager, db)
    attachment = db.detach_begin(volume_id, "srv-1")
    manager.detach_volume(CTX, volume_id, attachment.id)
    settle(manager)
    db.volume_begin_extend(volume_id, 2)
    manager.extend_volume(CTX, volume_id, 2)
    settle(manager)
    snapshot = db.snapshot_create(volume_id, project_id="p1", user_id="u1")
    manager.create_snapshot(CTX, snapshot.id)
    settle(manager)
    db.snapshot_transition(snapshot.id, [states.SNAP_AVAILABLE],
                           {"status": states.SNAP_DELETING})
    manager.delete_snapshot(CTX, snapshot.id)
    settle(manager)
    _begin_delete(db, volume_id)
    manager.delete_volume(CTX, volume_id)
    settle(manager)
    assert sink.events() == [
        "volume.attach.start", "volume.attach.end", "volume.detach.start",
        "volume.detach.end", "volume.resize.start", "volume.resize.end",
        "snapshot.create.start", "snapshot.create.end", "snapshot.delete.start",
        "snapshot.delete.end", "volume.delete.start", "volume.delete.end"]
    assert sink.sent[-1][2]["status"] == "deleted"


def test_failure_notifies_error_priority(manager: VolumeManager, db: Database,
                                         driver: FakeDriver, sink: RecordingSink) -> None:
    driver.fail["create_volume"] = exception.BackendError(reason="boom")
    manager.create_volume(CTX, new_volume(db))
    settle(manager)
    assert sink.sent[-1][:2] == ("ERROR", "volume.create.error")
    assert sink.sent[-1][2]["status_reason"].startswith(
        "the storage backend could not complete the operation")


def test_capabilities_report_capacity_and_driver(manager: VolumeManager) -> None:
    capabilities = manager.capabilities()
    assert capabilities["total_capacity_gb"] == 100.0
    assert capabilities["free_capacity_gb"] == 100.0
    assert capabilities["driver"] == "fake"


# -- over the fake:// transport ------------------------------------------------------


@pytest.fixture
def bus(conf: cfg.ConfigOpts, manager: VolumeManager) -> Iterator[rpcapi.VolumeAPI]:
    transport = rpc.get_transport(conf, url="fake://")
    server = rpc.get_server(transport, server=HOST, endpoints=[manager], explicit=True)
    server.start()
    yield rpcapi.VolumeAPI(conf, transport, call_timeout=5)
    server.stop()
    server.wait()
    transport.cleanup()


def test_casts_through_rpcapi_reach_the_manager(bus: rpcapi.VolumeAPI,
                                                manager: VolumeManager,
                                                db: Database) -> None:
    volume_id = new_volume(db)
    bus.create_volume(RequestContext("p1", "u1"), HOST, volume_id)
    deadline = time.monotonic() + 5
    while db.volume_get(volume_id).status != states.AVAILABLE:
        assert time.monotonic() < deadline, "cast never ran"
        time.sleep(0.02)


def test_only_exposed_methods_can_be_invoked_over_the_bus(
        bus: rpcapi.VolumeAPI, db: Database) -> None:
    volume_id = new_volume(db)
    client = bus.client.prepare(server=HOST, timeout=5)
    with pytest.raises(Exception, match="redrive_volume"):
        client.call(CTX, "redrive_volume", volume=volume_id)
    with pytest.raises(Exception, match="_create_volume"):
        client.call(CTX, "_create_volume", volume_id=volume_id)


def test_a_failed_command_tells_the_owner_what_failed_without_the_hosts_command_line(
        manager: VolumeManager, db: Database, driver: FakeDriver) -> None:
    volume_id = new_volume(db)
    driver.fail["create_volume"] = exception.ProcessExecutionError(
        cmd="sudo lvcreate -an -Zn -n volume-0d9e -L 1g secret-vg-name", exit_code=5,
        stderr="  WARNING: Activation disabled.\n"
               "  Volume group \"secret-vg-name\" has insufficient free space")
    manager.create_volume(CTX, volume_id)
    settle(manager)
    reason = db.volume_get(volume_id).status_reason or ""
    assert reason.startswith("storage command lvcreate failed with exit code 5: not enough "
                             "free space on the storage host (reference ")
    assert "secret-vg-name" not in reason and "volume-0d9e" not in reason
    assert "/dev/" not in reason and "WARNING" not in reason


def test_a_cascade_volume_delete_that_arrives_first_removes_its_snapshots_first(
        manager: VolumeManager, db: Database, driver: FakeDriver) -> None:
    volume_id = new_volume(db, status=states.AVAILABLE)
    snapshot_ids = [db.snapshot_create(volume_id, project_id="p1", user_id="u1").id
                    for _ in range(2)]
    for snapshot_id in snapshot_ids:
        manager.create_snapshot(CTX, snapshot_id)
    settle(manager)
    db.volume_cascade_delete_begin(volume_id)
    # The volume's cast overtakes its snapshots' casts.
    manager.delete_volume(CTX, volume_id)
    for snapshot_id in snapshot_ids:
        manager.delete_snapshot(CTX, snapshot_id)
    settle(manager)
    with pytest.raises(exception.VolumeNotFound):
        db.volume_get(volume_id)
    assert driver.snapshots == {} and driver.volumes == {}
    assert db.snapshot_list(None, filters={"volume_id": volume_id}) == []
