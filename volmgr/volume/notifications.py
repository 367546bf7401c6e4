"""Usage notifications of the volume manager, in the shape Ceilometer-style consumers read.

Event types: ``volume.create|delete|attach|detach|resize.start|end|error`` and
``snapshot.create|delete.start|end|error``; payloads carry ``volume_id``, ``tenant_id``,
``user_id``, ``size``, ``status``, ``display_name``, ``availability_zone``, ``created_at``
and ``host``. ``[oslo_messaging_notifications] driver`` turns them on (e.g.
``messagingv2``); with no driver nothing is sent. A failed notification is logged and
never fails or delays an operation for long.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any, Protocol

from oslo_config import cfg

from volmgr import rpc
from volmgr.context import RequestContext
from volmgr.db import models

LOG = logging.getLogger(__name__)

#: Publish attempts before a notification is dropped while the broker is unreachable;
#: an operation must not wait on the bus for a usage record.
NOTIFY_RETRY = 2


class _Sink(Protocol):
    def info(self, ctxt: dict[str, Any], event_type: str, payload: dict[str, Any]) -> None: ...

    def error(self, ctxt: dict[str, Any], event_type: str,
              payload: dict[str, Any]) -> None: ...


def _iso(value: datetime.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def volume_payload(volume: models.Volume, **extra: Any) -> dict[str, Any]:
    """The usage record of one volume (Cinder's ``_usage_from_volume`` keys)."""
    payload = {
        "volume_id": volume.id,
        "tenant_id": volume.project_id,
        "user_id": volume.user_id,
        "host": volume.host,
        "availability_zone": volume.availability_zone,
        "display_name": volume.display_name,
        "volume_type": volume.volume_type,
        "snapshot_id": volume.snapshot_id,
        "size": volume.size,
        "status": volume.status,
        "status_reason": volume.status_reason,
        "created_at": _iso(volume.created_at),
        "metadata": dict(volume.metadata_ or {}),
    }
    payload.update(extra)
    return payload


def snapshot_payload(snapshot: models.Snapshot, **extra: Any) -> dict[str, Any]:
    """The usage record of one snapshot (Cinder's ``_usage_from_snapshot`` keys)."""
    payload = {
        "snapshot_id": snapshot.id,
        "volume_id": snapshot.volume_id,
        "tenant_id": snapshot.project_id,
        "user_id": snapshot.user_id,
        "host": snapshot.host,
        "display_name": snapshot.display_name,
        "volume_size": snapshot.size,
        "size": snapshot.size,
        "status": snapshot.status,
        "status_reason": snapshot.status_reason,
        "created_at": _iso(snapshot.created_at),
        "metadata": dict(snapshot.metadata_ or {}),
    }
    payload.update(extra)
    return payload


class VolumeNotifier:
    """Sends usage notifications; a ``None`` sink sends nothing (the unit-test default)."""

    def __init__(self, sink: _Sink | None = None) -> None:
        self._sink = sink

    @property
    def enabled(self) -> bool:
        return self._sink is not None

    def notify(self, context: RequestContext, event_type: str, payload: dict[str, Any],
               *, error: bool = False) -> None:
        if self._sink is None:
            return
        try:
            if error:
                self._sink.error(context.to_dict(), event_type, payload)
            else:
                self._sink.info(context.to_dict(), event_type, payload)
        except Exception as err:  # a usage record is never worth failing the operation
            LOG.warning("Could not send notification %s: %s", event_type, err)

    def volume(self, context: RequestContext, event_type: str, volume: models.Volume,
               *, error: bool = False, **extra: Any) -> None:
        if self._sink is not None:
            self.notify(context, event_type, volume_payload(volume, **extra), error=error)

    def snapshot(self, context: RequestContext, event_type: str, snapshot: models.Snapshot,
                 *, error: bool = False, **extra: Any) -> None:
        if self._sink is not None:
            self.notify(context, event_type, snapshot_payload(snapshot, **extra),
                        error=error)


def build(conf: cfg.ConfigOpts, host: str) -> tuple[VolumeNotifier, Any]:
    """A notifier for ``volume.<host>`` and the transport it owns (None when disabled)."""
    transport = rpc.get_notification_transport(conf)
    notifier = rpc.get_notifier(conf, f"volume.{host}", transport=transport)
    # is_enabled() is true for an empty driver list too, which sends nothing: do not
    # build (and read rows for) notifications nobody receives.
    if not notifier.is_enabled() or not conf.oslo_messaging_notifications.driver:
        transport.cleanup()
        return VolumeNotifier(None), None
    return VolumeNotifier(notifier.prepare(retry=NOTIFY_RETRY)), transport
