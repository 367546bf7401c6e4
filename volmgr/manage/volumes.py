"""``volmgr-manage volume list|show|reset-state|force-delete``: the operator's view of
volume rows and the overrides for rows a failure left stuck.

Never prints secrets: provider_auth and the CHAP fields of connection_info stay out of
every output. Storage work is never done here; force-delete hands it to the owning
manager over the bus.
"""

from __future__ import annotations

import warnings
from typing import Any

from oslo_config import cfg

from volmgr import exception, states
from volmgr.context import RequestContext
from volmgr.db import Database, models
from volmgr.manage.output import note, output, output_record
from volmgr.manage.progress import Progress

LIST_COLUMNS = ("id", "status", "size", "host", "project_id", "display_name",
                "attached_to", "updated_at")

#: connection_info keys an operator may see; auth_username/auth_password never.
_CONNECTION_KEYS = ("target_iqn", "target_portal", "target_lun", "auth_method", "device_path")

#: Casts to a manager are bounded so a broker outage cannot hang the CLI; the row is
#: already ``deleting`` and the manager's recovery finishes a lost cast.
CAST_RETRY = 2


def volume_row(volume: models.Volume) -> dict[str, Any]:
    return {
        "id": volume.id,
        # A soft-deleted row keeps the status it was deleted from ("deleting"): say
        # what it is now.
        "status": "deleted" if volume.deleted else volume.status,
        "size": volume.size,
        "host": volume.host,
        "project_id": volume.project_id,
        "display_name": volume.display_name,
        "attached_to": ",".join(a.server_id for a in volume.attachments) or None,
        "updated_at": volume.updated_at,
        "deleted": volume.deleted,
    }


def volume_list(conf: cfg.ConfigOpts) -> int:
    db = Database.from_conf(conf)
    try:
        volumes = db.volume_list_admin(include_deleted=conf.command.all,
                                       host=conf.command.on_host, status=conf.command.status)
    finally:
        db.dispose()
    columns = (*LIST_COLUMNS, "deleted") if conf.command.all else LIST_COLUMNS
    output(conf, [volume_row(v) for v in volumes], columns)
    return 0


def _attachment_record(attachment: models.VolumeAttachment) -> dict[str, Any]:
    data = (attachment.connection_info or {}).get("data", {})
    return {
        "id": attachment.id,
        "server_id": attachment.server_id,
        "device": attachment.device,
        "attach_status": attachment.attach_status,
        "attached_at": attachment.attached_at,
        "driver_volume_type": (attachment.connection_info or {}).get("driver_volume_type"),
        **{key: data.get(key) for key in _CONNECTION_KEYS if key in data},
    }


def volume_record(volume: models.Volume) -> dict[str, Any]:
    return {
        "id": volume.id,
        "status": volume.status,
        "status_reason": volume.status_reason,
        "status_changed_at": volume.status_changed_at,
        "recovery_attempts": volume.recovery_attempts,
        "size": volume.size,
        "target_size": volume.target_size,
        "host": volume.host,
        "availability_zone": volume.availability_zone,
        "project_id": volume.project_id,
        "user_id": volume.user_id,
        "display_name": volume.display_name,
        "volume_type": volume.volume_type,
        "snapshot_id": volume.snapshot_id,
        "provider_location": volume.provider_location,
        "created_at": volume.created_at,
        "updated_at": volume.updated_at,
        "attachments": [_attachment_record(a) for a in volume.attachments],
    }


def find_volume(db: Database, reference: str) -> models.Volume:
    """The live volume whose id, or else whose name, is ``reference``; a name that
    several volumes share is refused with their ids."""
    try:
        return db.volume_get(reference)
    except exception.VolumeNotFound:
        named = db.volume_list_admin(name=reference)
        if len(named) == 1:
            return db.volume_get(named[0].id)
        if named:
            raise exception.InvalidInput(
                reason=f"{len(named)} volumes are named {reference!r} "
                f"({', '.join(v.id for v in named)}); give the id") from None
        raise exception.NotFound(f"No volume has the id or the name {reference!r}.") \
            from None


def volume_show(conf: cfg.ConfigOpts) -> int:
    db = Database.from_conf(conf)
    try:
        volume = find_volume(db, conf.command.volume_id)
    finally:
        db.dispose()
    output_record(conf, volume_record(volume))
    return 0


def volume_reset_state(conf: cfg.ConfigOpts) -> int:
    """Set a volume's status by hand, e.g. ``available`` after fixing what left it in
    ``error_detaching``. Nothing on the storage side changes."""
    state = conf.command.state
    if state not in states.VOLUME_STATUSES:
        raise exception.InvalidInput(
            reason=f"unknown volume status {state!r}; one of: "
            f"{', '.join(states.VOLUME_STATUSES)}")
    db = Database.from_conf(conf)
    try:
        volume = find_volume(db, conf.command.volume_id)
        reason = conf.command.reason or f"state reset by operator (was {volume.status})"
        if not db.volume_reset_state(volume.id, volume.status, state, reason):
            raise exception.VolumeStatusConflict(
                volume_id=volume.id, status="changed meanwhile", expected=volume.status)
        if state == states.AVAILABLE and volume.attachments:
            note(f"warning: volume {volume.id} still has {len(volume.attachments)} "
                 "attachment(s); detach or force-delete to close them")
        volume = db.volume_get(volume.id)
    finally:
        db.dispose()
    output_record(conf, volume_record(volume))
    return 0


class _Bus:
    """The message bus, connected on first use: a bulk force-delete of volumes that
    never reached a host needs no broker at all."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        self._transport: Any = None
        self._api: Any = None
        #: Why the last cast failed; later volumes are not cast at all, so a bulk
        #: force-delete during a broker outage does not wait out retries per volume.
        self.failure: str | None = None

    def volume_api(self) -> Any:
        if self._api is None:
            with warnings.catch_warnings():
                # Imported here: oslo.messaging is slow to import and most commands never
                # touch the bus; it imports eventlet, whose deprecation warning is a
                # plain Warning subclass and would land in the operator's output.
                warnings.simplefilter("ignore")
                from volmgr import rpc
                from volmgr.volume.rpcapi import VolumeAPI

                self._transport = rpc.get_transport(self.conf)
            self._api = VolumeAPI(self.conf, self._transport, cast_retry=CAST_RETRY)
        return self._api

    def close(self) -> None:
        if self._transport is not None:
            self._transport.cleanup()


def volume_force_delete(conf: cfg.ConfigOpts) -> int:
    """Delete volumes whatever their status: ``deleting`` + attachments closed in the
    database, then a delete cast to the owning manager (which removes export and LV);
    a volume that never reached a host is destroyed in the database directly."""
    volume_ids: list[str] = list(dict.fromkeys(conf.command.volume_ids))
    db = Database.from_conf(conf)
    bus = _Bus(conf)
    rows: list[dict[str, Any]] = []
    try:
        with Progress("force-delete", len(volume_ids),
                      enabled=len(volume_ids) > 1) as progress:
            for volume_id in volume_ids:
                try:
                    rows.append(_force_delete_one(db, bus, volume_id))
                except exception.VolmgrError as error:
                    rows.append({"id": volume_id, "host": None, "result": f"error: {error}"})
                progress.advance()
    finally:
        bus.close()
        db.dispose()
    output(conf, rows, ("id", "host", "result"))
    return 1 if any(str(r["result"]).startswith("error") for r in rows) else 0


def _force_delete_one(db: Database, bus: _Bus, volume_id: str) -> dict[str, Any]:
    volume = db.volume_force_delete_begin(volume_id)
    if not volume.host:
        db.volume_destroy(volume.id)
        return {"id": volume.id, "host": None, "result": "deleted (no host: database only)"}
    unsent = {"id": volume.id, "host": volume.host,
              "result": "deleting (cast failed; recovery will finish)"}
    if bus.failure is not None:
        return unsent
    try:
        bus.volume_api().delete_volume(RequestContext.admin(), volume.host, volume.id)
    except Exception as error:  # any bus failure: the manager's recovery takes over
        bus.failure = f"{type(error).__name__}: {error}"
        note(f"warning: delete cast to {volume.host} failed ({bus.failure}); not casting "
             "the rest: each host's recovery deletes its volumes left in 'deleting'")
        return unsent
    return {"id": volume.id, "host": volume.host, "result": "deleting (sent to host)"}
