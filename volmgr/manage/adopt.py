"""``volmgr-manage volume|snapshot manageable|manage|unmanage``: bring storage that
exists on this host's backend (LVs of the VG, or image files of the file driver) under
management, and forget volumes and snapshots without touching their storage.

Runs on the storage host (it reads the backend, like ``reconcile``), without the API.
``manage`` sizes the object (whole GiB, rounded up), inserts the row as ``creating`` with
the project's quota reserved, adopts it through the driver (checked again, grown to that
size, renamed ``volume-<uuid>``/``snapshot-<uuid>``) and makes the row ``available``; if
the adoption fails the row is deleted again and its quota released, and the object keeps
its name. ``unmanage`` takes an ``available`` row out of the database (quota released)
and leaves the storage as it is, so ``manageable`` lists it again. The API does the same
through the manager (docs/operations.md, "Adopting existing storage").
"""

from __future__ import annotations

from oslo_config import cfg

from volmgr import exception, states
from volmgr.db import Database
from volmgr.manage.output import output, output_record
from volmgr.manage.reconcile import load_driver
from volmgr.manage.volumes import find_volume, volume_record
from volmgr.volume import manageable
from volmgr.volume.driver import SnapshotRef, VolumeDriver, VolumeRef

USER = "volmgr-manage"
COLUMNS = ("name", "size", "safe_to_manage", "reason_not_safe", "cinder_id")
SNAPSHOT_COLUMNS = ("name", "size", "volume", "safe_to_manage", "reason_not_safe",
                    "cinder_id")


def _driver(conf: cfg.ConfigOpts) -> VolumeDriver:
    """This host's driver (any driver that can adopt; others refuse with InvalidInput)."""
    return load_driver(conf)


def _owned(db: Database, driver: VolumeDriver) -> set[str]:
    """Ids of live rows (any host) among the backend's volmgr-named volumes."""
    return set(db.volumes_by_ids(driver.list_volume_ids()))


def _owned_snapshots(db: Database, driver: VolumeDriver) -> set[str]:
    return set(db.snapshots_by_ids(driver.list_snapshots() or {}))


def volume_manageable(conf: cfg.ConfigOpts) -> int:
    db = Database.from_conf(conf)
    try:
        driver = _driver(conf)
        found = driver.list_manageable_volumes(_owned(db, driver))
    finally:
        db.dispose()
    output(conf, [{"name": e.name, "size": e.size_gb, "safe_to_manage": e.safe_to_manage,
                   "reason_not_safe": e.reason_not_safe, "cinder_id": e.cinder_id}
                  for e in found], COLUMNS)
    return 0


def volume_manage(conf: cfg.ConfigOpts) -> int:
    command = conf.command
    reference = {manageable.SOURCE_NAME: command.source_name}
    db = Database.from_conf(conf)
    try:
        driver = _driver(conf)
        size = driver.manage_existing_get_size(reference)
        volume = db.volume_create(
            project_id=command.project, user_id=USER, size=size, host=conf.host,
            display_name=command.display_name or command.source_name,
            status=states.CREATING)
        try:
            driver.manage_existing(VolumeRef(volume.id, size), reference,
                                   _owned(db, driver))
        except Exception:
            # Nothing was adopted: the row goes, with its quota; the LV keeps its name.
            db.volume_destroy(volume.id, expected=(states.CREATING,))
            raise
        db.volume_transition(volume.id, (states.CREATING,),
                             {"status": states.AVAILABLE, "status_reason": None})
        output_record(conf, volume_record(db.volume_get(volume.id)))
    finally:
        db.dispose()
    return 0


def volume_unmanage(conf: cfg.ConfigOpts) -> int:
    db = Database.from_conf(conf)
    try:
        volume = find_volume(db, conf.command.volume_id)
        if volume.status != states.AVAILABLE or volume.attachments:
            raise exception.InvalidInput(
                reason=f"volume {volume.id} is {volume.status}; only an available volume "
                "can be unmanaged")
        if not db.volume_destroy(volume.id, expected=(states.AVAILABLE,)):
            raise exception.InvalidInput(
                reason=f"volume {volume.id} changed meanwhile; try again")
    finally:
        db.dispose()
    print(f"Volume {volume.id} is no longer managed; its LV volume-{volume.id} is left "
          "in place.")
    return 0


def snapshot_manageable(conf: cfg.ConfigOpts) -> int:
    db = Database.from_conf(conf)
    try:
        driver = _driver(conf)
        found = driver.list_manageable_snapshots(_owned_snapshots(db, driver))
    finally:
        db.dispose()
    output(conf, [{"name": e.name, "size": e.size_gb, "volume": e.source_name,
                   "safe_to_manage": e.safe_to_manage, "reason_not_safe": e.reason_not_safe,
                   "cinder_id": e.cinder_id} for e in found], SNAPSHOT_COLUMNS)
    return 0


def snapshot_manage(conf: cfg.ConfigOpts) -> int:
    command = conf.command
    reference = {manageable.SOURCE_NAME: command.source_name}
    db = Database.from_conf(conf)
    try:
        driver = _driver(conf)
        volume = find_volume(db, command.volume_id)
        size = driver.manage_existing_snapshot_get_size(volume.id, reference)
        snapshot = db.snapshot_create(
            volume.id, project_id=volume.project_id, user_id=USER,
            display_name=command.display_name or command.source_name, size=size)
        try:
            driver.manage_existing_snapshot(SnapshotRef(snapshot.id, volume.id, size),
                                            reference, _owned_snapshots(db, driver))
        except Exception:
            db.snapshot_destroy(snapshot.id, expected=(states.SNAP_CREATING,))
            raise
        db.snapshot_transition(snapshot.id, (states.SNAP_CREATING,),
                               {"status": states.SNAP_AVAILABLE, "progress": "100%"})
        output_record(conf, {"id": snapshot.id, "volume_id": volume.id, "size": size,
                             "status": states.SNAP_AVAILABLE,
                             "name": snapshot.display_name})
    finally:
        db.dispose()
    return 0


def snapshot_unmanage(conf: cfg.ConfigOpts) -> int:
    db = Database.from_conf(conf)
    try:
        snapshot_id = conf.command.snapshot_id
        if not db.snapshot_destroy(snapshot_id, expected=(states.SNAP_AVAILABLE,)):
            raise exception.InvalidInput(
                reason=f"snapshot {snapshot_id} is not an available snapshot")
    finally:
        db.dispose()
    print(f"Snapshot {snapshot_id} is no longer managed; its storage is left in place.")
    return 0
