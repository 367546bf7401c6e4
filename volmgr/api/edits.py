"""Changes to volumes and snapshots that the Block Storage v3 face adds: rename,
metadata, flags, cascade and forced delete, and the admin's status reset.

Like ``operations``, each is one guarded database write followed, where storage must
change, by a cast; nothing here waits on a manager.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from volmgr import exception, states
from volmgr.api.operations import ApiOperations, CastingAPI, cast_after_write, scope
from volmgr.context import RequestContext
from volmgr.db import Database, models

LOG = logging.getLogger(__name__)

MetadataChange = Callable[[dict[str, Any]], dict[str, Any]]


def merge(new: Mapping[str, str]) -> MetadataChange:
    return lambda old: {**old, **new}


def replace(new: Mapping[str, str]) -> MetadataChange:
    return lambda old: dict(new)


def set_key(key: str, value: str) -> MetadataChange:
    return lambda old: {**old, key: value}


def delete_keys(keys: list[str], *, missing: Callable[[str], Exception]) -> MetadataChange:
    """Remove ``keys``; ``missing(key)`` is raised (and nothing changes) when a key is
    not there."""
    def change(old: dict[str, Any]) -> dict[str, Any]:
        for key in keys:
            if key not in old:
                raise missing(key)
        return {k: val for k, val in old.items() if k not in keys}
    return change


class VolumeEdits:
    """The v3 face's field, metadata and admin changes."""

    def __init__(self, ops: ApiOperations) -> None:
        self.ops = ops
        self.db: Database = ops.db
        self.rpcapi: CastingAPI = ops.rpcapi

    # -- volumes -------------------------------------------------------------------

    def update_volume(self, ctx: RequestContext, volume_id: str,
                      fields: Mapping[str, Any],
                      metadata: Mapping[str, str] | None) -> models.Volume:
        if metadata is not None:
            self.db.volume_change_json(volume_id, "metadata_", replace(metadata),
                                       project_id=scope(ctx))
        return self.db.volume_set_fields(volume_id, fields, project_id=scope(ctx))

    def change_metadata(self, ctx: RequestContext, volume_id: str, change: MetadataChange,
                        column: str = "metadata_") -> dict[str, Any]:
        return self.db.volume_change_json(volume_id, column, change, project_id=scope(ctx))

    def set_readonly(self, ctx: RequestContext, volume_id: str, readonly: bool) -> None:
        volume = self.db.volume_get(volume_id, scope(ctx))
        if volume.status not in (states.AVAILABLE, states.IN_USE):
            raise exception.VolumeStatusConflict(volume_id=volume_id, status=volume.status,
                                                 expected="available, in-use")
        self.change_metadata(ctx, volume_id, set_key("readonly", str(readonly)),
                             column="admin_metadata")

    def cascade_delete(self, ctx: RequestContext, volume_id: str) -> None:
        """Delete a volume and its snapshots: every snapshot's delete is cast before the
        volume's, and the manager runs one volume's work in arrival order."""
        self.ops.require_up(self.db.volume_get(volume_id, scope(ctx)).host)
        volume, snapshots = self.db.volume_cascade_delete_begin(volume_id,
                                                                project_id=scope(ctx))
        host = volume.host
        for snapshot in snapshots:
            if snapshot.host is None:  # pragma: no cover - snapshots have their volume's host
                self.db.snapshot_destroy(snapshot.id)
                continue
            cast_after_write(ctx, "delete_snapshot", snapshot.id, functools.partial(
                self.rpcapi.delete_snapshot, ctx, snapshot.host, snapshot.id))
        if host is None:
            self.db.volume_destroy(volume_id)
            return
        cast_after_write(ctx, "delete_volume", volume_id,
                         lambda: self.rpcapi.delete_volume(ctx, host, volume_id))

    def force_delete(self, ctx: RequestContext, volume_id: str) -> None:
        """The admin's delete from any status (attachments closed first)."""
        self.db.volume_get(volume_id)
        volume = self.db.volume_force_delete_begin(
            volume_id, reason=f"force-deleted by an administrator ({ctx.request_id})")
        host = volume.host
        if host is None:
            self.db.volume_destroy(volume_id)
            return
        cast_after_write(ctx, "delete_volume", volume_id,
                         lambda: self.rpcapi.delete_volume(ctx, host, volume_id))

    def reset_status(self, ctx: RequestContext, volume_id: str, *, status: str | None,
                     attach_status: str | None, migration_status: str | None,
                     ) -> models.Volume:
        LOG.info("%s: %s resets volume %s to status=%s attach_status=%s",
                 ctx.request_id, ctx.user_id, volume_id, status, attach_status)
        return self.db.volume_reset_status(
            volume_id, status=status, attach_status=attach_status,
            migration_status=migration_status,
            reason=f"status reset by an administrator ({ctx.request_id})")

    # -- snapshots -----------------------------------------------------------------

    def update_snapshot(self, ctx: RequestContext, snapshot_id: str,
                        fields: Mapping[str, Any]) -> models.Snapshot:
        return self.db.snapshot_set_fields(snapshot_id, fields, project_id=scope(ctx))

    def change_snapshot_metadata(self, ctx: RequestContext, snapshot_id: str,
                                 change: MetadataChange) -> dict[str, Any]:
        return self.db.snapshot_change_metadata(snapshot_id, change, project_id=scope(ctx))

    def force_delete_snapshot(self, ctx: RequestContext, snapshot_id: str) -> None:
        """The admin's delete of a snapshot from any status."""
        snapshot = self.db.snapshot_reset_status(
            snapshot_id, states.SNAP_DELETING,
            reason=f"force-deleted by an administrator ({ctx.request_id})")
        host = snapshot.host
        if host is None:  # pragma: no cover - snapshots have their volume's host
            self.db.snapshot_destroy(snapshot_id)
            return
        cast_after_write(ctx, "delete_snapshot", snapshot_id, functools.partial(
            self.rpcapi.delete_snapshot, ctx, host, snapshot_id))

    def reset_snapshot_status(self, ctx: RequestContext, snapshot_id: str,
                              status: str) -> models.Snapshot:
        LOG.info("%s: %s resets snapshot %s to status=%s", ctx.request_id, ctx.user_id,
                 snapshot_id, status)
        return self.db.snapshot_reset_status(
            snapshot_id, status,
            reason=f"status reset by an administrator ({ctx.request_id})")
