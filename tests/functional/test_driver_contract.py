"""The contract every storage driver keeps (volmgr/volume/driver.py), run against real LVM on a
loop VG and the file driver on real files: idempotent create/extend/delete, snapshots and
volumes made from them, exports, capacity, and no user text on any command line."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.functional.storage_env import (
    INITIATOR_IQN,
    NO_DEVICE_MAPPER,
    LoopVG,
    RecordingExecutor,
    connection_chap,
    has_device_mapper,
    make_loop_vg,
    read_capacity,
    tgtd,  # noqa: F401 - fixture
)
from volmgr import exception
from volmgr.volume.driver import SnapshotRef, VolumeDriver, VolumeRef
from volmgr.volume.drivers import loader

GiB = 1024 ** 3


@dataclasses.dataclass
class Backend:
    """A driver plus the test's own way of looking at its storage."""

    kind: str
    driver: VolumeDriver
    executor: RecordingExecutor
    size_of: Callable[[VolumeRef], int | None]
    make_readable: Callable[[VolumeRef], str]
    snapshots_supported: bool
    vg: LoopVG | None = None

    def require_snapshots(self) -> None:
        if not self.snapshots_supported:
            pytest.skip(NO_DEVICE_MAPPER)


@pytest.fixture(params=["lvm", "file"])
def backend(request, conf, tmp_path: Path) -> Iterator[Backend]:
    executor = RecordingExecutor()
    conf.set_override("target_helper", "none", group="volume")
    if request.param == "file":
        conf.set_override("driver", "file", group="volume")
        driver = loader.load_driver(conf, executor=executor)
        driver.check_setup()

        def file_size(volume: VolumeRef) -> int | None:
            path = driver.local_path(volume)
            return os.stat(path).st_size if os.path.exists(path) else None

        yield Backend("file", driver, executor, file_size, driver.local_path, True)
        return
    dm = has_device_mapper()
    with make_loop_vg(tmp_path / "vg", activation=dm) as vg:
        vg.configure(conf)
        # Wiping needs an active device; it is proven in test_storage_tgt with the stand-in.
        conf.set_override("volume_clear", "none", group="lvm")
        driver = loader.load_driver(conf, executor=executor)
        driver.check_setup()

        def lv_size(volume: VolumeRef) -> int | None:
            return vg.lvs().get(f"volume-{volume.id}")

        def activate(volume: VolumeRef) -> str:
            return vg.activate(f"volume-{volume.id}")

        yield Backend("lvm", driver, executor, lv_size, activate, dm, vg)


def new_volume(size: int = 1) -> VolumeRef:
    return VolumeRef(str(uuid.uuid4()), size)


def test_create_is_idempotent_and_refuses_a_different_size(backend) -> None:
    volume = new_volume(1)
    assert backend.driver.create_volume(volume) == {}
    backend.driver.create_volume(volume)
    assert backend.size_of(volume) == GiB
    assert backend.driver.list_volume_ids() == {volume.id}
    with pytest.raises(exception.BackendError):
        backend.driver.create_volume(VolumeRef(volume.id, 2))
    backend.driver.delete_volume(volume)


def test_extend_grows_and_is_a_noop_at_or_below_the_size(backend) -> None:
    volume = new_volume(1)
    backend.driver.create_volume(volume)
    backend.driver.extend_volume(volume, 2)
    backend.driver.extend_volume(volume, 2)
    backend.driver.extend_volume(volume, 1)
    assert backend.size_of(volume) == 2 * GiB
    backend.driver.delete_volume(volume)


def test_extend_of_a_missing_volume_is_a_backend_error(backend) -> None:
    with pytest.raises(exception.BackendError):
        backend.driver.extend_volume(new_volume(1), 2)


def test_delete_removes_the_volume_and_succeeds_when_already_gone(backend) -> None:
    volume = new_volume(1)
    backend.driver.create_volume(volume)
    backend.driver.delete_volume(volume)
    backend.driver.delete_volume(volume)
    assert backend.size_of(volume) is None
    assert backend.driver.list_volume_ids() == set()


def test_capacity_counts_provisioned_volumes(backend) -> None:
    before = backend.driver.get_capacity()
    volume = new_volume(2)
    backend.driver.create_volume(volume)
    after = backend.driver.get_capacity()
    assert after.provisioned_gb - before.provisioned_gb == 2.0
    assert 0 <= after.free_gb <= after.total_gb
    assert after.as_dict()["total_capacity_gb"] == after.total_gb
    backend.driver.delete_volume(volume)


def test_without_a_target_connection_info_names_the_local_path(backend) -> None:
    volume = new_volume(1)
    backend.driver.create_volume(volume)
    update = backend.driver.create_export(volume)
    assert update["provider_auth"] is None
    info = backend.driver.initialize_connection(volume, {"initiator": INITIATOR_IQN})
    assert info == {"driver_volume_type": "local",
                    "data": {"device_path": backend.driver.local_path(volume),
                             "volume_id": volume.id, "access_mode": "rw"}}
    backend.driver.terminate_connection(volume, {"initiator": INITIATOR_IQN})
    backend.driver.remove_export(volume)
    backend.driver.delete_volume(volume)


def test_snapshot_keeps_its_data_and_a_volume_made_from_it_holds_that_data(backend) -> None:
    backend.require_snapshots()
    volume = new_volume(1)
    backend.driver.create_volume(volume)
    with open(backend.make_readable(volume), "r+b") as origin:
        origin.write(b"point-in-time")
    snapshot = SnapshotRef(str(uuid.uuid4()), volume.id, 1)
    assert backend.driver.create_snapshot(snapshot) == {}
    backend.driver.create_snapshot(snapshot)
    with open(backend.make_readable(volume), "r+b") as origin:
        origin.write(b"LATER-WRITES!")
    clone = new_volume(2)
    backend.driver.create_volume_from_snapshot(clone, snapshot)
    backend.driver.create_volume_from_snapshot(clone, snapshot)
    assert backend.size_of(clone) == 2 * GiB
    with open(backend.make_readable(clone), "rb") as copy:
        assert copy.read(13) == b"point-in-time"
    assert backend.driver.list_volume_ids() == {volume.id, clone.id}
    backend.driver.delete_volume(clone)
    backend.driver.delete_snapshot(snapshot)
    backend.driver.delete_volume(volume)


def test_deleting_an_origin_with_snapshots_is_refused_until_they_are_gone(backend) -> None:
    backend.require_snapshots()
    volume = new_volume(1)
    backend.driver.create_volume(volume)
    snapshot = SnapshotRef(str(uuid.uuid4()), volume.id, 1)
    backend.driver.create_snapshot(snapshot)
    with pytest.raises(exception.VolumeHasSnapshots):
        backend.driver.delete_volume(volume)
    assert backend.size_of(volume) == GiB
    backend.driver.delete_snapshot(snapshot)
    backend.driver.delete_snapshot(snapshot)
    backend.driver.delete_volume(volume)
    assert backend.size_of(volume) is None


def test_a_volume_from_a_snapshot_cannot_be_smaller_than_it(backend) -> None:
    with pytest.raises(exception.InvalidInput):
        backend.driver.create_volume_from_snapshot(
            new_volume(1), SnapshotRef(str(uuid.uuid4()), str(uuid.uuid4()), 2))


def test_a_snapshot_of_a_missing_volume_is_a_backend_error(backend) -> None:
    with pytest.raises(exception.BackendError):
        backend.driver.create_snapshot(SnapshotRef(str(uuid.uuid4()), str(uuid.uuid4()), 1))


# -- user text never reaches a command line ------------------------------------------------

HOSTILE = [
    "$(touch /tmp/volmgr-pwned-{m})", "`touch /tmp/volmgr-pwned-{m}`",
    "; rm -rf / #{m}", "a\nb --force {m}", "-- {m}", "--{m}", "../../etc/passwd{m}",
    "| cat /etc/shadow {m}", "&& reboot {m}", "'\"{m}\\", "${{IFS}}{m}", "-rf{m}",
]


def test_names_descriptions_and_metadata_never_reach_an_argv(backend, db, conf,
                                                             tgtd) -> None:  # noqa: F811
    marker = "zz" + uuid.uuid4().hex[:8]
    hostile = [text.format(m=marker) for text in HOSTILE]
    tgtd.configure(conf)
    driver = loader.load_driver(conf, executor=backend.executor)
    row = db.volume_create(project_id="p1", user_id="u1", size=1, display_name=hostile[0],
                           display_description="\n".join(hostile),
                           metadata={text: text for text in hostile}, status="available")
    volume = VolumeRef(row.id, row.size)
    driver.create_volume(volume)
    backend.make_readable(volume)
    update = driver.create_export(volume)
    volume = VolumeRef(volume.id, volume.size, update["provider_location"],
                       update["provider_auth"])
    info = driver.initialize_connection(volume, {"initiator": INITIATOR_IQN,
                                                 "host": hostile[2]})
    assert read_capacity(tgtd.portal, info["data"]["target_iqn"], 1,
                         *connection_chap(info)) == GiB
    if backend.snapshots_supported:
        snap_row = db.snapshot_create(row.id, project_id="p1", user_id="u1",
                                      display_name=hostile[1],
                                      display_description="\n".join(hostile),
                                      metadata={text: text for text in hostile})
        snapshot = SnapshotRef(snap_row.id, snap_row.volume_id, snap_row.size)
        driver.create_snapshot(snapshot)
        driver.delete_snapshot(snapshot)
    driver.terminate_connection(volume, {"initiator": INITIATOR_IQN})
    driver.remove_export(volume)
    driver.delete_volume(volume)

    ran = backend.executor.argvs
    assert ran, "the driver ran commands"
    leaked = [argv for argv in ran
              if any(marker in arg or arg in hostile for arg in argv)]
    assert leaked == []
    assert not os.path.exists(f"/tmp/volmgr-pwned-{marker}")
