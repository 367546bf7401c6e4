"""``volmgr-manage volume manageable|manage|unmanage``: bring LVs that exist in this
host's VG under management, and forget volumes without touching their LVs.

Runs on the storage host (it reads the VG, like ``reconcile``). ``manage`` sizes the LV
(whole GiB, rounded up), inserts the row as ``creating`` with the project's quota
reserved, adopts the LV (``volmgr.volume.manageable``: checked again, grown to that size,
renamed ``volume-<uuid>``) and makes the row ``available``; if the adoption fails the row
is deleted again and its quota released, and the LV keeps its name. ``unmanage`` takes an
``available`` volume out of the database (quota released) and leaves its LV as it is, so
``manageable`` lists it again.
"""

from __future__ import annotations

from oslo_config import cfg

from volmgr import exception, states
from volmgr.db import Database
from volmgr.manage.output import output, output_record
from volmgr.manage.reconcile import load_driver
from volmgr.manage.volumes import find_volume, volume_record
from volmgr.volume import manageable
from volmgr.volume.driver import VolumeDriver
from volmgr.volume.drivers.lvm import LVMDriver

USER = "volmgr-manage"
COLUMNS = ("name", "size", "safe_to_manage", "reason_not_safe", "cinder_id")


def _lvm(conf: cfg.ConfigOpts) -> LVMDriver:
    driver: VolumeDriver = load_driver(conf)
    if not isinstance(driver, LVMDriver):
        raise exception.InvalidInput(
            reason=f"the {driver.name} driver cannot adopt volumes; only lvm can")
    return driver


def _owned(db: Database, driver: LVMDriver) -> set[str]:
    """Ids of live rows (any host) among the VG's volmgr-named LVs."""
    return set(db.volumes_by_ids(driver.list_volume_ids()))


def volume_manageable(conf: cfg.ConfigOpts) -> int:
    db = Database.from_conf(conf)
    try:
        driver = _lvm(conf)
        found = manageable.list_manageable_volumes(driver, _owned(db, driver))
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
        driver = _lvm(conf)
        size = manageable.manage_existing_get_size(driver, reference)
        volume = db.volume_create(
            project_id=command.project, user_id=USER, size=size, host=conf.host,
            display_name=command.display_name or command.source_name,
            status=states.CREATING)
        try:
            manageable.manage_existing(driver, volume.id, reference, _owned(db, driver))
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
