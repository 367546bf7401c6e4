"""Adopting existing storage through the API, on real processes: ``volmgr-api`` and
``volmgr-volume`` over RabbitMQ and PostgreSQL, the file driver exporting through a
private tgtd, and python-cinderclient's own manage calls. A hand-made image is listed as
manageable, adopted (sized up to whole GiB), attached and read over iSCSI at that size,
unmanaged (the image stays), and adopted again; the same for a snapshot.

(Real LVM is covered at the driver level by test_manageable_lvm.py: the kernel here has
no device-mapper, so only its metadata works.)"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from tests.functional.storage_env import tgtd  # noqa: F401
from tests.functional.test_attach_flow import INI1, AttachWalk, connector, walk  # noqa: F401

GiB = 1024 ** 3


def volumes_dir(walk: AttachWalk) -> Path:  # noqa: F811
    return Path(walk.tmp) / "state" / "volumes"


def read_over_iscsi(walk: AttachWalk, volume_id: str) -> int | None:  # noqa: F811
    """Attach with a connector (v3 attachments at 3.54), read the LUN's capacity as that
    initiator, detach; the size read."""
    cinder = walk.client()
    attachment = cinder.attachments.create(volume_id, connector(INI1, "compute-1"),
                                           instance_id=str(uuid.uuid4()))
    size = walk.sees(attachment["connection_info"], INI1)
    cinder.attachments.complete(attachment["id"])
    assert walk.status(volume_id) == "in-use"
    cinder.attachments.delete(attachment["id"])
    walk.wait("volume", volume_id, "available")
    return size


def test_a_hand_made_image_is_listed_adopted_read_over_iscsi_unmanaged_and_adopted_again(
        walk: AttachWalk) -> None:  # noqa: F811
    admin = walk.client(admin=True)
    host = f"{walk.host}@file#file"
    directory = volumes_dir(walk)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "legacy-data", "wb") as image:
        image.truncate(GiB + 100 * 1024 ** 2)
        image.seek(0)
        image.write(b"legacy bytes")

    listed = admin.volumes.list_manageable(host, detailed=True)
    [entry] = [e for e in listed if e.reference == {"source-name": "legacy-data"}]
    assert (entry.size, entry.safe_to_manage, entry.reason_not_safe) == (2, True, None)

    adopted = admin.volumes.manage(host, {"source-name": "legacy-data"}, name="legacy")
    assert adopted.status == "creating"
    walk.wait("volume", adopted.id, "available")
    shown = walk.v3("volume", adopted.id)
    assert shown is not None and (shown["size"], shown["name"]) == (2, "legacy")
    assert not (directory / "legacy-data").exists()
    image_path = directory / f"volume-{adopted.id}"
    assert image_path.stat().st_size == 2 * GiB
    assert read_over_iscsi(walk, adopted.id) == 2 * GiB, "the initiator reads whole GiB"

    admin.volumes.unmanage(adopted.id)
    walk.wait("volume", adopted.id, None)
    assert image_path.exists(), "unmanage leaves the storage"
    assert walk.iqns() == set(), "and no export behind"
    assert image_path.read_bytes()[:12] == b"legacy bytes"

    again = admin.volumes.manage(host, {"source-name": f"volume-{adopted.id}"})
    walk.wait("volume", again.id, "available")
    assert read_over_iscsi(walk, again.id) == 2 * GiB
    assert (directory / f"volume-{again.id}").read_bytes()[:12] == b"legacy bytes"


def test_a_snapshot_is_unmanaged_and_managed_again_with_cinderclient(
        walk: AttachWalk) -> None:  # noqa: F811
    admin = walk.client(admin=True)
    volume_id = walk.new_volume()
    snapshot = admin.volume_snapshots.create(volume_id)
    walk.wait("snapshot", snapshot.id, "available")

    admin.volume_snapshots.unmanage(snapshot.id)
    walk.wait("snapshot", snapshot.id, None)
    listed = admin.volume_snapshots.list_manageable(f"{walk.host}@file#file",
                                                    detailed=False)
    assert [(e.reference, e.source_reference, e.safe_to_manage) for e in listed] == [
        ({"source-name": f"snapshot-{snapshot.id}"}, {"source-name": f"volume-{volume_id}"},
         True)]

    managed = admin.volume_snapshots.manage(volume_id,
                                            {"source-name": f"snapshot-{snapshot.id}"},
                                            name="kept")
    walk.wait("snapshot", managed.id, "available")
    shown: Any = walk.v3("snapshot", managed.id)
    assert (shown["name"], shown["size"], shown["volume_id"]) == ("kept", 1, volume_id)
    snapshot_dir = volumes_dir(walk) / "snapshots" / f"volume-{volume_id}"
    assert os.listdir(snapshot_dir) == [f"snapshot-{managed.id}"]
