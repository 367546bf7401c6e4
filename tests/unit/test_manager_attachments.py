"""The manager's side of attachments as a specification: connect admits and records,
a failure admits nothing, the export goes with the last attachment, an in-use volume
grows on its live LUN and says so, and recovery finishes or undoes what a crash left."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

from tests.unit.volume_fakes import FakeDriver, RecordingSink
from volmgr import exception, states
from volmgr.context import RequestContext
from volmgr.db import Database
from volmgr.volume.manager import VolumeManager
from volmgr.volume.notifications import VolumeNotifier
from volmgr.volume.recovery import Recovery

HOST = "node-a"
CTX = RequestContext(project_id="p1", user_id="u1", request_id="req-att").to_dict()
INI = "iqn.1993-08.org.debian:01:one"


class RefreshingDriver(FakeDriver):
    def __init__(self) -> None:
        super().__init__()
        self.refreshed: list[tuple[str, int]] = []

    def refresh_export(self, volume: Any) -> None:
        self.refreshed.append((volume.id, volume.size))


@pytest.fixture
def driver() -> RefreshingDriver:
    return RefreshingDriver()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def manager(conf: cfg.ConfigOpts, db: Database, driver: RefreshingDriver,
            sink: RecordingSink) -> Iterator[VolumeManager]:
    mgr = VolumeManager(conf, db, driver, VolumeNotifier(sink), host=HOST)
    yield mgr
    mgr.wait_idle(10)
    mgr.close()


def new_volume(db: Database, driver: FakeDriver, **kwargs: Any) -> str:
    volume_id = db.volume_create(project_id="p1", user_id="u1", size=1, host=HOST,
                                 display_name="v", status=states.AVAILABLE, **kwargs).id
    driver.volumes[volume_id] = 1
    return volume_id


def reserve(db: Database, volume_id: str, flow: str = states.FLOW_V3) -> str:
    return db.attachment_reserve(volume_id, server_id="srv", project_id=None,
                                 flow=flow).id


def test_connect_exports_records_connection_info_and_keeps_the_volume_reserved(
        manager: VolumeManager, db: Database, driver: RefreshingDriver,
        sink: RecordingSink) -> None:
    volume_id = new_volume(db, driver)
    attachment_id = reserve(db, volume_id)
    info = manager.connect_attachment(CTX, volume_id, attachment_id, {"initiator": INI})
    assert info["data"]["access_mode"] == "rw"
    assert info["data"]["attachment_id"] == attachment_id
    row = db.attachment_get(attachment_id)
    assert (row.attach_status, row.connection_info, row.connector) == (
        "attaching", info, {"initiator": INI})
    assert volume_id in driver.exports
    assert db.volume_get(volume_id).status == "reserved"
    assert sink.events()[-2:] == ["volume.attach.start", "volume.attach.end"]


def test_a_failed_connect_admits_nothing_and_travels_back_as_a_volmgr_error(
        manager: VolumeManager, db: Database, driver: RefreshingDriver) -> None:
    volume_id = new_volume(db, driver)
    attachment_id = reserve(db, volume_id)
    driver.fail["initialize_connection"] = RuntimeError("boom /dev/vg/secret-path")
    with pytest.raises(exception.BackendError) as failed:
        manager.connect_attachment(CTX, volume_id, attachment_id, {"initiator": INI})
    assert "/dev/vg" not in str(failed.value)
    assert db.attachment_get(attachment_id).attach_status == "error_attaching"
    assert volume_id not in driver.exports
    assert ("terminate_connection", volume_id) in driver.calls


def test_a_second_host_cannot_connect_a_volume_that_is_not_multiattach(
        manager: VolumeManager, db: Database, driver: RefreshingDriver) -> None:
    volume_id = new_volume(db, driver)
    first = reserve(db, volume_id)
    manager.connect_attachment(CTX, volume_id, first, {"initiator": INI, "host": "c1"})
    with pytest.raises(exception.VolumeStatusConflict):
        reserve(db, volume_id)


def test_the_export_goes_with_the_last_of_several_attachments(
        manager: VolumeManager, db: Database, driver: RefreshingDriver) -> None:
    volume_id = new_volume(db, driver, multiattach=True)
    ids = []
    for n in (1, 2):
        attachment_id = reserve(db, volume_id)
        manager.connect_attachment(CTX, volume_id, attachment_id,
                                   {"initiator": f"{INI}{n}", "host": f"c{n}"})
        db.attachment_complete(attachment_id)
        ids.append(attachment_id)
    assert db.volume_get(volume_id).status == "in-use"
    for n, attachment_id in enumerate(ids):
        db.attachment_begin_delete(attachment_id)
        manager.detach_volume(CTX, volume_id, attachment_id)
        assert manager.wait_idle(10)
        last = n == len(ids) - 1
        assert (volume_id in driver.exports) is not last
        assert db.volume_get(volume_id).status == ("available" if last else "in-use")


def test_an_in_use_volume_grows_on_its_live_lun_and_reports_resize_end(
        manager: VolumeManager, db: Database, driver: RefreshingDriver,
        sink: RecordingSink) -> None:
    volume_id = new_volume(db, driver)
    attachment_id = reserve(db, volume_id)
    manager.connect_attachment(CTX, volume_id, attachment_id, {"initiator": INI})
    db.attachment_complete(attachment_id)
    db.volume_begin_extend(volume_id, 3, from_statuses=states.CAN_EXTEND_ATTACHED_FROM)
    manager.extend_volume(CTX, volume_id, 3)
    assert manager.wait_idle(10)
    volume = db.volume_get(volume_id)
    assert (volume.status, volume.size) == ("in-use", 3)
    assert driver.refreshed == [(volume_id, 3)]
    assert "volume.resize.end" in sink.events()


def test_a_detached_volume_grows_without_touching_a_target(
        manager: VolumeManager, db: Database, driver: RefreshingDriver) -> None:
    volume_id = new_volume(db, driver)
    db.volume_begin_extend(volume_id, 2)
    manager.extend_volume(CTX, volume_id, 2)
    assert manager.wait_idle(10)
    assert db.volume_get(volume_id).status == "available" and driver.refreshed == []


def recover(conf: cfg.ConfigOpts, db: Database, manager: VolumeManager) -> None:
    conf.set_override("recovery_age", 0, group="volume")
    Recovery(conf, db, manager).run_once()
    assert manager.wait_idle(10)


def test_recovery_rolls_back_a_begin_detaching_no_detach_followed(
        manager: VolumeManager, db: Database, driver: RefreshingDriver,
        conf: cfg.ConfigOpts) -> None:
    volume_id = new_volume(db, driver)
    attachment_id = reserve(db, volume_id, states.FLOW_LEGACY)
    manager.connect_attachment(CTX, volume_id, attachment_id, {"initiator": INI})
    db.attachment_complete(attachment_id, server_id="srv")
    db.volume_begin_detaching(volume_id, project_id=None)
    recover(conf, db, manager)
    assert db.volume_get(volume_id).status == "in-use"
    assert volume_id in driver.exports


def test_recovery_finishes_a_detach_the_manager_never_did(
        manager: VolumeManager, db: Database, driver: RefreshingDriver,
        conf: cfg.ConfigOpts) -> None:
    volume_id = new_volume(db, driver, multiattach=True)
    ids = []
    for n in (1, 2):
        attachment_id = reserve(db, volume_id)
        manager.connect_attachment(CTX, volume_id, attachment_id, {"initiator": f"{INI}{n}"})
        db.attachment_complete(attachment_id)
        ids.append(attachment_id)
    db.attachment_begin_delete(ids[0])  # the cast was lost: the volume stays in-use
    recover(conf, db, manager)
    assert [a.id for a in db.attachment_list(volume_id=volume_id)] == [ids[1]]
    assert db.volume_get(volume_id).status == "in-use"


def test_recovery_leaves_an_os_reserve_to_its_client(
        manager: VolumeManager, db: Database, driver: RefreshingDriver,
        conf: cfg.ConfigOpts) -> None:
    volume_id = new_volume(db, driver)
    attachment_id = reserve(db, volume_id, states.FLOW_LEGACY)
    for _ in range(conf.volume.recovery_max_attempts + 2):
        recover(conf, db, manager)
    assert db.volume_get(volume_id).status == "attaching"
    assert db.attachment_get(attachment_id).attach_status == "reserved"


def test_start_up_restores_the_export_of_a_connected_but_not_completed_attachment(
        manager: VolumeManager, db: Database, driver: RefreshingDriver,
        conf: cfg.ConfigOpts) -> None:
    volume_id = new_volume(db, driver)
    attachment_id = reserve(db, volume_id)
    manager.connect_attachment(CTX, volume_id, attachment_id, {"initiator": INI})
    driver.exports.clear()
    assert Recovery(conf, db, manager).restore_exports() == 1
    assert manager.wait_idle(10)
    assert volume_id in driver.exports
