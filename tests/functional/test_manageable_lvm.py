"""Adopting an LV made by hand, on real LVM (a loop-device VG) and a real tgtd: it is
listed as manageable, adopted (renamed to volmgr's scheme and grown to the whole GiB the
row will say), exported and read over iSCSI at that size, unmanaged (the LV stays, and is
listed as manageable again), and adopted again under another id."""

from __future__ import annotations

import uuid

from tests.functional.storage_env import (  # noqa: F401
    RecordingExecutor,
    connection_chap,
    loop_vg,
    read_capacity,
    tgtd,
)
from tests.functional.test_attach_flow import INI1, GiB, connector
from volmgr.volume import manageable
from volmgr.volume.driver import VolumeRef
from volmgr.volume.drivers import loader
from volmgr.volume.drivers.lvm import LVMDriver


def test_a_hand_made_lv_is_listed_adopted_read_over_iscsi_unmanaged_and_adopted_again(
        conf, tgtd, loop_vg) -> None:  # noqa: F811
    loop_vg.configure(conf)
    tgtd.configure(conf)
    driver = loader.load_driver(conf, executor=RecordingExecutor())
    assert isinstance(driver, LVMDriver)
    driver.check_setup()
    loop_vg.lvm("lvcreate", "-L", "1100m", "-n", "legacy-data", loop_vg.name)

    listed = [e.as_dict() for e in manageable.list_manageable_volumes(driver, set())]
    assert listed == [{"reference": {"source-name": "legacy-data"}, "size": 2,
                       "safe_to_manage": True, "reason_not_safe": None, "cinder_id": None,
                       "extra_info": None}]

    first = str(uuid.uuid4())
    reference = {"source-name": "legacy-data"}
    assert manageable.manage_existing_get_size(driver, reference) == 2
    assert manageable.manage_existing(driver, first, reference, owned_ids=set()) == 2
    assert loop_vg.lvs() == {f"volume-{first}": 2 * GiB}
    # Now a row owns it: listed, but not safe to manage twice.
    [entry] = manageable.list_manageable_volumes(driver, {first})
    assert (entry.safe_to_manage, entry.reason_not_safe, entry.cinder_id) == (
        False, "Already managed", first)

    # Exported like any volume: the initiator reads the adopted size.
    loop_vg.activate(f"volume-{first}")
    volume = VolumeRef(first, 2)
    update = driver.create_export(volume)
    volume = VolumeRef(first, 2, update["provider_location"], update["provider_auth"])
    data = driver.initialize_connection(volume, connector(INI1, "compute-1"))
    assert read_capacity(tgtd.portal, data["data"]["target_iqn"], data["data"]["target_lun"],
                         *connection_chap(data), initiator=INI1) == 2 * GiB
    driver.remove_export(volume)
    loop_vg.deactivate(f"volume-{first}")

    # Unmanaged: the row is forgotten, the LV stays and is manageable again.
    [entry] = manageable.list_manageable_volumes(driver, set())
    assert (entry.name, entry.safe_to_manage, entry.size_gb) == (f"volume-{first}", True, 2)
    assert loop_vg.lvs() == {f"volume-{first}": 2 * GiB}

    second = str(uuid.uuid4())
    assert manageable.manage_existing(driver, second, {"source-name": f"volume-{first}"},
                                      owned_ids=set()) == 2
    assert loop_vg.lvs() == {f"volume-{second}": 2 * GiB}
    loop_vg.lvm("lvremove", "-f", f"{loop_vg.name}/volume-{second}")


def test_volmgr_manage_lists_adopts_unmanages_and_adopts_again(tmp_path,
                                                               loop_vg) -> None:  # noqa: F811
    import json
    import os
    import subprocess
    import sys

    manage_bin = os.path.join(os.path.dirname(sys.executable), "volmgr-manage")
    conf_file = tmp_path / "volmgr.conf"
    conf_file.write_text(
        f"[DEFAULT]\nhost = adopt-{uuid.uuid4().hex[:8]}\nstate_path = {tmp_path}/state\n"
        f"[database]\nconnection = sqlite:///{tmp_path}/volmgr.db\n"
        f"[volume]\ndriver = lvm\ntarget_helper = none\n"
        f"[lvm]\nvolume_group = {loop_vg.name}\nlvm_conf = {loop_vg.lvm_conf}\n"
        f"device_dir = {loop_vg.device_dir}\n")

    def manage(*args: str, expect: int = 0) -> str:
        done = subprocess.run([manage_bin, "--config-file", str(conf_file), *args],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == expect, done.stdout + done.stderr
        return done.stdout + done.stderr

    manage("db", "sync")
    loop_vg.lvm("lvcreate", "-L", "1100m", "-n", "legacy-data", loop_vg.name)
    listed = json.loads(manage("volume", "manageable", "--format", "json"))
    assert listed == [{"name": "legacy-data", "size": 2, "safe_to_manage": True,
                       "reason_not_safe": None, "cinder_id": None}]

    adopted = json.loads(manage("volume", "manage", "legacy-data", "--project", "p1",
                                "--format", "json"))
    assert (adopted["status"], adopted["size"], adopted["project_id"],
            adopted["display_name"]) == ("available", 2, "p1", "legacy-data")
    assert loop_vg.lvs() == {f"volume-{adopted['id']}": 2 * GiB}
    listed = json.loads(manage("volume", "manageable", "--format", "json"))
    assert listed[0]["safe_to_manage"] is False and listed[0]["cinder_id"] == adopted["id"]
    assert "Already managed" in manage("volume", "manage", f"volume-{adopted['id']}",
                                       "--project", "p1", expect=1)

    assert "left in place" in manage("volume", "unmanage", adopted["id"])
    assert loop_vg.lvs() == {f"volume-{adopted['id']}": 2 * GiB}, "the LV is untouched"
    assert adopted["id"] not in manage("volume", "list")
    listed = json.loads(manage("volume", "manageable", "--format", "json"))
    assert listed == [{"name": f"volume-{adopted['id']}", "size": 2, "safe_to_manage": True,
                       "reason_not_safe": None, "cinder_id": None}]

    again = json.loads(manage("volume", "manage", f"volume-{adopted['id']}", "--project",
                              "p2", "--name", "restored", "--format", "json"))
    assert (again["status"], again["size"], again["display_name"]) == (
        "available", 2, "restored")
    assert loop_vg.lvs() == {f"volume-{again['id']}": 2 * GiB}
    loop_vg.lvm("lvremove", "-f", f"{loop_vg.name}/volume-{again['id']}")
