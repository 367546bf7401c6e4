"""The LVM driver's exact commands, scripted (snapshots and thin pools included: this kernel
has no device-mapper, so these are the only tests of them that run here)."""

from __future__ import annotations

import os

import pytest

from tests.unit.scripted import ScriptedExecutor
from volmgr import exception
from volmgr.volume.driver import SnapshotRef, VolumeRef
from volmgr.volume.drivers import loader, lvm

VG = "vg-test"
VOL = "0b5c9b3e-7a35-4a3e-9a73-2d3e8f6f0a01"
VOL2 = "5f1d7f8a-1c2b-4d3e-8f90-a1b2c3d4e5f6"
SNAP = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
GiB = 1024 ** 3
LVS = ["lvs", "--noheadings", "--units", "b", "--nosuffix", "--separator", "|", "-o",
       "lv_name,lv_size,origin,pool_lv,data_percent", VG]


def lvs_out(*rows: tuple[str, int, str, str, str]) -> str:
    return "".join(f"  {n}|{s}|{o}|{p}|{d}\n" for n, s, o, p, d in rows)


def one_lv(name: str) -> list[str]:
    """The look at a single LV (only after a command failed, or to size a wipe)."""
    return ["lvs", "--noheadings", "--units", "b", "--nosuffix", "--separator", "|", "-o",
            "lv_name,lv_size,origin,lv_role", f"{VG}/{name}"]


def one_lv_out(name: str, size: int, origin: str = "", roles: str = "public") -> str:
    return f"  {name}|{size}|{origin}|{roles}\n"


NOT_FOUND = {"stderr": f'  Failed to find logical volume "{VG}/x"', "exit_code": 5}


def remove(name: str) -> list[str]:
    """lvremove that never takes an origin (and so its snapshots) with it."""
    return ["lvremove", "-f", "-S", f"lv_name={name}&&!(lv_role=origin)", VG]


def removed(name: str) -> str:
    return f'  Logical volume "{name}" successfully removed.\n'


@pytest.fixture
def scripted() -> ScriptedExecutor:
    return ScriptedExecutor()


@pytest.fixture
def make(conf, scripted, tmp_path):
    def build(**lvm_overrides) -> lvm.LVMDriver:
        conf.set_override("volume_group", VG, group="lvm")
        conf.set_override("device_dir", str(tmp_path / "dev"), group="lvm")
        conf.set_override("target_helper", "none", group="volume")
        for key, value in lvm_overrides.items():
            conf.set_override(key, value, group="lvm")
        driver = loader.load_driver(conf, executor=scripted)
        assert isinstance(driver, lvm.LVMDriver)
        return driver
    return build


@pytest.fixture
def block_device_ok(monkeypatch) -> None:
    """Pretend every LV path is an active block device (no device-mapper here)."""
    monkeypatch.setattr(lvm, "_require_block_device", lambda path, purpose: None)


def test_thick_create_is_one_lvcreate_with_the_uuid_name_and_gib_size(make, scripted) -> None:
    driver = make()
    scripted.expect(["lvcreate", "-n", f"volume-{VOL}", "-L", "2g", VG])
    assert driver.create_volume(VolumeRef(VOL, 2)) == {}
    scripted.assert_done()


def test_thin_create_runs_lvcreate_in_the_pool(make, scripted) -> None:
    driver = make(lvm_type="thin", thin_pool_name="pool1")
    scripted.expect(["lvcreate", "-T", "-V", "3g", "-n", f"volume-{VOL}", f"{VG}/pool1"])
    driver.create_volume(VolumeRef(VOL, 3))
    scripted.assert_done()


def test_a_redriven_create_of_an_lv_that_exists_at_that_size_succeeds(make, scripted) -> None:
    driver = make()
    scripted.expect(None, stderr=f'Logical Volume "volume-{VOL}" already exists', exit_code=5)
    scripted.expect(one_lv(f"volume-{VOL}"), stdout=one_lv_out(f"volume-{VOL}", 2 * GiB))
    driver.create_volume(VolumeRef(VOL, 2))
    scripted.assert_done()


def test_create_of_an_existing_lv_with_another_size_is_a_backend_error(make, scripted) -> None:
    driver = make()
    scripted.expect(None, stderr="already exists", exit_code=5)
    scripted.expect(one_lv(f"volume-{VOL}"), stdout=one_lv_out(f"volume-{VOL}", 1 * GiB))
    with pytest.raises(exception.BackendError, match="exists with"):
        driver.create_volume(VolumeRef(VOL, 2))
    scripted.assert_done()


def test_a_failed_lvcreate_with_no_lv_left_reports_lvms_error(make, scripted) -> None:
    driver = make()
    scripted.expect(None, stderr="Volume group has insufficient free space", exit_code=5)
    scripted.expect(one_lv(f"volume-{VOL}"), **NOT_FOUND)
    with pytest.raises(exception.ProcessExecutionError, match="insufficient free space"):
        driver.create_volume(VolumeRef(VOL, 2))
    scripted.assert_done()


def test_lvm_conf_becomes_lvm_system_dir_for_every_lvm_command(make, scripted,
                                                               tmp_path) -> None:
    driver = make(lvm_conf=str(tmp_path / "cfg" / "lvm.conf"))
    scripted.expect(None).expect(None, stdout=removed(f"volume-{VOL}"))
    driver.create_volume(VolumeRef(VOL, 1))
    driver.delete_volume(VolumeRef(VOL, 1))
    assert len(scripted.calls) == 2
    for call in scripted.calls:
        assert call.env["LVM_SYSTEM_DIR"] == str(tmp_path / "cfg")
        assert call.env["LVM_SUPPRESS_FD_WARNINGS"] == "1"


def test_lvm_conf_not_named_lvm_conf_is_a_configuration_error(make, tmp_path) -> None:
    with pytest.raises(exception.InvalidConfiguration):
        make(lvm_conf=str(tmp_path / "private.conf"))


def test_lvm_commands_run_through_the_root_helper(conf, tmp_path) -> None:
    scripted = ScriptedExecutor(root_helper=["sudo", "-n"])
    conf.set_override("volume_group", VG, group="lvm")
    conf.set_override("target_helper", "none", group="volume")
    driver = loader.load_driver(conf, executor=scripted)
    conf.set_override("volume_clear", "none", group="lvm")
    driver = loader.load_driver(conf, executor=scripted)
    scripted.expect(["sudo", "-n", *remove(f"volume-{VOL}")], stdout=removed(f"volume-{VOL}"))
    driver.delete_volume(VolumeRef(VOL, 1))
    scripted.assert_done()


def test_transient_lock_errors_in_lvcreate_are_retried(make, scripted) -> None:
    driver = make()
    create = ["lvcreate", "-n", f"volume-{VOL}", "-L", "1g", VG]
    scripted.expect(create, stderr="  Can't get lock for vg-test", exit_code=5)
    scripted.expect(create)
    driver.create_volume(VolumeRef(VOL, 1))
    scripted.assert_done()


def test_ids_that_are_not_uuids_never_reach_a_command(make, scripted) -> None:
    driver = make()
    for bad in ("../../etc/passwd", "x; rm -rf /", "--help", VOL.upper(), ""):
        with pytest.raises(exception.InvalidInput):
            driver.create_volume(VolumeRef(bad, 1))
        with pytest.raises(exception.InvalidInput):
            driver.create_snapshot(SnapshotRef(bad, VOL, 1))
    assert scripted.calls == []


def test_sizes_must_be_positive_whole_gib(make, scripted) -> None:
    driver = make()
    for size in (0, -1):
        with pytest.raises(exception.InvalidInput):
            driver.create_volume(VolumeRef(VOL, size))
    assert scripted.calls == []


def test_delete_of_a_missing_lv_succeeds(make, scripted) -> None:
    for driver in (make(), make(volume_clear="none")):
        if driver.volume_clear == "none":
            scripted.expect(remove(f"volume-{VOL}"))  # selected nothing
        scripted.expect(one_lv(f"volume-{VOL}"), **NOT_FOUND)
        driver.delete_volume(VolumeRef(VOL, 1))
    scripted.assert_done()


@pytest.mark.parametrize("overrides", [{}, {"volume_clear": "none"}, {"lvm_type": "thin"}])
def test_delete_of_an_origin_with_snapshots_is_refused_with_a_conflict(make, scripted,
                                                                       overrides) -> None:
    driver = make(**overrides)
    if driver.thin or driver.volume_clear == "none":
        # The selection leaves an origin alone (lvremove -f would remove its snapshots).
        scripted.expect(remove(f"volume-{VOL}"))
    scripted.expect(one_lv(f"volume-{VOL}"),
                    stdout=one_lv_out(f"volume-{VOL}", GiB, roles="public,origin,thickorigin"))
    with pytest.raises(exception.VolumeHasSnapshots):
        driver.delete_volume(VolumeRef(VOL, 1))
    scripted.assert_done()


def test_thick_delete_zeroes_the_whole_volume_then_removes_it(make, scripted, tmp_path,
                                                              block_device_ok) -> None:
    driver = make()
    scripted.expect(one_lv(f"volume-{VOL}"), stdout=one_lv_out(f"volume-{VOL}", 2 * GiB))
    scripted.expect(["dd", "if=/dev/zero", f"of={tmp_path}/dev/{VG}/volume-{VOL}", "bs=1M",
                     "count=2048", "oflag=direct", "conv=fdatasync,nocreat"])
    scripted.expect(["lvremove", "-f", f"{VG}/volume-{VOL}"])
    driver.delete_volume(VolumeRef(VOL, 2))
    scripted.assert_done()


def test_volume_clear_size_limits_the_wipe_to_the_first_mib(make, scripted,
                                                             block_device_ok) -> None:
    driver = make(volume_clear_size=5)
    scripted.expect(one_lv(f"volume-{VOL}"), stdout=one_lv_out(f"volume-{VOL}", 2 * GiB))
    scripted.expect(None).expect(["lvremove", "-f", f"{VG}/volume-{VOL}"])
    driver.delete_volume(VolumeRef(VOL, 2))
    assert "count=5" in scripted.argvs[1]


def test_volume_clear_none_and_thin_volumes_are_removed_by_one_command(make, scripted) -> None:
    for driver in (make(volume_clear="none"), make(lvm_type="thin")):
        scripted.expect(remove(f"volume-{VOL}"), stdout=removed(f"volume-{VOL}"))
        driver.delete_volume(VolumeRef(VOL, 1))
    scripted.assert_done()


def test_wipe_refuses_a_path_that_is_not_a_block_device(make, scripted, tmp_path) -> None:
    driver = make()
    os.makedirs(tmp_path / "dev" / VG)
    (tmp_path / "dev" / VG / f"volume-{VOL}").write_text("not a device")
    scripted.expect(one_lv(f"volume-{VOL}"), stdout=one_lv_out(f"volume-{VOL}", GiB))
    with pytest.raises(exception.BackendError, match="not an active block device"):
        driver.delete_volume(VolumeRef(VOL, 1))
    scripted.assert_done()


def test_lvremove_failing_on_a_vanished_lv_still_counts_as_deleted(make, scripted) -> None:
    driver = make(volume_clear="none")
    scripted.expect(remove(f"volume-{VOL}"), stderr="Volume group vanished", exit_code=5)
    scripted.expect(one_lv(f"volume-{VOL}"), **NOT_FOUND)
    driver.delete_volume(VolumeRef(VOL, 1))
    scripted.assert_done()


def test_lvremove_failing_with_the_lv_still_there_is_an_error(make, scripted) -> None:
    driver = make(volume_clear="none")
    scripted.expect(remove(f"volume-{VOL}"), stderr="Logical volume in use", exit_code=5)
    scripted.expect(one_lv(f"volume-{VOL}"), stdout=one_lv_out(f"volume-{VOL}", GiB))
    with pytest.raises(exception.ProcessExecutionError, match="in use"):
        driver.delete_volume(VolumeRef(VOL, 1))
    scripted.assert_done()


def test_extend_runs_lvextend_and_is_a_noop_at_the_size_already(make, scripted) -> None:
    driver = make()
    scripted.expect(one_lv(f"volume-{VOL}"), stdout=one_lv_out(f"volume-{VOL}", GiB))
    scripted.expect(["lvextend", "-L", "4g", f"{VG}/volume-{VOL}"])
    driver.extend_volume(VolumeRef(VOL, 1), 4)
    scripted.expect(one_lv(f"volume-{VOL}"), stdout=one_lv_out(f"volume-{VOL}", 4 * GiB))
    driver.extend_volume(VolumeRef(VOL, 1), 4)
    scripted.assert_done()


def test_thick_snapshot_is_a_cow_snapshot_of_the_snapshot_size(make, scripted) -> None:
    driver = make()
    scripted.expect(LVS, stdout=lvs_out((f"volume-{VOL}", 2 * GiB, "", "", "")))
    scripted.expect(["lvcreate", "-s", "-n", f"snapshot-{SNAP}", "-L", "2g",
                     f"{VG}/volume-{VOL}"])
    driver.create_snapshot(SnapshotRef(SNAP, VOL, 2))
    scripted.assert_done()


def test_thin_snapshot_has_no_size_and_does_not_skip_activation(make, scripted) -> None:
    driver = make(lvm_type="thin")
    scripted.expect(LVS, stdout=lvs_out((f"volume-{VOL}", 2 * GiB, "", "volmgr-pool", "")))
    scripted.expect(["lvcreate", "-s", "-kn", "-n", f"snapshot-{SNAP}", f"{VG}/volume-{VOL}"])
    driver.create_snapshot(SnapshotRef(SNAP, VOL, 2))
    scripted.assert_done()


def test_snapshot_that_exists_is_not_created_again_and_a_missing_origin_fails(
        make, scripted) -> None:
    driver = make()
    scripted.expect(LVS, stdout=lvs_out((f"snapshot-{SNAP}", GiB, f"volume-{VOL}", "", "")))
    driver.create_snapshot(SnapshotRef(SNAP, VOL, 1))
    scripted.expect(LVS, stdout="")
    with pytest.raises(exception.BackendError, match="missing"):
        driver.create_snapshot(SnapshotRef(SNAP, VOL, 1))
    scripted.assert_done()


def test_delete_snapshot_removes_it_and_succeeds_when_gone(make, scripted) -> None:
    driver = make(volume_clear="none")
    scripted.expect(one_lv(f"snapshot-{SNAP}"),
                    stdout=one_lv_out(f"snapshot-{SNAP}", GiB, f"volume-{VOL}", "snapshot"))
    scripted.expect(["lvremove", "-f", f"{VG}/snapshot-{SNAP}"])
    driver.delete_snapshot(SnapshotRef(SNAP, VOL, 1))
    scripted.expect(one_lv(f"snapshot-{SNAP}"), **NOT_FOUND)
    driver.delete_snapshot(SnapshotRef(SNAP, VOL, 1))
    scripted.assert_done()


def test_thick_snapshot_delete_zeroes_its_exception_store_first(make, scripted, tmp_path,
                                                                block_device_ok) -> None:
    driver = make()
    escaped_vg, escaped_snap = VG.replace("-", "--"), f"snapshot-{SNAP}".replace("-", "--")
    scripted.expect(one_lv(f"snapshot-{SNAP}"),
                    stdout=one_lv_out(f"snapshot-{SNAP}", GiB, f"volume-{VOL}", "snapshot"))
    scripted.expect(["dd", "if=/dev/zero",
                     f"of={tmp_path}/dev/mapper/{escaped_vg}-{escaped_snap}-cow", "bs=1M",
                     "count=1024", "oflag=direct", "conv=fdatasync,nocreat"])
    scripted.expect(["lvremove", "-f", f"{VG}/snapshot-{SNAP}"])
    driver.delete_snapshot(SnapshotRef(SNAP, VOL, 1))
    scripted.assert_done()


def test_thin_snapshot_delete_needs_no_wipe(make, scripted) -> None:
    driver = make(lvm_type="thin")
    scripted.expect(one_lv(f"snapshot-{SNAP}"),
                    stdout=one_lv_out(f"snapshot-{SNAP}", GiB, f"volume-{VOL}", "snapshot"))
    scripted.expect(["lvremove", "-f", f"{VG}/snapshot-{SNAP}"])
    driver.delete_snapshot(SnapshotRef(SNAP, VOL, 1))
    scripted.assert_done()


def test_thick_volume_from_snapshot_is_a_new_lv_with_the_snapshot_copied_in(
        make, scripted, tmp_path, block_device_ok) -> None:
    driver = make()
    snap_row = (f"snapshot-{SNAP}", GiB, f"volume-{VOL}", "", "0.00")
    scripted.expect(LVS, stdout=lvs_out(snap_row))
    scripted.expect(["lvcreate", "-n", f"volume-{VOL2}", "-L", "3g", VG])
    scripted.expect(["dd", f"if={tmp_path}/dev/{VG}/snapshot-{SNAP}",
                     f"of={tmp_path}/dev/{VG}/volume-{VOL2}", "bs=1M", "count=1024",
                     "iflag=direct", "oflag=direct", "conv=fdatasync,nocreat"])
    driver.create_volume_from_snapshot(VolumeRef(VOL2, 3), SnapshotRef(SNAP, VOL, 1))
    scripted.assert_done()


def test_thin_volume_from_snapshot_is_a_thin_snapshot_grown_to_size(make, scripted) -> None:
    driver = make(lvm_type="thin")
    snap_row = (f"snapshot-{SNAP}", GiB, f"volume-{VOL}", "volmgr-pool", "")
    scripted.expect(LVS, stdout=lvs_out(snap_row))
    scripted.expect(["lvcreate", "-s", "-kn", "-n", f"volume-{VOL2}", f"{VG}/snapshot-{SNAP}"])
    scripted.expect(one_lv(f"volume-{VOL2}"),
                    stdout=one_lv_out(f"volume-{VOL2}", GiB, f"snapshot-{SNAP}"))
    scripted.expect(["lvextend", "-L", "2g", f"{VG}/volume-{VOL2}"])
    driver.create_volume_from_snapshot(VolumeRef(VOL2, 2), SnapshotRef(SNAP, VOL, 1))
    scripted.assert_done()


def test_volume_from_snapshot_smaller_than_the_snapshot_is_refused(make, scripted) -> None:
    with pytest.raises(exception.InvalidInput):
        make().create_volume_from_snapshot(VolumeRef(VOL2, 1), SnapshotRef(SNAP, VOL, 2))
    assert scripted.calls == []


def test_thick_capacity_is_vgs_size_and_free_in_gib(make, scripted) -> None:
    driver = make()
    scripted.expect(LVS, stdout=lvs_out((f"volume-{VOL}", 2 * GiB, "", "", ""),
                                        ("someone-elses", 5 * GiB, "", "", "")))
    scripted.expect(["vgs", "--noheadings", "--units", "b", "--nosuffix", "--separator", "|",
                     "-o", "vg_size,vg_free", VG], stdout=f"  {10 * GiB}|{3 * GiB}\n")
    capacity = driver.get_capacity()
    assert (capacity.total_gb, capacity.free_gb, capacity.provisioned_gb) == (10.0, 3.0, 2.0)
    assert capacity.thin is False
    assert capacity.extra["free_capacity_bytes"] == 3 * GiB


def test_thin_capacity_comes_from_the_pool_size_and_data_percent(make, scripted) -> None:
    driver = make(lvm_type="thin")
    scripted.expect(LVS, stdout=lvs_out(("volmgr-pool", 8 * GiB, "", "", "25.00"),
                                        (f"volume-{VOL}", 20 * GiB, "", "volmgr-pool", "1.00")))
    capacity = driver.get_capacity()
    assert (capacity.total_gb, capacity.free_gb, capacity.provisioned_gb) == (8.0, 6.0, 20.0)
    assert capacity.thin is True
    assert capacity.extra["thin_pool_data_percent"] == 25.0


def test_check_setup_fails_clearly_without_the_volume_group(make, scripted) -> None:
    driver = make()
    scripted.expect(["vgs", "--noheadings", "-o", "vg_name", VG],
                    stderr='  Volume group "vg-test" not found', exit_code=5)
    with pytest.raises(exception.BackendError, match="not found"):
        driver.check_setup()


def test_check_setup_creates_a_missing_thin_pool(make, scripted) -> None:
    driver = make(lvm_type="thin")
    scripted.expect(["vgs", "--noheadings", "-o", "vg_name", VG], stdout=f"  {VG}\n")
    scripted.expect(LVS, stdout="")
    scripted.expect(["lvcreate", "--type", "thin-pool", "-l", "95%FREE", "-n", "volmgr-pool",
                     VG])
    driver.check_setup()
    scripted.assert_done()


def test_list_volume_ids_reports_only_volume_lvs_named_by_uuid(make, scripted) -> None:
    driver = make()
    scripted.expect(LVS, stdout=lvs_out((f"volume-{VOL}", GiB, "", "", ""),
                                        (f"snapshot-{SNAP}", GiB, f"volume-{VOL}", "", ""),
                                        ("volume-notauuid", GiB, "", "", ""),
                                        ("root", GiB, "", "", "")))
    assert driver.list_volume_ids() == {VOL}


def test_local_path_is_under_device_dir_by_vg_and_lv_name(make, tmp_path) -> None:
    assert make().local_path(VolumeRef(VOL, 1)) == f"{tmp_path}/dev/{VG}/volume-{VOL}"


def test_a_volume_group_name_with_shell_syntax_is_a_configuration_error(make) -> None:
    with pytest.raises(exception.InvalidConfiguration):
        make(volume_group="vg;reboot")
