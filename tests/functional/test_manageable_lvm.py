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
from volmgr.volume import drivers, manageable
from volmgr.volume.driver import VolumeRef
from volmgr.volume.drivers.lvm import LVMDriver


def test_a_hand_made_lv_is_listed_adopted_read_over_iscsi_unmanaged_and_adopted_again(
        conf, tgtd, loop_vg) -> None:  # noqa: F811
    loop_vg.configure(conf)
    tgtd.configure(conf)
    driver = drivers.load_driver(conf, executor=RecordingExecutor())
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
