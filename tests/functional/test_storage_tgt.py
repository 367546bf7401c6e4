"""Exports through a real tgtd, proven by a real initiator (libiscsi): CHAP, exact sizes,
removal, restoring every export after tgtd is killed, and LVM + tgt end to end."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.functional.storage_env import (
    INITIATOR_IQN,
    RecordingExecutor,
    connection_chap,
    iscsi_ls,
    login_error,
    loop_vg,  # noqa: F401 - fixture
    read_capacity,
    tgtd,  # noqa: F401 - fixture
)
from volmgr.volume import drivers
from volmgr.volume.driver import VolumeDriver, VolumeRef

GiB = 1024 ** 3
CONNECTOR = {"initiator": INITIATOR_IQN, "host": "test-host", "ip": "127.0.0.1"}


@pytest.fixture
def recorder() -> RecordingExecutor:
    return RecordingExecutor()


@pytest.fixture
def file_driver(conf, tgtd, recorder) -> VolumeDriver:  # noqa: F811
    conf.set_override("driver", "file", group="volume")
    tgtd.configure(conf)
    driver = drivers.load_driver(conf, executor=recorder)
    driver.check_setup()
    return driver


def exported(driver: VolumeDriver, size: int = 1) -> tuple[VolumeRef, dict]:
    volume = VolumeRef(str(uuid.uuid4()), size)
    driver.create_volume(volume)
    update = driver.create_export(volume)
    volume = VolumeRef(volume.id, size, update["provider_location"], update["provider_auth"])
    return volume, driver.initialize_connection(volume, CONNECTOR)


def test_an_export_answers_an_initiator_with_chap_at_the_exact_size(file_driver,
                                                                    tgtd) -> None:  # noqa: F811
    volume, info = exported(file_driver, size=1)
    data = info["data"]
    assert info["driver_volume_type"] == "iscsi"
    assert data["target_portal"] == tgtd.portal and data["target_lun"] == 1
    user, secret = connection_chap(info)
    listing = iscsi_ls(tgtd.portal, user, secret)
    assert data["target_iqn"] in listing.stdout and "Lun:1" in listing.stdout
    assert read_capacity(tgtd.portal, data["target_iqn"], 1, user, secret) == 1 * GiB
    file_driver.remove_export(volume)
    file_driver.delete_volume(volume)


def test_login_fails_without_chap_or_with_a_wrong_secret(file_driver, tgtd) -> None:  # noqa: F811
    volume, info = exported(file_driver)
    iqn = info["data"]["target_iqn"]
    user, secret = connection_chap(info)
    assert read_capacity(tgtd.portal, iqn, 1) is None
    assert "Authentication failure" in login_error(tgtd.portal, iqn, 1)
    assert read_capacity(tgtd.portal, iqn, 1, user, secret[:-1] + "x") is None
    assert read_capacity(tgtd.portal, iqn, 1, "someoneelse", secret) is None
    other, other_info = exported(file_driver)
    assert read_capacity(tgtd.portal, iqn, 1, *connection_chap(other_info)) is None, \
        "one volume's credentials do not open another volume"
    for each in (volume, other):
        file_driver.remove_export(each)
        file_driver.delete_volume(each)


def test_after_remove_export_the_target_is_gone(file_driver, tgtd, conf) -> None:  # noqa: F811
    volume, info = exported(file_driver)
    iqn = info["data"]["target_iqn"]
    assert iqn in tgtd.target_iqns()
    file_driver.remove_export(volume)
    assert iqn not in tgtd.target_iqns()
    assert iqn not in iscsi_ls(tgtd.portal, *connection_chap(info)).stdout
    assert read_capacity(tgtd.portal, iqn, 1, *connection_chap(info)) is None
    user = connection_chap(info)[0]
    assert user not in tgtd.tgtadm("--op", "show", "--mode", "account").stdout
    assert os.listdir(conf.volume.target_files_dir) == [".lock"]
    file_driver.remove_export(volume)  # already gone: still fine
    file_driver.delete_volume(volume)


def test_ensure_export_restores_every_export_after_tgtd_is_killed(file_driver,
                                                                   tgtd) -> None:  # noqa: F811
    volumes = [exported(file_driver, size) for size in (1, 2, 3)]
    tgtd.restart()
    assert tgtd.target_iqns() == set()
    for volume, _ in volumes:
        file_driver.ensure_export(volume)
    assert file_driver.list_exported_volume_ids() == {v.id for v, _ in volumes}
    for volume, info in volumes:
        size = read_capacity(tgtd.portal, info["data"]["target_iqn"], 1,
                             *connection_chap(info))
        assert size == volume.size * GiB
    for volume, _ in volumes:
        file_driver.ensure_export(volume)  # present: a no-op
        file_driver.remove_export(volume)
        file_driver.delete_volume(volume)


def test_with_initiator_acl_only_the_admitted_initiator_logs_in(conf, tgtd,  # noqa: F811
                                                                recorder) -> None:
    conf.set_override("driver", "file", group="volume")
    tgtd.configure(conf)
    conf.set_override("target_initiator_acl", True, group="volume")
    driver = drivers.load_driver(conf, executor=recorder)
    volume, info = exported(driver)
    iqn = info["data"]["target_iqn"]
    chap = connection_chap(info)
    assert read_capacity(tgtd.portal, iqn, 1, *chap) == GiB
    stranger = "iqn.2024-01.org.volmgr:stranger"
    assert read_capacity(tgtd.portal, iqn, 1, *chap, initiator=stranger) is None
    driver.terminate_connection(volume, CONNECTOR)
    assert read_capacity(tgtd.portal, iqn, 1, *chap) is None
    driver.remove_export(volume)
    driver.delete_volume(volume)


def test_chap_secrets_never_reach_an_argv_volmgr_runs(file_driver, recorder,
                                                      tgtd) -> None:  # noqa: F811
    volume, info = exported(file_driver)
    tgtd.restart()
    file_driver.ensure_export(volume)
    file_driver.remove_export(volume)
    secret = connection_chap(info)[1]
    assert recorder.argvs, "commands were run"
    assert not [argv for argv in recorder.argvs if any(secret in arg for arg in argv)]
    file_driver.delete_volume(volume)


def test_lvm_volume_exported_by_tgt_end_to_end(conf, tgtd, loop_vg,  # noqa: F811
                                               recorder) -> None:
    loop_vg.configure(conf)
    tgtd.configure(conf)
    driver = drivers.load_driver(conf, executor=recorder)
    driver.check_setup()
    volume = VolumeRef(str(uuid.uuid4()), 1)
    driver.create_volume(volume)
    # Where device-mapper exists the LV node is real; here the fixture stands in for it.
    device = loop_vg.activate(f"volume-{volume.id}")
    assert device == driver.local_path(volume)
    update = driver.create_export(volume)
    volume = VolumeRef(volume.id, 1, update["provider_location"], update["provider_auth"])
    info = driver.initialize_connection(volume, CONNECTOR)
    chap = connection_chap(info)
    assert read_capacity(tgtd.portal, info["data"]["target_iqn"], 1, *chap) == GiB
    with open(device, "r+b") as lv:
        lv.write(b"volmgr" * 1000)
    driver.remove_export(volume)
    offset, _length = loop_vg.extents(f"volume-{volume.id}")
    assert loop_vg.read_pv(offset, 6) == b"volmgr"
    driver.delete_volume(volume)  # volume_clear = zero by default
    assert loop_vg.read_pv(offset, 6000) == bytes(6000), "the LV's extents were zeroed"
    assert f"volume-{volume.id}" not in loop_vg.lvs()
    assert tgtd.target_iqns() == set()
