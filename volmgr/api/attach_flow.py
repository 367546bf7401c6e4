"""The attach flows a compute host drives step by step: the v3 attachments API and the
volume connection actions (``os-reserve`` … ``os-detach``). Both are doors to the one
attachment model of ``volmgr/db/attachments.py`` that the Compute 1.1 face also uses.

Connecting (admitting a connector and answering its ``connection_info``) needs the
storage host to make the export before the API answers: it is the one bounded RPC
*call* (``[api] rpc_call_timeout``); a host that is down, or silent past the timeout,
answers 503 and leaves nothing half-made that its recovery does not finish or undo
(docs/rpc.md, "Attachments"). Ending an attachment is a cast, as every other change.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from oslo_config import cfg

from volmgr import exception, rpc, states
from volmgr.api.operations import scope
from volmgr.context import RequestContext
from volmgr.db import Database, models
from volmgr.db.services import is_up

LOG = logging.getLogger(__name__)


class ConnectingAPI(Protocol):
    """What of ``volmgr.volume.rpcapi.VolumeAPI`` the attach flows use."""

    def require_version(self, method: str, version: str | None = None) -> None: ...

    def connect_attachment(self, context: RequestContext, host: str, volume_id: str,
                           attachment_id: str,
                           connector: dict[str, Any]) -> dict[str, Any]: ...

    def terminate_connection(self, context: RequestContext, host: str, volume_id: str,
                             connector: dict[str, Any],
                             attachment_id: str | None = None) -> None: ...

    def detach_volume(self, context: RequestContext, host: str, volume_id: str,
                      attachment_id: str) -> None: ...


def _same_connector(attachment: models.VolumeAttachment,
                    connector: Mapping[str, Any]) -> bool:
    mine = attachment.connector or {}
    if connector.get("initiator"):
        return bool(mine.get("initiator") == connector.get("initiator"))
    return bool(connector.get("host")) and mine.get("host") == connector.get("host")


class AttachFlow:
    """The v3 attachment requests and the volume connection actions."""

    def __init__(self, conf: cfg.ConfigOpts, db: Database, rpcapi: Any) -> None:
        self.conf = conf
        self.db = db
        self.rpcapi: ConnectingAPI = rpcapi

    # -- reads -------------------------------------------------------------------------

    def get(self, ctx: RequestContext, attachment_id: str) -> models.VolumeAttachment:
        return self.db.attachment_get(attachment_id, scope(ctx))

    def list_attachments(self, ctx: RequestContext, *, all_projects: bool, **filters: Any,
             ) -> list[models.VolumeAttachment]:
        project = None if (all_projects and ctx.is_admin) else ctx.project_id
        return self.db.attachment_list(project_id=project, **filters)

    # -- v3 ----------------------------------------------------------------------------

    def create(self, ctx: RequestContext, volume_id: str, *, server_id: str | None,
               connector: dict[str, Any] | None,
               mode: str | None) -> models.VolumeAttachment:
        """Reserve (``POST /attachments``); with a connector, connect at once."""
        volume = self.db.volume_get(volume_id, scope(ctx))
        if connector:
            # A host that is down is refused before anything is written.
            self.rpcapi.require_version("connect_attachment")
            self._require_up(self._host(volume))
        attachment = self.db.attachment_reserve(
            volume_id, server_id=server_id, project_id=scope(ctx), flow=states.FLOW_V3,
            mode=self._mode(volume, mode))
        if connector:
            # Should the connect fail, the reservation stays (error_attaching or
            # reserved): the client may PUT the connector again or delete it.
            self._connect(ctx, volume, attachment.id, connector)
        return self.db.attachment_get(attachment.id)

    def update(self, ctx: RequestContext, attachment_id: str,
               connector: dict[str, Any]) -> models.VolumeAttachment:
        """``PUT /attachments/{id}``: admit the connector, answer connection_info."""
        attachment = self.get(ctx, attachment_id)
        volume = self.db.volume_get(attachment.volume_id)
        if volume.status.startswith("error"):
            raise exception.Conflict(
                f"Volume {volume.id} is {volume.status}; its attachments cannot be updated.")
        self._connect(ctx, volume, attachment_id, connector)
        return self.db.attachment_get(attachment_id)

    def complete(self, ctx: RequestContext, attachment_id: str) -> None:
        """``os-complete``: the attachment is attached, its volume in use."""
        self.db.attachment_complete(attachment_id, project_id=scope(ctx))

    def delete(self, ctx: RequestContext, attachment_id: str,
               *, force: bool = False) -> list[models.VolumeAttachment]:
        """End an attachment (``DELETE /attachments/{id}``, ``os-detach``, ``os-unreserve``);
        returns the volume's attachments that remain."""
        attachment = self.get(ctx, attachment_id)
        volume = self.db.volume_get(attachment.volume_id)
        attachment, needs_manager = self.db.attachment_begin_delete(
            attachment_id, project_id=scope(ctx), force=force)
        if needs_manager:
            host = self._host(volume)
            try:
                self.rpcapi.detach_volume(ctx, host, volume.id, attachment_id)
            except Exception as error:  # any bus failure is recoverable
                LOG.warning("%s: cast detach_volume for %s failed (%s); the attachment "
                            "stays detaching and the manager's recovery will finish it",
                            ctx.request_id, attachment_id, type(error).__name__)
        return [a for a in self.db.attachment_list(volume_id=volume.id)
                if a.id != attachment_id]

    # -- the volume actions --------------------------------------------------------------

    def reserve(self, ctx: RequestContext, volume_id: str) -> None:
        """``os-reserve``: the volume is ``attaching`` for a legacy attachment."""
        volume = self.db.volume_get(volume_id, scope(ctx))
        self.db.attachment_reserve(volume_id, server_id=None, project_id=scope(ctx),
                                   flow=states.FLOW_LEGACY, mode=self._mode(volume, None))

    def unreserve(self, ctx: RequestContext, volume_id: str) -> None:
        """``os-unreserve``: end the reservation that no ``os-attach`` completed."""
        self.db.volume_get(volume_id, scope(ctx))
        pending = [a for a in self.db.attachment_list(volume_id=volume_id)
                   if a.flow == states.FLOW_LEGACY and a.attach_status in (
                       states.ATTACH_RESERVED, states.ATTACH_ATTACHING,
                       states.ATTACH_ERROR_ATTACHING)]
        if not pending:
            self.db.volume_settle(volume_id)
            return
        self.delete(ctx, pending[-1].id)

    def initialize_connection(self, ctx: RequestContext, volume_id: str,
                              connector: dict[str, Any]) -> dict[str, Any]:
        """``os-initialize_connection``: admit the connector for the volume's pending
        (or the same connector's live) attachment, reserving one when the volume is
        free, and answer connection_info."""
        volume = self.db.volume_get(volume_id, scope(ctx))
        # A capped client or a host that is down is refused before anything is written.
        self.rpcapi.require_version("connect_attachment")
        self._require_up(self._host(volume))
        live = self.db.attachment_list(volume_id=volume_id)
        same = [a for a in live if _same_connector(a, connector) and a.attach_status in (
            states.ATTACH_ATTACHED, states.ATTACH_ATTACHING)]
        pending = [a for a in live if a.flow == states.FLOW_LEGACY and a.attach_status in (
            states.ATTACH_RESERVED, states.ATTACH_ERROR_ATTACHING)]
        if same:
            attachment_id = same[-1].id
        elif pending:
            attachment_id = pending[-1].id
        else:
            attachment_id = self.db.attachment_reserve(
                volume_id, server_id=None, project_id=scope(ctx), flow=states.FLOW_LEGACY,
                mode=self._mode(volume, None)).id
        return self._connect(ctx, volume, attachment_id, connector)

    def attach(self, ctx: RequestContext, volume_id: str, *, server_id: str | None,
               device: str | None, mode: str | None) -> None:
        """``os-attach``: complete the volume's pending legacy attachment (connected or
        not: attaching needs no export of its own), reserving one when the volume is
        free."""
        volume = self.db.volume_get(volume_id, scope(ctx))
        live = [a for a in self.db.attachment_list(volume_id=volume_id)
                if a.flow == states.FLOW_LEGACY and a.attach_status in (
                    states.ATTACH_RESERVED, states.ATTACH_ATTACHING)]
        connected = [a for a in live if a.connection_info]
        candidates = connected or live
        if candidates:
            chosen = candidates[-1]
        else:
            chosen = self.db.attachment_reserve(
                volume_id, server_id=server_id, project_id=scope(ctx),
                flow=states.FLOW_LEGACY, mode=self._mode(volume, mode))
        self.db.attachment_complete(chosen.id, project_id=scope(ctx), server_id=server_id,
                                    device=device, mode=mode)

    def begin_detaching(self, ctx: RequestContext, volume_id: str) -> None:
        self.db.volume_begin_detaching(volume_id, project_id=scope(ctx))

    def roll_detaching(self, ctx: RequestContext, volume_id: str) -> None:
        self.db.volume_roll_detaching(volume_id, project_id=scope(ctx))

    def terminate_connection(self, ctx: RequestContext, volume_id: str,
                             connector: dict[str, Any]) -> None:
        """``os-terminate_connection``: withdraw the connector on the storage host (a
        call); its attachment stays until ``os-detach``."""
        volume = self.db.volume_get(volume_id, scope(ctx))
        matching = [a for a in self.db.attachment_list(volume_id=volume_id)
                    if _same_connector(a, connector)]
        host = self._host(volume)
        self._require_up(host)
        self.rpcapi.terminate_connection(ctx, host, volume_id, dict(connector),
                                         matching[-1].id if matching else None)

    def detach(self, ctx: RequestContext, volume_id: str, attachment_id: str | None,
               *, force: bool = False) -> None:
        """``os-detach`` (and the admin's ``os-force_detach``): end the named attachment,
        or the volume's only one."""
        self.db.volume_get(volume_id, scope(ctx))
        live = self.db.attachment_list(volume_id=volume_id)
        if attachment_id is None:
            if len(live) > 1:
                detaching = [a for a in live if a.attach_status == states.ATTACH_DETACHING]
                if len(detaching) != 1:
                    raise exception.InvalidInput(
                        reason=f"volume {volume_id} has {len(live)} attachments; name "
                        f"the one to end with 'attachment_id'")
                live = detaching
            if not live:
                if force:
                    self.db.volume_settle(volume_id)
                    return
                raise exception.InvalidVolume(reason=f"volume {volume_id} is not attached")
            attachment_id = live[0].id
        elif attachment_id not in {a.id for a in live}:
            raise exception.NotFound(f"Attachment {attachment_id} could not be found.")
        self.delete(ctx, attachment_id, force=force)

    # -- helpers -----------------------------------------------------------------------

    def _mode(self, volume: models.Volume, mode: str | None) -> str:
        if mode in ("rw", "ro"):
            return mode
        readonly = (volume.admin_metadata or {}).get("readonly")
        if readonly in (True, "True", "true") or (volume.metadata_ or {}).get(
                "readonly") in ("True", "true"):
            return "ro"
        return "rw"

    def _host(self, volume: models.Volume) -> str:
        if not volume.host:
            raise exception.InvalidVolume(reason=f"volume {volume.id} is not placed on any "
                                          f"host")
        return volume.host

    def _require_up(self, host: str) -> None:
        """503 at once, before anything is written, for a host whose manager is down."""
        try:
            service = self.db.service_get(host, rpc.VOLUME_SERVICE)
        except exception.NotFound:
            raise exception.ServiceUnavailable(
                reason=f"no volume service has ever run on storage host {host}") from None
        if not is_up(service, self.conf.service_down_time):
            raise exception.ServiceUnavailable(
                reason=f"the volume service of storage host {host} is down (no heartbeat "
                f"for {self.conf.service_down_time} s); try again later")

    def _connect(self, ctx: RequestContext, volume: models.Volume, attachment_id: str,
                 connector: dict[str, Any]) -> dict[str, Any]:
        host = self._host(volume)
        self.rpcapi.require_version("connect_attachment")
        self._require_up(host)
        return self.rpcapi.connect_attachment(ctx, host, volume.id, attachment_id,
                                              dict(connector))
