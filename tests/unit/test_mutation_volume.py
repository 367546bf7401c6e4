"""Behaviour of the volume side that a mutation-testing run found unpinned (see
docs/decisions.md, "Mutation testing"): calls reach only the host they name, one busy
volume does not hold back the recovery of other volumes' snapshots, a failed snapshot
delete says why, a connect that loses to a delete admits nothing, the file driver keeps
an origin with snapshots and its directory private, the heartbeat's capacity and the
manager's calls reach the operator's metrics, a timed-out command keeps its output."""

from __future__ import annotations

import datetime
import os
import shutil
import stat
import threading
import types
import uuid
from collections.abc import Iterator
from typing import Any

import prometheus_client
import pytest
import sqlalchemy as sa
from oslo_config import cfg

from tests.unit.test_api_v3_attachments import AclDriver
from tests.unit.volume_fakes import FakeDriver, RecordingSink
from volmgr import exception, rpc, states
from volmgr.context import RequestContext
from volmgr.db import Database, models
from volmgr.volume import metrics as volume_metrics
from volmgr.volume import rpcapi
from volmgr.volume.driver import SnapshotRef, VolumeRef
from volmgr.volume.drivers import loader
from volmgr.volume.drivers.file import FileDriver
from volmgr.volume.executor import ProcessExecutor
from volmgr.volume.manager import VolumeManager
from volmgr.volume.notifications import VolumeNotifier
from volmgr.volume.recovery import Recovery
from volmgr.volume.targets import tgt_files

HOST = "node-m"
CTX = RequestContext(project_id="p1", user_id="u1", request_id="req-mut")
VOL = "0b5c9b3e-7a35-4a3e-9a73-2d3e8f6f0a01"
SNAP = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"


@pytest.fixture
def transport(conf: cfg.ConfigOpts) -> Iterator[Any]:
    transport = rpc.get_transport(conf, url="fake://")
    yield transport
    transport.cleanup()


@pytest.fixture
def manager(conf: cfg.ConfigOpts, db: Database) -> Iterator[tuple[VolumeManager, FakeDriver]]:
    driver = FakeDriver()
    mgr = VolumeManager(conf, db, driver, VolumeNotifier(RecordingSink()), host=HOST)
    yield mgr, driver
    mgr.close()


@pytest.fixture
def file_driver(conf: cfg.ConfigOpts) -> FileDriver:
    conf.set_override("driver", "file", group="volume")
    conf.set_override("target_helper", "none", group="volume")
    loaded = loader.load_driver(conf, executor=ProcessExecutor())
    assert isinstance(loaded, FileDriver)
    loaded.check_setup()
    return loaded


def test_a_call_for_one_host_is_never_answered_by_another_host(
        conf: cfg.ConfigOpts, transport: Any) -> None:
    answered: list[str] = []

    class Endpoint:
        target = rpc.messaging.Target(version=rpcapi.RPC_API_VERSION)

        def terminate_connection(self, context: dict[str, Any], volume_id: str,
                                 connector: dict[str, Any],
                                 attachment_id: str | None = None) -> None:
            answered.append(volume_id)

    server = rpc.get_server(transport, server="node-d", endpoints=[Endpoint()])
    server.start()
    try:
        api = rpcapi.VolumeAPI(conf, transport, call_timeout=1)
        with pytest.raises(exception.ServiceUnavailable, match="node-c"):
            api.terminate_connection(CTX, "node-c", VOL, {"initiator": "iqn.x"})
        assert answered == []
        api.terminate_connection(CTX, "node-d", VOL, {"initiator": "iqn.x"})
        assert answered == [VOL]
    finally:
        server.stop()
        server.wait()


def test_the_heartbeat_advertises_multiattach(
        manager: tuple[VolumeManager, FakeDriver]) -> None:
    mgr, _ = manager
    assert mgr.capabilities()["multiattach"] is True


def test_a_failed_snapshot_delete_is_error_deleting_with_a_reason(
        manager: tuple[VolumeManager, FakeDriver], db: Database) -> None:
    mgr, driver = manager
    volume = db.volume_create(project_id="p1", user_id="u1", size=1, host=HOST,
                              status=states.AVAILABLE)
    snapshot = db.snapshot_create(volume.id, project_id="p1", user_id="u1")
    assert db.snapshot_transition(snapshot.id, (states.SNAP_CREATING,),
                                  {"status": states.SNAP_DELETING})
    driver.fail["delete_snapshot"] = exception.BackendError(reason="lvremove refused")
    mgr.delete_snapshot(CTX.to_dict(), snapshot.id)
    assert mgr.wait_idle(10)
    failed = db.snapshot_get(snapshot.id)
    assert failed.status == states.SNAP_ERROR_DELETING
    assert failed.status_reason is not None
    assert "could not complete" in failed.status_reason


def test_the_capacity_gauges_are_in_bytes_and_labelled_with_the_volume_group() -> None:
    host = f"node-{uuid.uuid4().hex[:8]}"  # labels no earlier test in this process set
    volume_metrics.update_capacity(host, {
        "volume_group": "vg-g", "total_capacity_gb": 10, "free_capacity_gb": 4,
        "provisioned_capacity_gb": 3})
    gib = 1024 ** 3

    def sample(name: str) -> float | None:
        return prometheus_client.REGISTRY.get_sample_value(name, {"host": host, "vg": "vg-g"})
    assert sample("volmgr_vg_size_bytes") == 10 * gib
    assert sample("volmgr_vg_free_bytes") == 4 * gib
    assert sample("volmgr_vg_allocated_bytes") == 3 * gib


def test_an_unknown_target_helper_is_refused_by_name() -> None:
    conf = types.SimpleNamespace(volume=types.SimpleNamespace(target_helper="scsi-magic"))
    with pytest.raises(exception.InvalidConfiguration, match="scsi-magic"):
        loader.load_target_helper(conf, ProcessExecutor())  # type: ignore[arg-type]


def test_the_file_driver_keeps_a_volume_that_has_snapshots(file_driver: FileDriver) -> None:
    volume = VolumeRef(id=VOL, size=1)
    file_driver.create_volume(volume)
    file_driver.create_snapshot(SnapshotRef(id=SNAP, volume_id=VOL, size=1))
    with pytest.raises(exception.VolumeHasSnapshots):
        file_driver.delete_volume(volume)
    assert VOL in file_driver.list_volume_ids()


def test_the_file_driver_recreates_a_missing_volumes_directory_private(
        file_driver: FileDriver) -> None:
    shutil.rmtree(file_driver.volumes_dir)
    file_driver.get_capacity()
    assert stat.S_IMODE(os.stat(file_driver.volumes_dir).st_mode) == 0o700


def test_a_connect_that_loses_to_a_concurrent_delete_leaves_no_initiator_admitted(
        conf: cfg.ConfigOpts, db: Database) -> None:
    volume = db.volume_create(project_id="p1", user_id="u1", size=1, host=HOST,
                              status=states.AVAILABLE)
    attachment = db.attachment_reserve(volume.id, server_id="srv-1", project_id="p1",
                                       flow=states.FLOW_V3)

    class DeletedWhileConnecting(AclDriver):
        def initialize_connection(self, ref: Any, connector: dict[str, Any]) -> Any:
            info = super().initialize_connection(ref, connector)
            db.attachment_begin_delete(attachment.id)  # the client's DELETE wins
            return info

    driver = DeletedWhileConnecting()
    driver.volumes[volume.id] = 1
    mgr = VolumeManager(conf, db, driver, VolumeNotifier(RecordingSink()), host=HOST)
    try:
        with pytest.raises(exception.Conflict, match="ended meanwhile"):
            mgr.connect_attachment(CTX.to_dict(), volume.id, attachment.id,
                                   {"initiator": "iqn.1993-08.org.debian:01:beef"})
    finally:
        mgr.wait_idle(10)
        mgr.close()
    assert not driver.acl.get(volume.id)  # the initiator was withdrawn
    assert volume.id not in driver.exports


def test_a_command_that_times_out_keeps_what_it_printed_and_says_it_timed_out() -> None:
    result = ProcessExecutor().execute(
        ["sh", "-c", "echo partial; echo oops >&2; exec sleep 5"], timeout=0.5,
        check_exit_code=False)
    assert result.exit_code == ProcessExecutor.TIMEOUT_EXIT_CODE
    assert result.stdout == "partial\n"
    assert "oops" in result.stderr and "timed out after 0.5s" in result.stderr


def test_a_call_to_the_manager_is_counted_under_its_own_name(
        conf: cfg.ConfigOpts, db: Database) -> None:
    volume = db.volume_create(project_id="p1", user_id="u1", size=1, host=HOST,
                              status=states.AVAILABLE)
    attachment = db.attachment_reserve(volume.id, server_id="srv-1", project_id="p1",
                                       flow=states.FLOW_V3)
    driver = AclDriver()
    driver.volumes[volume.id] = 1
    labels = {"host": HOST, "kind": "connect_attachment", "outcome": "success"}

    def count() -> float:
        return prometheus_client.REGISTRY.get_sample_value(
            "volmgr_operations_total", labels) or 0.0
    before = count()
    mgr = VolumeManager(conf, db, driver, VolumeNotifier(RecordingSink()), host=HOST)
    try:
        mgr.connect_attachment(CTX.to_dict(), volume.id, attachment.id,
                               {"initiator": "iqn.1993-08.org.debian:01:beef"})
    finally:
        mgr.wait_idle(10)
        mgr.close()
    assert count() == before + 1


def test_a_tgt_target_file_read_back_names_its_backing_store_and_chap_account() -> None:
    """What ensure_export rebuilds a target from after tgtd restarts."""
    parsed = tgt_files.parse(
        "<target iqn.2010-10.org.openstack:volume-x>\n"
        "    backing-store /dev/volmgr/volume-x\n"
        "    incominguser chapuser chapSecret42\n"
        "</target>\n")
    assert parsed is not None
    assert parsed.device_path == "/dev/volmgr/volume-x"
    assert (parsed.chap.username, parsed.chap.secret) == ("chapuser", "chapSecret42")


def _stuck_snapshot(db: Database, seconds: int) -> tuple[str, str]:
    """An available volume with a snapshot whose create was asked ``seconds`` ago."""
    volume = db.volume_create(project_id="p1", user_id="u1", size=1, host=HOST,
                              status=states.AVAILABLE)
    snapshot = db.snapshot_create(volume.id, project_id="p1", user_id="u1")
    stamp = models.utcnow() - datetime.timedelta(seconds=seconds)
    with db.transaction() as session:
        table = models.table(models.Snapshot)
        session.execute(sa.update(table).where(table.c.id == snapshot.id).values(
            status_changed_at=stamp))
    return volume.id, snapshot.id


def test_a_busy_volume_does_not_hold_back_recovery_of_other_volumes_snapshots(
        conf: cfg.ConfigOpts, db: Database,
        manager: tuple[VolumeManager, FakeDriver]) -> None:
    conf.set_override("recovery_age", 30, group="volume")
    mgr, driver = manager
    busy_volume, busy_snapshot = _stuck_snapshot(db, seconds=600)  # the older: first
    _, other_snapshot = _stuck_snapshot(db, seconds=120)
    driver.gates["extend_volume"] = gate = threading.Event()
    db.volume_begin_extend(busy_volume, 2)
    mgr.extend_volume(CTX.to_dict(), busy_volume, 2)  # blocks in the driver: busy
    try:
        report = Recovery(conf, db, mgr).run_once()
    finally:
        gate.set()
    assert mgr.wait_idle(10)
    assert report.redriven == [(other_snapshot, states.SNAP_CREATING)]
    assert db.snapshot_get(other_snapshot).status == states.SNAP_AVAILABLE
    assert db.snapshot_get(busy_snapshot).status == states.SNAP_CREATING


def test_the_file_driver_ignores_a_stray_file_that_only_looks_like_a_volume(
        file_driver: FileDriver) -> None:
    file_driver.create_volume(VolumeRef(id=VOL, size=1))
    with open(os.path.join(file_driver.volumes_dir, "volume-not-a-uuid"), "w"):
        pass
    assert file_driver.list_volume_ids() == {VOL}
