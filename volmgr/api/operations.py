"""What every API request does, whichever face it came through: validate the state
change with one guarded database write, pick the host, cast, return the row.

Delivery contract (docs/rpc.md, "Delivery"): the row is written *before* the cast. A cast that
fails afterwards (broker down beyond ``[api] rpc_cast_retry``) is
logged and the request still succeeds: the row now sits in a transitional status with
its ``status_changed_at``, and the owning manager's recovery re-drives it. This module
never calls a manager synchronously and never touches storage.

Scheduling failures: a volume no host can hold is written, in the same one transaction,
as a visible ``error`` row with the reason in ``status_reason``, no host, and no quota
held (the limits are still checked, so an over-quota request answers 413 instead). Its
later delete completes here in the API, since no manager owns it, and gives nothing back
twice (``quota_held``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from oslo_config import cfg

from volmgr import exception, states
from volmgr.api.scheduler import Scheduler
from volmgr.context import RequestContext
from volmgr.db import Database, models
from volmgr.db import types as db_types
from volmgr.db.core import NEWEST_FIRST, SortOrder
from volmgr.db.volumes import DetailPage
from volmgr.volume import rpcapi as rpcapi_mod

LOG = logging.getLogger(__name__)


class CastingAPI(Protocol):
    """The casts of ``volmgr.volume.rpcapi.VolumeAPI`` that the API uses."""

    def require_version(self, method: str, version: str | None = None) -> None: ...

    def create_volume(self, context: RequestContext, host: str, volume_id: str,
                      snapshot_id: str | None = None,
                      source_volid: str | None = None) -> None: ...

    def delete_volume(self, context: RequestContext, host: str, volume_id: str) -> None: ...

    def attach_volume(self, context: RequestContext, host: str, volume_id: str,
                      attachment_id: str) -> None: ...

    def detach_volume(self, context: RequestContext, host: str, volume_id: str,
                      attachment_id: str) -> None: ...

    def extend_volume(self, context: RequestContext, host: str, volume_id: str,
                      new_size: int) -> None: ...

    def create_snapshot(self, context: RequestContext, host: str,
                        snapshot_id: str) -> None: ...

    def delete_snapshot(self, context: RequestContext, host: str,
                        snapshot_id: str) -> None: ...


def scope(ctx: RequestContext) -> str | None:
    """The project a caller's lookups are confined to; admins see every project."""
    return None if ctx.is_admin else ctx.project_id


class ApiOperations:
    """What the API does for the volume, attachment and snapshot requests of both faces:
    the guarded write, the host choice and the cast (``ManagerOperations`` in
    ``volmgr.volume.operations`` is what the manager then does for the message)."""

    def __init__(self, conf: cfg.ConfigOpts, db: Database, rpcapi: CastingAPI) -> None:
        self.conf = conf
        self.db = db
        self.rpcapi = rpcapi
        self.scheduler = Scheduler(conf, db)

    # -- reads ---------------------------------------------------------------------

    def get_volume(self, ctx: RequestContext, volume_id: str) -> models.Volume:
        return self.db.volume_get(volume_id, scope(ctx))

    def list_volumes(self, ctx: RequestContext, project_id: str | None, *,
                     filters: Mapping[str, Any] | None = None, limit: int | None = None,
                     marker: str | None = None, offset: int = 0,
                     sort: SortOrder = NEWEST_FIRST,
                     row_filter: Callable[[models.Volume], bool] | None = None,
                     attachments: bool = True) -> list[models.Volume]:
        """``project_id`` None lists every project (admins with all_tenants only);
        ``attachments=False`` when the caller does not read them."""
        return self.db.volume_list(self._listed_project(ctx, project_id), filters=filters,
                                   limit=limit, marker=marker, offset=offset, sort=sort,
                                   row_filter=row_filter, attachments=attachments)

    def list_volumes_attached(
            self, ctx: RequestContext, project_id: str | None, *,
            filters: Mapping[str, Any] | None = None, limit: int | None = None,
            marker: str | None = None, offset: int = 0, sort: SortOrder = NEWEST_FIRST,
            row_filter: Callable[[models.Volume], bool] | None = None,
    ) -> DetailPage:
        """``list_volumes`` with what a detail listing shows besides the rows
        (``db.volume_list_attached``)."""
        return self.db.volume_list_attached(
            self._listed_project(ctx, project_id), filters=filters, limit=limit,
            marker=marker, offset=offset, sort=sort, row_filter=row_filter)

    @staticmethod
    def _listed_project(ctx: RequestContext, project_id: str | None) -> str | None:
        if project_id is None and not ctx.is_admin:
            return ctx.project_id
        return project_id

    def get_snapshot(self, ctx: RequestContext, snapshot_id: str) -> models.Snapshot:
        return self.db.snapshot_get(snapshot_id, scope(ctx))

    def list_snapshots(self, ctx: RequestContext, project_id: str | None, *,
                       filters: Mapping[str, Any] | None = None, limit: int | None = None,
                       marker: str | None = None, offset: int = 0,
                       sort: SortOrder = NEWEST_FIRST,
                       row_filter: Callable[[models.Snapshot], bool] | None = None,
                       ) -> list[models.Snapshot]:
        if project_id is None and not ctx.is_admin:
            project_id = ctx.project_id
        return self.db.snapshot_list(project_id, filters=filters, limit=limit,
                                     marker=marker, offset=offset, sort=sort,
                                     row_filter=row_filter)

    def get_attachment(self, ctx: RequestContext, server_id: str,
                       volume_id: str) -> models.VolumeAttachment:
        return self.db.attachment_find(volume_id, server_id, scope(ctx))

    def list_attachments(self, ctx: RequestContext, server_id: str,
                         project_id: str) -> list[models.VolumeAttachment]:
        """A server's attachments of ``project_id``'s volumes (the caller's own unless an
        admin asks for another project)."""
        if not ctx.is_admin:
            project_id = ctx.project_id
        return self.db.attachment_list(server_id=server_id, project_id=project_id)

    # -- volumes -------------------------------------------------------------------

    def create_volume(self, ctx: RequestContext, *, size: int | None,
                      name: str | None = None,
                      description: str | None = None,
                      metadata: Mapping[str, str] | None = None,
                      availability_zone: str | None = None,
                      volume_type: str | None = None,
                      snapshot_id: str | None = None,
                      source_volid: str | None = None) -> models.Volume:
        """Write the new volume (with its quota) and cast its creation, ``volume_type``
        kept as given (the Compute 1.1 face). ``size`` may be None when the volume is
        made from a snapshot or a source volume: it then has their size."""
        volume, host = self.db.run_together(lambda: self._write_volume(
            ctx, size=size, name=name, description=description, metadata=metadata,
            availability_zone=availability_zone, volume_type=volume_type,
            snapshot_id=snapshot_id, source_volid=source_volid))
        self._cast_create(ctx, volume, host)
        return volume

    def create_typed_volume(self, ctx: RequestContext, *, size: int | None,
                            type_name_or_id: str | None,
                            name: str | None = None,
                            description: str | None = None,
                            metadata: Mapping[str, str] | None = None,
                            availability_zone: str | None = None,
                            snapshot_id: str | None = None,
                            source_volid: str | None = None,
                            ) -> tuple[models.Volume, bool]:
        """``create_volume`` of a volume type (the Block Storage v3 face): the type named
        (or the default one), its extra specs matched against the hosts, its
        ``multiattach`` spec on the row. The type, the hosts, the quota and the insert
        are one transaction. Returns the volume and whether its type is encrypted."""
        def write() -> tuple[models.Volume, str | None, bool]:
            chosen, encrypted = self.db.volume_type_choose(
                type_name_or_id, project_id=ctx.project_id, is_admin=ctx.is_admin)
            volume, host = self._write_volume(
                ctx, size=size, name=name, description=description, metadata=metadata,
                availability_zone=availability_zone, volume_type=chosen.name,
                volume_type_id=chosen.id, extra_specs=dict(chosen.extra_specs or {}),
                multiattach=db_types.is_multiattach(chosen), snapshot_id=snapshot_id,
                source_volid=source_volid)
            return volume, host, encrypted
        volume, host, encrypted = self.db.run_together(write)
        self._cast_create(ctx, volume, host)
        return volume, encrypted

    def _write_volume(self, ctx: RequestContext, *, size: int | None,
                      name: str | None, description: str | None,
                      metadata: Mapping[str, str] | None,
                      availability_zone: str | None, volume_type: str | None,
                      volume_type_id: str | None = None,
                      extra_specs: Mapping[str, str] | None = None,
                      multiattach: bool = False, snapshot_id: str | None = None,
                      source_volid: str | None = None) -> tuple[models.Volume, str | None]:
        """The new row (quota reserved) and the host that will make it; host None when
        no host could take it (the row is then born in ``error``, holding no quota)."""
        zone = self.conf.storage_availability_zone
        if availability_zone not in (None, zone):
            raise exception.InvalidInput(
                reason=f"availability zone {availability_zone!r} does not exist; "
                f"this service offers {zone!r}")
        host: str | None
        reason: str | None = None
        source_size: int | None = None
        if snapshot_id is not None:
            # Refuse before writing anything: during a rolling upgrade a capped API
            # must not queue work that old managers cannot do.
            self.rpcapi.require_version("create_volume",
                                        rpcapi_mod.CREATE_FROM_SNAPSHOT_VERSION)
            snapshot = self.db.snapshot_get(snapshot_id, scope(ctx))
            if snapshot.status != states.SNAP_AVAILABLE:
                raise exception.SnapshotStatusConflict(
                    snapshot_id=snapshot_id, status=snapshot.status,
                    expected=states.SNAP_AVAILABLE)
            # A volume made from a snapshot lives on the snapshot's backend.
            host, source_size, what = snapshot.host, snapshot.size, "snapshot's"
            self._require_up(host)
        elif source_volid is not None:
            self.rpcapi.require_version("create_volume",
                                        rpcapi_mod.CREATE_FROM_SOURCE_VERSION)
            source = self.db.volume_get(source_volid, scope(ctx))
            if source.status not in states.CAN_CLONE_FROM:
                raise exception.VolumeStatusConflict(
                    volume_id=source_volid, status=source.status,
                    expected=", ".join(states.CAN_CLONE_FROM))
            host, source_size, what = source.host, source.size, "source volume's"
            self._require_up(host)
        if source_size is not None:
            if size is None:
                size = source_size
            elif size < source_size:
                raise exception.InvalidInput(
                    reason=f"size {size} GiB is smaller than the {what} {source_size} GiB")
        if size is None:
            raise exception.InvalidInput(reason="'size' is required")
        if source_size is None:
            # The type's extra specs must match the chosen host's capabilities.
            specs = extra_specs
            if specs is None:
                specs = (self.db.volume_type_get(volume_type_id).extra_specs or {}
                         if volume_type_id is not None else {})
            try:
                host = self.scheduler.choose_host(size, specs)
            except exception.NoValidHost as error:
                host, reason = None, str(error)
        volume = self.db.volume_create(
            project_id=ctx.project_id, user_id=ctx.user_id, size=size,
            display_name=name, display_description=description, metadata=metadata,
            availability_zone=zone, volume_type=volume_type, snapshot_id=snapshot_id,
            host=host, status=states.CREATING if host else states.ERROR,
            status_reason=reason, hold_quota=host is not None,
            volume_type_id=volume_type_id, source_volid=source_volid,
            multiattach=multiattach)
        if host is None:
            LOG.warning("Volume %s could not be scheduled: %s", volume.id, reason)
        return volume, host

    def _cast_create(self, ctx: RequestContext, volume: models.Volume,
                     host: str | None) -> None:
        """The create's cast, once its row is committed (none for a row born in error)."""
        if host is None:
            return
        self._cast(ctx, "create_volume", volume.id,
                   lambda: self.rpcapi.create_volume(ctx, host, volume.id,
                                                     snapshot_id=volume.snapshot_id,
                                                     source_volid=volume.source_volid))

    def delete_volume(self, ctx: RequestContext, volume_id: str) -> None:
        def write() -> str | None:
            """The host to cast to; None when the row was destroyed here."""
            volume = self.db.volume_get(volume_id, scope(ctx), attachments=False)
            removed = (volume.host is not None
                       and self.scheduler.removed_else_require_up(volume.host))
            self.db.volume_transition_or_raise(
                volume_id, states.CAN_DELETE_FROM,
                {"status": states.DELETING, "status_reason": None,
                 "recovery_attempts": 0},
                project_id=scope(ctx), no_attachments=True, no_snapshots=True)
            if volume.host is None or removed:
                # Never scheduled, or its host was given up (volmgr-manage service
                # remove): nothing exists on any backend a manager can reach, and no
                # manager owns it.
                self.db.volume_destroy(volume_id)
                return None
            return volume.host
        # The read, the host check and the guarded write are one transaction.
        host = self.db.run_together(write)
        if host is not None:
            self._cast(ctx, "delete_volume", volume_id,
                       lambda: self.rpcapi.delete_volume(ctx, host, volume_id))

    def extend_volume(self, ctx: RequestContext, volume_id: str, new_size: int, *,
                      allow_in_use: bool = False) -> None:
        """Grow a volume; ``allow_in_use`` (a v3 request at 3.42 or later) lets an attached
        volume grow too, its live LUN showing the new size."""
        from_statuses: tuple[str, ...] = states.CAN_EXTEND_FROM
        if allow_in_use:
            from_statuses = states.CAN_EXTEND_ATTACHED_FROM
            current = self.db.volume_get(volume_id, scope(ctx))
            self._require_up(current.host)
            if current.status == states.IN_USE:
                self.rpcapi.require_version("extend_volume",
                                            rpcapi_mod.EXTEND_ATTACHED_VERSION)
        else:
            self._require_up(self.db.volume_get(volume_id, scope(ctx)).host)
        volume = self.db.volume_begin_extend(volume_id, new_size, project_id=scope(ctx),
                                             from_statuses=from_statuses)
        host = volume.host
        if host is None:  # pragma: no cover - only available volumes extend, and they have one
            raise exception.InvalidVolume(reason="the volume is not placed on any host")
        self._cast(ctx, "extend_volume", volume_id,
                   lambda: self.rpcapi.extend_volume(ctx, host, volume_id, new_size))

    # -- attachments ---------------------------------------------------------------

    def attach(self, ctx: RequestContext, server_id: str, volume_id: str, *,
               device: str | None, connector: Mapping[str, Any] | None) -> models.VolumeAttachment:
        volume = self.db.volume_get(volume_id, scope(ctx))
        self._require_up(volume.host)
        attachment = self.db.attachment_begin(volume_id, server_id=server_id, device=device,
                                              connector=connector, project_id=scope(ctx))
        host = volume.host
        if host is None:  # pragma: no cover - attach needs available, which needs a host
            raise exception.InvalidVolume(reason="the volume is not placed on any host")
        self._cast(ctx, "attach_volume", volume_id,
                   lambda: self.rpcapi.attach_volume(ctx, host, volume_id, attachment.id))
        return attachment

    def detach(self, ctx: RequestContext, server_id: str, volume_id: str) -> None:
        volume = self.db.volume_get(volume_id, scope(ctx))
        self._require_up(volume.host)
        attachment = self.db.detach_begin(volume_id, server_id, project_id=scope(ctx))
        host = volume.host
        if host is None:  # pragma: no cover - an attached volume has a host
            raise exception.InvalidVolume(reason="the volume is not placed on any host")
        self._cast(ctx, "detach_volume", volume_id,
                   lambda: self.rpcapi.detach_volume(ctx, host, volume_id, attachment.id))

    # -- snapshots -----------------------------------------------------------------

    def create_snapshot(self, ctx: RequestContext, volume_id: str, *,
                        name: str | None = None, description: str | None = None,
                        metadata: Mapping[str, str] | None = None,
                        force: bool = False) -> models.Snapshot:
        volume = self.db.volume_get(volume_id, scope(ctx))
        if volume.status == states.IN_USE and not force:
            raise exception.VolumeStatusConflict(
                volume_id=volume_id, status=volume.status,
                expected=f"{states.AVAILABLE} (or in-use with force=true)")
        self._require_up(volume.host)
        snapshot = self.db.snapshot_create(
            volume_id, project_id=volume.project_id, user_id=ctx.user_id,
            display_name=name, display_description=description, metadata=metadata)
        host = snapshot.host
        if host is None:  # pragma: no cover - snapshottable volumes have a host
            raise exception.InvalidVolume(reason="the volume is not placed on any host")
        self._cast(ctx, "create_snapshot", snapshot.id,
                   lambda: self.rpcapi.create_snapshot(ctx, host, snapshot.id))
        return snapshot

    def delete_snapshot(self, ctx: RequestContext, snapshot_id: str) -> None:
        snapshot = self.db.snapshot_get(snapshot_id, scope(ctx))
        removed = (snapshot.host is not None
                   and self.scheduler.removed_else_require_up(snapshot.host))
        self.db.snapshot_transition_or_raise(
            snapshot_id, states.SNAP_CAN_DELETE_FROM,
            {"status": states.SNAP_DELETING, "status_reason": None, "recovery_attempts": 0},
            project_id=scope(ctx), no_volume_being_made=True)
        host = snapshot.host
        if host is None or removed:  # its host given up (snapshots inherit their volume's)
            self.db.snapshot_destroy(snapshot_id)
            return
        self._cast(ctx, "delete_snapshot", snapshot_id,
                   lambda: self.rpcapi.delete_snapshot(ctx, host, snapshot_id))

    # -- helpers -------------------------------------------------------------------

    def require_up(self, host: str | None) -> None:
        """503 naming the host, before anything is written, when the manager that owns
        the resource is down (a row without a host has no manager to wait for)."""
        if host is not None:
            self.scheduler.require_up(host)

    _require_up = require_up

    @staticmethod
    def _cast(ctx: RequestContext, method: str, resource_id: str,
              send: Callable[[], None]) -> None:
        cast_after_write(ctx, method, resource_id, send)


def cast_after_write(ctx: RequestContext, method: str, resource_id: str,
                     send: Callable[[], None]) -> None:
    """Send a cast whose row is already written; a failure is logged, not raised
    (the manager's recovery re-drives the row, see the module docstring)."""
    try:
        send()
    except Exception as error:  # any bus failure is recoverable
        LOG.warning("%s: cast %s for %s failed (%s: %s); the row stays in its "
                    "transitional status and the manager's recovery will re-drive "
                    "it", ctx.request_id, method, resource_id,
                    type(error).__name__, error)
