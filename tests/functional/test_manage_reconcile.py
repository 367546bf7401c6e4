"""``volmgr-manage reconcile`` as an operator runs it: a real process, a config file, a
scratch PostgreSQL database and a real backend: image files, and LVM on a loop-device VG
exported through a private tgtd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from tests.functional.storage_env import make_loop_vg, make_tgtd
from volmgr import config, states
from volmgr.db import Database, migration
from volmgr.db import engine as engine_mod
from volmgr.volume.driver import VolumeDriver, VolumeRef
from volmgr.volume.drivers import loader

MANAGE = os.path.join(os.path.dirname(sys.executable), "volmgr-manage")
MISSING_REASON = "backing volume missing (found by reconcile)"


def manage(conf_file: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MANAGE, "--config-file", conf_file, *args],
                          capture_output=True, text=True, timeout=120)


def _driver(conf_file: str) -> VolumeDriver:
    conf = config.new_conf()
    config.parse_args(["--config-file", conf_file], conf, default_config_files=[])
    return loader.load_driver(conf)


def _database(url: str) -> Database:
    database = Database(engine_mod.create_engine(url),
                        quota_limits={"volumes": 100, "gigabytes": 1000, "snapshots": 10})
    migration.upgrade(database.engine)
    return database


def _seed_and_reconcile(conf_file: str, db: Database, driver: VolumeDriver, host: str,
                        remove_by_hand: Any) -> None:
    """The acceptance scenario, whatever the backend: an orphan volume, a row whose
    volume was removed by hand, and a healthy volume that must survive."""
    db.service_heartbeat(host, "volmgr-volume", "volmgr-volume", {})
    healthy = db.volume_create(project_id="p", user_id="u", size=1, host=host,
                               status=states.AVAILABLE)
    driver.create_volume(VolumeRef(healthy.id, 1))
    lost = db.volume_create(project_id="p", user_id="u", size=1, host=host,
                            status=states.AVAILABLE)
    driver.create_volume(VolumeRef(lost.id, 1))
    remove_by_hand(lost.id)
    orphan = str(uuid.uuid4())
    driver.create_volume(VolumeRef(orphan, 1))

    report = manage(conf_file, "reconcile", "--format", "json")
    assert report.returncode == 3, report.stderr
    assert {(f["problem"], f["volume_id"]) for f in json.loads(report.stdout)} == {
        ("orphan_lv", orphan), ("missing_lv", lost.id)}
    assert driver.list_volume_ids() == {healthy.id, orphan}

    fixed = manage(conf_file, "reconcile", "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "volume removed" in fixed.stdout and "set to error" in fixed.stdout
    assert driver.list_volume_ids() == {healthy.id}
    row = db.volume_get(lost.id)
    assert (row.status, row.status_reason) == (states.ERROR, MISSING_REASON)
    assert db.volume_get(healthy.id).status == states.AVAILABLE

    again = manage(conf_file, "reconcile")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.strip() == (
        f"No differences between the database and the backend on host {host}.")


def test_reconcile_on_image_files_reports_fixes_and_then_finds_nothing(
        tmp_path, postgres_url):
    host = f"reconcile-{uuid.uuid4().hex[:8]}"
    volumes_dir = tmp_path / "volumes"
    conf_file = tmp_path / "volmgr.conf"
    conf_file.write_text(
        f"[DEFAULT]\nhost = {host}\nstate_path = {tmp_path}/state\n"
        f"[database]\nconnection = {postgres_url}\n"
        f"[volume]\ndriver = file\ntarget_helper = none\n"
        f"[file]\nvolumes_dir = {volumes_dir}\n")
    db = _database(postgres_url)
    try:
        _seed_and_reconcile(str(conf_file), db, _driver(str(conf_file)), host,
                            lambda volume_id: os.unlink(volumes_dir / f"volume-{volume_id}"))
    finally:
        db.dispose()


def test_reconcile_fix_against_an_unregistered_host_is_refused_and_deletes_nothing(
        tmp_path, postgres_url):
    volumes_dir = tmp_path / "volumes"
    conf_file = tmp_path / "volmgr.conf"
    conf_file.write_text(
        f"[DEFAULT]\nhost = nobody-{uuid.uuid4().hex[:8]}\n"
        f"[database]\nconnection = {postgres_url}\n"
        f"[volume]\ndriver = file\ntarget_helper = none\n"
        f"[file]\nvolumes_dir = {volumes_dir}\n")
    db = _database(postgres_url)
    db.dispose()
    driver = _driver(str(conf_file))
    driver.create_volume(VolumeRef(str(uuid.uuid4()), 1))
    result = manage(str(conf_file), "reconcile", "--fix")
    assert result.returncode == 1
    assert "refusing --fix" in result.stderr
    assert len(driver.list_volume_ids()) == 1



# -- LVM on a loop device, exported through a private tgtd ------------------------------


@pytest.fixture
def big_loop_vg(tmp_path):
    """8 GiB (sparse): room for five 1 GiB volumes."""
    with make_loop_vg(tmp_path / "loopvg", size_mib=8192) as vg:
        yield vg


@pytest.fixture
def private_tgtd(tmp_path):
    with make_tgtd(tmp_path / "tgtd") as daemon:
        yield daemon


def test_reconcile_on_lvm_and_tgtd_finds_and_fixes_orphans_and_missing_lvs(
        tmp_path, postgres_url, big_loop_vg, private_tgtd):
    loop_vg, tgtd = big_loop_vg, private_tgtd
    host = f"reconcile-lvm-{uuid.uuid4().hex[:8]}"
    conf_file = tmp_path / "volmgr.conf"
    conf_file.write_text(
        f"[DEFAULT]\nhost = {host}\nstate_path = {tmp_path}/state\n"
        f"[database]\nconnection = {postgres_url}\n"
        f"[volume]\ndriver = lvm\ntarget_helper = tgtadm\n"
        f"tgt_control_port = {tgtd.control_port}\ntarget_ip_address = 127.0.0.1\n"
        f"target_port = {tgtd.portal_port}\n"
        f"[lvm]\nvolume_group = {loop_vg.name}\nlvm_conf = {loop_vg.lvm_conf}\n"
        f"device_dir = {loop_vg.device_dir}\nvolume_clear = zero\nvolume_clear_size = 1\n")
    driver = _driver(str(conf_file))
    db = _database(postgres_url)
    try:
        db.service_heartbeat(host, "volmgr-volume", "volmgr-volume", {})

        def volume(status: str | None, exported: bool = False) -> str:
            volume_id = str(uuid.uuid4())
            if status is not None:
                volume_id = db.volume_create(project_id="p", user_id="u", size=1,
                                             host=host, status=status).id
            driver.create_volume(VolumeRef(volume_id, 1))
            if exported:
                # No device-mapper here: the fixture's stand-in gives the LV a device.
                loop_vg.activate(f"volume-{volume_id}")
                updates = driver.create_export(VolumeRef(volume_id, 1))
                if status is not None:
                    db.volume_update(volume_id, updates)
            return volume_id

        healthy = volume(states.AVAILABLE)
        attached = volume(states.IN_USE, exported=True)
        stale_export = volume(states.AVAILABLE, exported=True)
        orphan = volume(None, exported=True)
        orphan_offset, _ = loop_vg.extents(f"volume-{orphan}")
        with open(driver.local_path(VolumeRef(orphan, 1)), "r+b") as device:
            device.write(b"tenant data")
        lost = volume(states.AVAILABLE)
        loop_vg.lvm("lvremove", "-f", f"{loop_vg.name}/volume-{lost}")  # by hand
        loop_vg.expected_lvs = {f"volume-{v}" for v in (healthy, attached, stale_export)}

        report = manage(str(conf_file), "reconcile", "--format", "json")
        assert report.returncode == 3, report.stdout + report.stderr
        assert sorted((f["problem"], f["volume_id"]) for f in json.loads(report.stdout)) == \
            sorted([("orphan_lv", orphan), ("missing_lv", lost),
                    ("orphan_target", orphan), ("orphan_target", stale_export)])

        fixed = manage(str(conf_file), "reconcile", "--fix", "--format", "json")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert set(loop_vg.lvs()) == loop_vg.expected_lvs
        assert loop_vg.read_pv(orphan_offset, 11) == bytes(11)  # wiped before lvremove
        assert tgtd.target_iqns() == {driver.target.iqn(attached)}
        row = db.volume_get(lost)
        assert (row.status, row.status_reason) == (states.ERROR, MISSING_REASON)

        again = manage(str(conf_file), "reconcile", "--format", "json")
        assert again.returncode == 0 and json.loads(again.stdout) == [], again.stderr
    finally:
        db.dispose()
