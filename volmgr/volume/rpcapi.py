"""Client side of the volume manager's RPC API.

Concepts: every manager consumes the topic ``volmgr-volume`` as *server* = its host
name, so a message prepared with ``server=volume.host`` reaches exactly the manager that
owns the volume. Casts are fire-and-forget: the database row records what was asked, and
the manager's recovery re-drives anything a lost message left behind. Calls wait for an
answer with a bounded timeout and are used only for short questions.

Messages carry ids and a small request context, never ORM objects.

API version history:

* 1.0 - Initial version: create_volume, delete_volume, attach_volume, detach_volume,
  extend_volume, create_snapshot, delete_snapshot (casts); get_capabilities, ping
  (calls). get_capabilities and ping were later withdrawn from both sides, with no
  version change: no volmgr process ever sent them (a manager's capabilities reach the
  API through its heartbeat in the services table, and that heartbeat also says whether
  it is up), so no client depended on them.
* 1.1 - create_volume accepts ``snapshot_id`` to create a volume from a snapshot.
* 1.2 - create_volume accepts ``source_volid`` to clone a volume (the manager reads the
  source from the row; the argument keys the work under the source volume).
* 1.3 - connect_attachment (call: admit a connector for an attachment, answer
  connection_info) and terminate_connection (call: withdraw a connector), for the v3
  attachments API and the volume connection actions. extend_volume may now be sent for
  an in-use volume (the manager re-reads the live LUN's size).
* 1.4 - Adopting existing storage: get_manageable_volumes, get_manageable_snapshots and
  manage_existing_get_size (calls: what only the storage host can see), manage_existing,
  manage_existing_snapshot, unmanage_volume and unmanage_snapshot (casts).

An API newer than some managers is capped with ``[upgrade_levels] volume = 1.0`` during
a rolling upgrade; the client then refuses to send a message that needs more.
"""

from __future__ import annotations

import time
from typing import Any

from oslo_config import cfg

from volmgr import exception, rpc
from volmgr.context import RequestContext

RPC_API_VERSION = "1.4"

#: Version create_volume needs when it carries a snapshot_id.
CREATE_FROM_SNAPSHOT_VERSION = "1.1"
#: Version create_volume needs when it carries a source_volid (a clone).
CREATE_FROM_SOURCE_VERSION = "1.2"

#: Version each method needs at the least (its arguments as sent today).
METHOD_VERSIONS = {
    "create_volume": "1.0",
    "delete_volume": "1.0",
    "attach_volume": "1.0",
    "detach_volume": "1.0",
    "extend_volume": "1.0",
    "create_snapshot": "1.0",
    "delete_snapshot": "1.0",
    "connect_attachment": "1.3",
    "terminate_connection": "1.3",
    "get_manageable_volumes": "1.4",
    "get_manageable_snapshots": "1.4",
    "manage_existing_get_size": "1.4",
    "manage_existing": "1.4",
    "manage_existing_snapshot": "1.4",
    "unmanage_volume": "1.4",
    "unmanage_snapshot": "1.4",
}
#: Version an extend of an in-use volume needs (older managers grow only detached ones).
EXTEND_ATTACHED_VERSION = "1.3"


class VolumeAPI:
    """Casts and calls to ``volmgr-volume`` managers."""

    def __init__(self, conf: cfg.ConfigOpts, transport: Any, *,
                 cast_retry: int | None = None, call_timeout: int = 30) -> None:
        self.version_cap: str | None = conf.upgrade_levels.volume or None
        self.cast_retry = cast_retry
        self.call_timeout = call_timeout
        self.client = rpc.get_client(transport, version="1.0", version_cap=self.version_cap)

    def require_version(self, method: str, version: str | None = None) -> None:
        """Raise RPCVersionCapped now if ``method`` at ``version`` could not be sent, so
        a caller can refuse a request before it writes anything."""
        needed = version or METHOD_VERSIONS[method]
        if not self.client.can_send_version(needed):
            raise exception.RPCVersionCapped(method=method, needed=needed,
                                             cap=self.version_cap)

    def _prepare(self, method: str, host: str, version: str | None = None,
                 *, call: bool = False) -> Any:
        needed = version or METHOD_VERSIONS[method]
        self.require_version(method, needed)
        if call:
            return self.client.prepare(server=host, version=needed,
                                       timeout=self.call_timeout)
        return self.client.prepare(server=host, version=needed, retry=self.cast_retry)

    def _cast(self, context: RequestContext, method: str, host: str,
              version: str | None = None, **kwargs: Any) -> None:
        cctxt = self._prepare(method, host, version)
        # sent_at: the manager's bus-lag metric (older managers ignore the key).
        cctxt.cast({**context.to_dict(), "sent_at": time.time()}, method, **kwargs)

    def create_volume(self, context: RequestContext, host: str, volume_id: str,
                      snapshot_id: str | None = None,
                      source_volid: str | None = None) -> None:
        if source_volid is not None:
            self._cast(context, "create_volume", host, CREATE_FROM_SOURCE_VERSION,
                       volume_id=volume_id, source_volid=source_volid)
        elif snapshot_id is not None:
            self._cast(context, "create_volume", host, CREATE_FROM_SNAPSHOT_VERSION,
                       volume_id=volume_id, snapshot_id=snapshot_id)
        else:
            self._cast(context, "create_volume", host, volume_id=volume_id)

    def delete_volume(self, context: RequestContext, host: str, volume_id: str) -> None:
        self._cast(context, "delete_volume", host, volume_id=volume_id)

    def attach_volume(self, context: RequestContext, host: str, volume_id: str,
                      attachment_id: str) -> None:
        self._cast(context, "attach_volume", host, volume_id=volume_id,
                   attachment_id=attachment_id)

    def detach_volume(self, context: RequestContext, host: str, volume_id: str,
                      attachment_id: str) -> None:
        self._cast(context, "detach_volume", host, volume_id=volume_id,
                   attachment_id=attachment_id)

    def extend_volume(self, context: RequestContext, host: str, volume_id: str,
                      new_size: int) -> None:
        self._cast(context, "extend_volume", host, volume_id=volume_id, new_size=new_size)

    def create_snapshot(self, context: RequestContext, host: str, snapshot_id: str) -> None:
        self._cast(context, "create_snapshot", host, snapshot_id=snapshot_id)

    def delete_snapshot(self, context: RequestContext, host: str, snapshot_id: str) -> None:
        self._cast(context, "delete_snapshot", host, snapshot_id=snapshot_id)

    def connect_attachment(self, context: RequestContext, host: str, volume_id: str,
                           attachment_id: str, connector: dict[str, Any]) -> dict[str, Any]:
        """Bounded call; ServiceUnavailable when the host does not answer in time."""
        return self._call(context, "connect_attachment", host, volume_id=volume_id,
                          attachment_id=attachment_id, connector=connector)

    def terminate_connection(self, context: RequestContext, host: str, volume_id: str,
                             connector: dict[str, Any],
                             attachment_id: str | None = None) -> None:
        self._call(context, "terminate_connection", host, volume_id=volume_id,
                   connector=connector, attachment_id=attachment_id)

    # -- adopting existing storage (1.4) -------------------------------------------------

    def get_manageable_volumes(self, context: RequestContext,
                               host: str) -> list[dict[str, Any]]:
        return list(self._call(context, "get_manageable_volumes", host))

    def get_manageable_snapshots(self, context: RequestContext,
                                 host: str) -> list[dict[str, Any]]:
        return list(self._call(context, "get_manageable_snapshots", host))

    def manage_existing_get_size(self, context: RequestContext, host: str,
                                 reference: dict[str, Any],
                                 volume_id: str | None = None) -> int:
        return int(self._call(context, "manage_existing_get_size", host,
                              reference=reference, volume_id=volume_id))

    def manage_existing(self, context: RequestContext, host: str, volume_id: str,
                        reference: dict[str, Any]) -> None:
        self._cast(context, "manage_existing", host, volume_id=volume_id,
                   reference=reference)

    def manage_existing_snapshot(self, context: RequestContext, host: str,
                                 snapshot_id: str, reference: dict[str, Any]) -> None:
        self._cast(context, "manage_existing_snapshot", host, snapshot_id=snapshot_id,
                   reference=reference)

    def unmanage_volume(self, context: RequestContext, host: str, volume_id: str) -> None:
        self._cast(context, "unmanage_volume", host, volume_id=volume_id)

    def unmanage_snapshot(self, context: RequestContext, host: str,
                          snapshot_id: str) -> None:
        self._cast(context, "unmanage_snapshot", host, snapshot_id=snapshot_id)

    def _call(self, context: RequestContext, method: str, host: str,
              **kwargs: Any) -> Any:
        cctxt = self._prepare(method, host, call=True)
        try:
            return cctxt.call(context.to_dict(), method, **kwargs)
        except rpc.messaging.MessagingTimeout:
            raise exception.ServiceUnavailable(
                reason=f"the storage host {host} did not answer {method} within "
                f"{self.call_timeout} s; it may be down (the request may still complete: "
                f"read the attachment again, or retry)") from None
        except (rpc.messaging.MessageDeliveryFailure,
                rpc.messaging.MessageUndeliverable, rpc.messaging.ClientSendError,
                ConnectionError, OSError) as error:
            raise exception.ServiceUnavailable(
                reason=f"the storage host {host} cannot be reached: "
                f"{type(error).__name__}") from None
