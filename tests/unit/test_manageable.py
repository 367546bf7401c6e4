"""Adopting existing LVs (the storage half of manageable volumes), with LVM's exact
commands scripted: what is listed and why, the size rounded up to whole GiB, the rename
to volmgr's scheme, and the refusals."""

from __future__ import annotations

import pytest

from tests.unit.scripted import ScriptedExecutor
from tests.unit.test_lvm_driver import (
    LVS,
    NOT_FOUND,
    VG,
    VOL,
    VOL2,
    GiB,
    lvs_out,
    one_lv,
    one_lv_out,
)
from volmgr import exception
from volmgr.volume import manageable
from volmgr.volume.drivers import loader, lvm

SNAP = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"


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


def test_listing_marks_what_is_safe_to_manage_and_rounds_sizes_up(make, scripted) -> None:
    driver = make()
    scripted.expect(LVS, stdout=lvs_out(
        ("legacy-data", GiB + 1, "", "", ""),              # a hand-made LV: 1 GiB + 1 byte
        (f"volume-{VOL}", 2 * GiB, "", "", ""),            # owned by a live row
        (f"volume-{VOL2}", 3 * GiB, "", "", ""),           # an unmanaged volmgr volume
        (f"snapshot-{SNAP}", GiB, f"volume-{VOL}", "", "")))
    listed = {entry.name: entry for entry in
              manageable.list_manageable_volumes(driver, owned_ids={VOL})}
    assert listed["legacy-data"].as_dict() == {
        "reference": {"source-name": "legacy-data"}, "size": 2, "safe_to_manage": True,
        "reason_not_safe": None, "cinder_id": None, "extra_info": None}
    assert (listed[f"volume-{VOL}"].safe_to_manage, listed[f"volume-{VOL}"].reason_not_safe,
            listed[f"volume-{VOL}"].cinder_id) == (False, "Already managed", VOL)
    assert listed[f"volume-{VOL2}"].safe_to_manage
    assert listed[f"volume-{VOL2}"].size_gb == 3
    assert f"snapshot-{SNAP}" not in listed  # snapshots are manageable_snapshots'
    scripted.assert_done()


def test_snapshot_lvs_are_listed_as_manageable_snapshots_with_their_origin(
        make, scripted) -> None:
    driver = make()
    other = "1f2e3d4c-5b6a-4789-8abc-def012345678"
    scripted.expect(LVS, stdout=lvs_out(
        ("legacy-data", GiB, "", "", ""),
        (f"snapshot-{SNAP}", GiB, f"volume-{VOL}", "", ""),
        (f"snapshot-{other}", 2 * GiB + 1, f"volume-{VOL}", "", ""),
        ("hand-snap", GiB, "legacy-data", "", "")))
    listed = {entry.name: entry.as_dict()
              for entry in manageable.list_manageable_snapshots(driver, owned_ids={SNAP})}
    assert listed == {
        f"snapshot-{SNAP}": {
            "reference": {"source-name": f"snapshot-{SNAP}"}, "size": 1,
            "safe_to_manage": False, "source_reference": {"source-name": f"volume-{VOL}"},
            "reason_not_safe": "Already managed", "cinder_id": SNAP, "extra_info": None},
        f"snapshot-{other}": {
            "reference": {"source-name": f"snapshot-{other}"}, "size": 3,
            "safe_to_manage": True, "source_reference": {"source-name": f"volume-{VOL}"},
            "reason_not_safe": None, "cinder_id": None, "extra_info": None},
        "hand-snap": {
            "reference": {"source-name": "hand-snap"}, "size": 1, "safe_to_manage": False,
            "source_reference": {"source-name": "legacy-data"},
            "reason_not_safe": "Origin not managed", "cinder_id": None, "extra_info": None},
    }


def test_managing_a_snapshot_renames_it_to_the_snapshot_scheme(make, scripted) -> None:
    driver = make()
    new = "1f2e3d4c-5b6a-4789-8abc-def012345678"
    scripted.expect(one_lv(f"snapshot-{new}"), **NOT_FOUND)
    scripted.expect(one_lv(f"snapshot-{SNAP}"),
                    stdout=one_lv_out(f"snapshot-{SNAP}", GiB, origin=f"volume-{VOL}"))
    scripted.expect(["lvrename", VG, f"snapshot-{SNAP}", f"snapshot-{new}"])
    assert manageable.manage_existing_snapshot(
        driver, new, VOL, {"source-name": f"snapshot-{SNAP}"}, owned_ids=set()) == 1
    scripted.assert_done()


def test_a_snapshot_of_another_volume_is_refused(make, scripted) -> None:
    driver = make()
    scripted.expect(one_lv(f"snapshot-{SNAP}"),
                    stdout=one_lv_out(f"snapshot-{SNAP}", GiB, origin=f"volume-{VOL2}"))
    with pytest.raises(exception.InvalidInput, match="is not a snapshot of volume"):
        manageable.manage_existing_snapshot_get_size(driver, VOL,
                                                     {"source-name": f"snapshot-{SNAP}"})


def test_the_thin_pool_is_never_listed(make, scripted) -> None:
    driver = make(lvm_type="thin")
    scripted.expect(LVS, stdout=lvs_out(("volmgr-pool", 10 * GiB, "", "", "5.00"),
                                        ("legacy", GiB, "", "volmgr-pool", "1.00")))
    assert [e.name for e in manageable.list_manageable_volumes(driver, set())] == ["legacy"]


def test_manage_renames_to_the_volume_scheme_and_grows_to_the_whole_gib(
        make, scripted) -> None:
    driver = make()
    scripted.expect(one_lv(f"volume-{VOL}"), **NOT_FOUND)
    scripted.expect(one_lv("legacy-data"), stdout=one_lv_out("legacy-data", GiB + 1))
    scripted.expect(LVS, stdout=lvs_out(("legacy-data", GiB + 1, "", "", "")))
    # Grown first, renamed last: a failure leaves the LV under its own name.
    scripted.expect(["lvextend", "-L", "2g", f"{VG}/legacy-data"])
    scripted.expect(["lvrename", VG, "legacy-data", f"volume-{VOL}"])
    assert manageable.manage_existing(driver, VOL, {"source-name": "legacy-data"},
                                      owned_ids=set()) == 2
    scripted.assert_done()


def test_manage_again_after_the_rename_only_sizes(make, scripted) -> None:
    driver = make()
    scripted.expect(one_lv(f"volume-{VOL}"), stdout=one_lv_out(f"volume-{VOL}", 2 * GiB))
    assert manageable.manage_existing(driver, VOL, {"source-name": "legacy-data"},
                                      owned_ids={VOL}) == 2
    scripted.assert_done()


def test_readopting_an_unmanaged_volume_keeps_its_name_when_the_id_is_its_own(
        make, scripted) -> None:
    driver = make()
    scripted.expect(one_lv(f"volume-{VOL2}"), stdout=one_lv_out(f"volume-{VOL2}", 3 * GiB))
    scripted.expect(LVS, stdout=lvs_out((f"volume-{VOL2}", 3 * GiB, "", "", "")))
    assert manageable.manage_existing(driver, VOL2, {"source-name": f"volume-{VOL2}"},
                                      owned_ids=set()) == 3
    assert not any(argv[0] == "lvrename" for argv in scripted.argvs)


@pytest.mark.parametrize(("reference", "owned"), [
    ({"source-name": f"volume-{VOL2}"}, {VOL2}),            # owned by a live row
    ({"source-name": f"snapshot-{SNAP}"}, set()),           # a snapshot
])
def test_manage_refuses_what_is_not_safe(make, scripted, reference, owned) -> None:
    driver = make()
    name = reference["source-name"]
    scripted.expect(one_lv(f"volume-{VOL}"), **NOT_FOUND)
    scripted.expect(one_lv(name), stdout=one_lv_out(name, GiB))
    scripted.expect(LVS, stdout=lvs_out((name, GiB, f"volume-{VOL2}" if "snap" in name
                                         else "", "", "")))
    with pytest.raises(exception.InvalidInput, match="cannot be managed"):
        manageable.manage_existing(driver, VOL, reference, owned_ids=owned)
    assert not any(argv[0] in ("lvrename", "lvextend") for argv in scripted.argvs)


@pytest.mark.parametrize("reference", [{}, {"source-name": "-rf"}, {"source-name": "a b"},
                                       {"source-name": "x;reboot"}, {"source-id": "1"}])
def test_a_reference_that_is_not_an_lv_name_never_reaches_a_command(
        make, scripted, reference) -> None:
    driver = make()
    with pytest.raises(exception.InvalidInput, match="reference must name an LV"):
        manageable.manage_existing(driver, VOL, reference, owned_ids=set())
    with pytest.raises(exception.InvalidInput):
        manageable.manage_existing_get_size(driver, reference)
    assert scripted.argvs == []


def test_size_of_a_missing_lv_is_refused(make, scripted) -> None:
    driver = make()
    scripted.expect(one_lv("gone"), **NOT_FOUND)
    with pytest.raises(exception.InvalidInput, match="no LV named gone"):
        manageable.manage_existing_get_size(driver, {"source-name": "gone"})


def test_lvm_lists_its_snapshots_with_their_parent_volumes(make, scripted) -> None:
    driver = make()
    scripted.expect(LVS, stdout=lvs_out(
        (f"volume-{VOL}", GiB, "", "", ""),
        (f"snapshot-{SNAP}", GiB, f"volume-{VOL}", "", ""),
        ("legacy-snap", GiB, f"volume-{VOL}", "", ""),        # not volmgr's name
        (f"snapshot-{VOL2}", GiB, "legacy-data", "", "")))   # of an LV that is not ours
    assert driver.list_snapshots() == {SNAP: VOL}
