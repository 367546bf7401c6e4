"""``volmgr-manage service list|disable|enable``: who is up, with what capacity, and
taking a host out of (or back into) scheduling. Never deletes a service row."""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

from volmgr.db import Database, models
from volmgr.db.services import is_up
from volmgr.manage.output import output

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
