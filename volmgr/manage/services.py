"""``volmgr-manage service list|disable|enable|remove``: who is up, with what capacity,
taking a host out of (or back into) scheduling, and giving up on a host that will never
return (``remove``, the only command that deletes a service row)."""

from __future__ import annotations

from typing import Any, cast

from oslo_config import cfg

from volmgr import exception, states
from volmgr.db import Database, models
from volmgr.db.services import is_up
from volmgr.manage.output import output
from volmgr.volume import operations as volume_operations

LIST_COLUMNS = ("host", "binary", "status", "state", "last_heartbeat", "total_gb",
                "free_gb", "disabled_reason")


def service_row(service: models.Service, down_time: int) -> dict[str, Any]:
    capabilities = service.capabilities or {}
    return {
        "host": service.host,
        "binary": service.binary,
        # Cinder's words: status is the operator's switch, state the heartbeat's verdict.
        "status": "disabled" if service.disabled else "enabled",
        "state": "up" if is_up(service, down_time) else "down",
        "last_heartbeat": service.last_heartbeat,
        "total_gb": capabilities.get("total_capacity_gb"),
        "free_gb": capabilities.get("free_capacity_gb"),
        "disabled_reason": service.disabled_reason,
    }


def service_list(conf: cfg.ConfigOpts) -> int:
    db = Database.from_conf(conf)
    try:
        services = db.service_list(conf.command.binary)
    finally:
        db.dispose()
    output(conf, [service_row(s, conf.service_down_time) for s in services], LIST_COLUMNS)
    return 0


def _set_disabled(conf: cfg.ConfigOpts, disabled: bool) -> int:
    db = Database.from_conf(conf)
    try:
        db.service_set_disabled(conf.command.service_host, conf.command.binary, disabled,
                                conf.command.reason if disabled else None)
        service = db.service_get(conf.command.service_host, conf.command.binary)
    finally:
        db.dispose()
    output(conf, [service_row(service, conf.service_down_time)], LIST_COLUMNS)
    return 0


def service_disable(conf: cfg.ConfigOpts) -> int:
    """Stop scheduling new volumes to a host; its existing volumes keep working."""
    return _set_disabled(conf, True)


def service_enable(conf: cfg.ConfigOpts) -> int:
    return _set_disabled(conf, False)


REMOVE_COLUMNS = ("kind", "id", "was", "now")


def service_remove(conf: cfg.ConfigOpts) -> int:
    """Give up on a host that will never return: refused while its service is up;
    otherwise every volume, snapshot and attachment of the host still in a transitional
    status goes to its ``error_*`` status with a reason (nothing waits forever for the
    dead machine, and each can then be deleted or reset), and the service row is
    deleted. A host that does come back registers again with its next heartbeat."""
    host, binary = conf.command.service_host, conf.command.binary
    reason = conf.command.reason or (
        f"storage host {host} was removed by an operator (volmgr-manage service "
        "remove): the operation can never finish there")
    db = Database.from_conf(conf)
    try:
        service = db.service_get(host, binary)
        if is_up(service, conf.service_down_time):
            raise exception.ServiceIsUp(host=host, binary=binary,
                                        down_time=conf.service_down_time)
        rows = fail_host_work(db, host, reason)
        db.service_delete(host, binary, conf.service_down_time)
    finally:
        db.dispose()
    output(conf, rows, REMOVE_COLUMNS)
    return 0


def fail_host_work(db: Database, host: str, reason: str) -> list[dict[str, Any]]:
    """Move ``host``'s transitional rows to their error states, as recovery does when it
    gives up (each move is a guarded write: a row another process moved first is left)."""
    # fail_volume only writes rows; it never touches the driver or notifier.
    ops = volume_operations.ManagerOperations(db, cast(Any, None), cast(Any, None))
    now = models.utcnow()
    moved: list[dict[str, Any]] = []
    for volume in db.volumes_stuck(host, now):
        ops.fail_volume(volume.id, volume.status, reason)
        moved.append({"kind": "volume", "id": volume.id, "was": volume.status,
                      "now": db.volume_get(volume.id).status})
    for snapshot in db.snapshots_stuck(host, now):
        target = states.SNAPSHOT_TRANSITIONAL[snapshot.status]
        db.snapshot_transition(snapshot.id, (snapshot.status,),
                               {"status": target, "status_reason": reason})
        moved.append({"kind": "snapshot", "id": snapshot.id, "was": snapshot.status,
                      "now": target})
    failed = {row["id"] for row in moved}
    for attachment in db.attachments_stuck(host, now):
        if attachment.volume_id in failed:
            continue
        if attachment.attach_status == states.ATTACH_ATTACHING:
            db.attach_failed(attachment.volume_id, attachment.id, reason)
        else:
            db.detach_failed(attachment.volume_id, attachment.id, reason)
        moved.append({"kind": "attachment", "id": attachment.id,
                      "was": attachment.attach_status,
                      "now": f"error_{attachment.attach_status}"})
    return moved
