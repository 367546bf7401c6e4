"""The file driver on real files in tmp_path (fast: sparse files, local copies)."""

from __future__ import annotations

import os
import stat

import pytest

from volmgr import exception
from volmgr.volume.driver import SnapshotRef, VolumeRef
from volmgr.volume.drivers import loader
from volmgr.volume.drivers.file import FileDriver
from volmgr.volume.executor import CommandResult, ProcessExecutor

VOL = "0b5c9b3e-7a35-4a3e-9a73-2d3e8f6f0a01"
VOL2 = "5f1d7f8a-1c2b-4d3e-8f90-a1b2c3d4e5f6"
SNAP = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
GiB = 1024 ** 3


class Recording(ProcessExecutor):
    def __init__(self) -> None:
        super().__init__()
        self.argvs: list[list[str]] = []

    def _run(self, argv, env, timeout, stdin) -> CommandResult:  # type: ignore[no-untyped-def]
        self.argvs.append(list(argv))
        return super()._run(argv, env, timeout, stdin)


@pytest.fixture
def recording() -> Recording:
    return Recording()


@pytest.fixture
def driver(conf, recording) -> FileDriver:
    conf.set_override("driver", "file", group="volume")
    conf.set_override("target_helper", "none", group="volume")
    loaded = loader.load_driver(conf, executor=recording)
    assert isinstance(loaded, FileDriver)
    loaded.check_setup()
    return loaded


def test_volumes_dir_defaults_under_state_path(driver, conf) -> None:
    assert driver.volumes_dir == os.path.join(conf.state_path, "volumes")


def test_create_makes_a_private_sparse_image_of_exactly_the_size(driver) -> None:
    driver.create_volume(VolumeRef(VOL, 2))
    info = os.stat(driver.local_path(VolumeRef(VOL, 2)))
    assert info.st_size == 2 * GiB
    assert info.st_blocks * 512 < 1024 * 1024, "the image is sparse"
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert os.path.basename(driver.local_path(VolumeRef(VOL, 2))) == f"volume-{VOL}"


def test_create_is_idempotent_but_refuses_a_different_size(driver) -> None:
    driver.create_volume(VolumeRef(VOL, 1))
    driver.create_volume(VolumeRef(VOL, 1))
    with pytest.raises(exception.BackendError, match="exists with"):
        driver.create_volume(VolumeRef(VOL, 3))


def test_extend_truncates_up_and_never_shrinks(driver) -> None:
    volume = VolumeRef(VOL, 1)
    driver.create_volume(volume)
    driver.extend_volume(volume, 3)
    driver.extend_volume(volume, 2)
    assert os.stat(driver.local_path(volume)).st_size == 3 * GiB


def test_snapshots_are_copied_with_reflink_where_available_and_sparse(driver,
                                                                      recording) -> None:
    driver.create_volume(VolumeRef(VOL, 1))
    driver.create_snapshot(SnapshotRef(SNAP, VOL, 1))
    (cp,) = recording.argvs
    assert cp[:4] == ["cp", "--reflink=auto", "--sparse=always", "--"]
    assert cp[4] == driver.local_path(VolumeRef(VOL, 1))
    assert cp[5].endswith(f".snapshot-{SNAP}.part")


def test_no_temporary_file_is_left_behind(driver) -> None:
    driver.create_volume(VolumeRef(VOL, 1))
    driver.create_snapshot(SnapshotRef(SNAP, VOL, 1))
    driver.create_volume_from_snapshot(VolumeRef(VOL2, 2), SnapshotRef(SNAP, VOL, 1))
    leftovers = [name for _, _, files in os.walk(driver.volumes_dir) for name in files
                 if name.endswith(".part")]
    assert leftovers == []


def test_a_failed_copy_leaves_no_snapshot(driver, tmp_path) -> None:
    # A directory where the image should be: cp refuses it (even for root).
    os.makedirs(driver.local_path(VolumeRef(VOL, 1)))
    with pytest.raises(exception.ProcessExecutionError, match="cp"):
        driver.create_snapshot(SnapshotRef(SNAP, VOL, 1))
    assert not os.path.exists(driver._snapshot_path(SnapshotRef(SNAP, VOL, 1)))


def test_capacity_is_the_filesystem_and_provisioned_is_the_images(driver) -> None:
    driver.create_volume(VolumeRef(VOL, 2))
    capacity = driver.get_capacity()
    fs = os.statvfs(driver.volumes_dir)
    assert capacity.total_gb == fs.f_blocks * fs.f_frsize / GiB
    assert capacity.provisioned_gb == 2.0 and capacity.thin is True


def test_check_setup_refuses_a_volumes_dir_with_shell_syntax(conf, recording) -> None:
    conf.set_override("volumes_dir", "/tmp/vol mgr", group="file")
    conf.set_override("driver", "file", group="volume")
    with pytest.raises(exception.InvalidConfiguration):
        loader.load_driver(conf, executor=recording).check_setup()


def test_load_driver_builds_the_configured_driver_and_helper(conf) -> None:
    from volmgr.volume.drivers.lvm import LVMDriver
    from volmgr.volume.targets.lio import LioAdm
    from volmgr.volume.targets.tgt import TgtAdm

    assert isinstance(loader.load_driver(conf), LVMDriver)
    assert isinstance(loader.load_driver(conf).target, TgtAdm)  # type: ignore[attr-defined]
    conf.set_override("driver", "file", group="volume")
    conf.set_override("target_helper", "lioadm", group="volume")
    loaded = loader.load_driver(conf)
    assert isinstance(loaded, FileDriver) and isinstance(loaded.target, LioAdm)
