"""The LVM driver against real LVM on a loop-device VG (private lvm.conf), observed with
``lvs`` and ``vgs``. Snapshot and thin tests need device-mapper and run where it exists."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.storage_env import (
    NO_DEVICE_MAPPER,
    LoopVG,
    RecordingExecutor,
    has_device_mapper,
    loop_vg,  # noqa: F401 - fixture
    make_loop_vg,
)
from volmgr import exception
from volmgr.volume.driver import SnapshotRef, VolumeDriver, VolumeRef
from volmgr.volume.drivers import loader

GiB = 1024 ** 3


@pytest.fixture
def lvm_driver(conf, loop_vg) -> VolumeDriver:  # noqa: F811
    loop_vg.configure(conf)
    conf.set_override("target_helper", "none", group="volume")
    # Nothing is activated in these tests; wiping is proven in test_storage_tgt.
    conf.set_override("volume_clear", "none", group="lvm")
    driver = loader.load_driver(conf, executor=RecordingExecutor())
    driver.check_setup()
    return driver


def new_volume(size: int = 1) -> VolumeRef:
    return VolumeRef(str(uuid.uuid4()), size)


def test_create_extend_delete_are_seen_by_lvs(lvm_driver, loop_vg) -> None:  # noqa: F811
    volume = new_volume(1)
    lvm_driver.create_volume(volume)
    assert loop_vg.lvs() == {f"volume-{volume.id}": 1 * GiB}
    lvm_driver.extend_volume(volume, 2)
    assert loop_vg.lvs() == {f"volume-{volume.id}": 2 * GiB}
    lvm_driver.delete_volume(volume)
    assert loop_vg.lvs() == {}


def test_create_and_delete_are_idempotent(lvm_driver, loop_vg) -> None:  # noqa: F811
    volume = new_volume(1)
    lvm_driver.create_volume(volume)
    lvm_driver.create_volume(volume)
    assert list(loop_vg.lvs()) == [f"volume-{volume.id}"]
    with pytest.raises(exception.BackendError, match="exists with"):
        lvm_driver.create_volume(VolumeRef(volume.id, 2))
    lvm_driver.extend_volume(volume, 1)
    lvm_driver.delete_volume(volume)
    lvm_driver.delete_volume(volume)
    assert loop_vg.lvs() == {}


def test_capacity_equals_what_vgs_reports(lvm_driver, loop_vg) -> None:  # noqa: F811
    volumes = [new_volume(1), new_volume(1)]
    for volume in volumes:
        lvm_driver.create_volume(volume)
    size, free = loop_vg.vgs()
    capacity = lvm_driver.get_capacity()
    assert capacity.total_gb == size / GiB and capacity.free_gb == free / GiB
    assert capacity.extra["total_capacity_bytes"] == size
    assert capacity.extra["free_capacity_bytes"] == free
    assert capacity.provisioned_gb == 2.0
    for volume in volumes:
        lvm_driver.delete_volume(volume)
    assert lvm_driver.get_capacity().free_gb == loop_vg.vgs()[1] / GiB


def test_list_volume_ids_matches_lvs_and_ignores_foreign_lvs(lvm_driver,
                                                             loop_vg) -> None:  # noqa: F811
    volume = new_volume()
    lvm_driver.create_volume(volume)
    loop_vg.lvm("lvcreate", "-n", "not-ours", "-L", "8m", loop_vg.name)
    loop_vg.expected_lvs.add("not-ours")
    assert lvm_driver.list_volume_ids() == {volume.id}
    lvm_driver.delete_volume(volume)


def test_a_volume_that_does_not_fit_fails_with_lvms_reason(lvm_driver,
                                                           loop_vg) -> None:  # noqa: F811
    with pytest.raises(exception.ProcessExecutionError, match="insufficient free space"):
        lvm_driver.create_volume(new_volume(50))
    assert loop_vg.lvs() == {}


def test_check_setup_fails_clearly_for_a_missing_volume_group(conf, loop_vg) -> None:  # noqa: F811
    loop_vg.configure(conf)
    conf.set_override("volume_group", "volmgr-no-such-vg", group="lvm")
    with pytest.raises(exception.BackendError, match="not usable"):
        loader.load_driver(conf).check_setup()


def test_thin_pools_are_refused_without_device_mapper(conf, loop_vg) -> None:  # noqa: F811
    if has_device_mapper():
        pytest.skip("this kernel has device-mapper; the thin tests below run instead")
    loop_vg.configure(conf)
    conf.set_override("lvm_type", "thin", group="lvm")
    with pytest.raises(exception.ProcessExecutionError, match="device-mapper"):
        loader.load_driver(conf).check_setup()


# -- needs device-mapper ---------------------------------------------------------------


@pytest.fixture
def dm_vg(tmp_path: Path) -> Iterator[LoopVG]:
    if not has_device_mapper():
        pytest.skip(NO_DEVICE_MAPPER)
    with make_loop_vg(tmp_path / "dmvg", activation=True) as vg:
        yield vg


@pytest.fixture(params=["thick", "thin"])
def dm_driver(request, conf, dm_vg) -> VolumeDriver:
    dm_vg.configure(conf)
    conf.set_override("target_helper", "none", group="volume")
    conf.set_override("lvm_type", request.param, group="lvm")
    conf.set_override("volume_clear_size", 4, group="lvm")
    driver = loader.load_driver(conf)
    driver.check_setup()
    if request.param == "thin":
        dm_vg.expected_lvs.add(conf.lvm.thin_pool_name)
    return driver


def test_snapshot_and_volume_from_snapshot_on_real_lvm(dm_driver, dm_vg) -> None:
    volume = new_volume(1)
    dm_driver.create_volume(volume)
    with open(dm_driver.local_path(volume), "r+b") as device:
        device.write(b"before-snapshot")
    snapshot = SnapshotRef(str(uuid.uuid4()), volume.id, 1)
    dm_driver.create_snapshot(snapshot)
    dm_driver.create_snapshot(snapshot)
    assert f"snapshot-{snapshot.id}" in dm_vg.lvs()
    with pytest.raises(exception.VolumeHasSnapshots):
        dm_driver.delete_volume(volume)
    clone = new_volume(2)
    dm_driver.create_volume_from_snapshot(clone, snapshot)
    assert dm_vg.lvs()[f"volume-{clone.id}"] == 2 * GiB
    with open(dm_driver.local_path(clone), "rb") as device:
        assert device.read(15) == b"before-snapshot"
    for remove in (lambda: dm_driver.delete_volume(clone),
                   lambda: dm_driver.delete_snapshot(snapshot),
                   lambda: dm_driver.delete_snapshot(snapshot),
                   lambda: dm_driver.delete_volume(volume)):
        remove()
    assert set(dm_vg.lvs()) == dm_vg.expected_lvs


def test_thin_capacity_reports_the_pool(conf, dm_vg) -> None:
    dm_vg.configure(conf)
    conf.set_override("lvm_type", "thin", group="lvm")
    driver = loader.load_driver(conf)
    driver.check_setup()
    dm_vg.expected_lvs.add(conf.lvm.thin_pool_name)
    volume = new_volume(5)
    driver.create_volume(volume)
    capacity = driver.get_capacity()
    assert capacity.thin is True and capacity.provisioned_gb == 5.0
    assert capacity.total_gb == dm_vg.lvs()[conf.lvm.thin_pool_name] / GiB
    driver.delete_volume(volume)
