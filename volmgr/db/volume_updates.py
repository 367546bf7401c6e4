"""What the Block Storage v3 face changes on volume and snapshot rows besides their
status: names, descriptions, flags, metadata (read-modify-write under the row lock),
cascade delete, and the admin's status reset.

None of this needs the storage host, so it happens here, in one transaction each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from volmgr import exception, states
from volmgr.db import models
from volmgr.db.core import DatabaseCore, conditional_update
from volmgr.db.snapshots import get_snapshot
from volmgr.db.volumes import (
    get_volume,
    lock_volume,
    no_live_attachments,
    release_extend_reservation,
    transition_or_raise,
)

_volumes = models.table(models.Volume)
_snapshots = models.table(models.Snapshot)
_attachments = models.table(models.VolumeAttachment)

#: Volume columns a v3 caller may set directly (status never: that is the state
#: machine's job).
VOLUME_FIELDS = frozenset({"display_name", "display_description", "bootable"})
#: JSON columns changed with ``volume_change_json``.
VOLUME_JSON_COLUMNS = frozenset({"metadata_", "admin_metadata", "image_metadata"})
SNAPSHOT_FIELDS = frozenset({"display_name", "display_description"})

JsonChange = Callable[[dict[str, Any]], dict[str, Any]]


def _lock_snapshot(session: Session, snapshot_id: str) -> None:
    session.execute(sa.select(_snapshots.c.id).where(_snapshots.c.id == snapshot_id)
                    .with_for_update())


class VolumeUpdateQueries(DatabaseCore):
    """Field updates, metadata, cascade delete and status resets for the v3 face."""

    def volume_set_fields(self, volume_id: str, values: Mapping[str, Any], *,
                          project_id: str | None = None) -> models.Volume:
        """Set plain fields of a live volume (``VOLUME_FIELDS``); VolumeNotFound when it
        is not the caller's."""
        unknown = set(values) - VOLUME_FIELDS
        if unknown:  # pragma: no cover - a programming error, not user input
            raise ValueError(f"not settable here: {sorted(unknown)}")

        def work(session: Session) -> models.Volume:
            volume = get_volume(session, volume_id, project_id)
            if values:
                conditional_update(session, models.Volume, volume_id, values)
                session.expire(volume)
            return get_volume(session, volume_id)
        return self.run(work)

    def volume_change_json(self, volume_id: str, column: str, change: JsonChange, *,
                           project_id: str | None = None) -> dict[str, Any]:
        """Apply ``change`` to a JSON column under the row lock (two concurrent metadata
        updates never lose each other's keys); returns the new value."""
        if column not in VOLUME_JSON_COLUMNS:  # pragma: no cover - programming error
            raise ValueError(column)

        def work(session: Session) -> dict[str, Any]:
            lock_volume(session, volume_id)
            volume = get_volume(session, volume_id, project_id)
            new = change(dict(getattr(volume, column) or {}))
            conditional_update(session, models.Volume, volume_id, {column: new})
            return new
        return self.run(work)

    def snapshot_set_fields(self, snapshot_id: str, values: Mapping[str, Any], *,
                            project_id: str | None = None) -> models.Snapshot:
        unknown = set(values) - SNAPSHOT_FIELDS
        if unknown:  # pragma: no cover - programming error
            raise ValueError(f"not settable here: {sorted(unknown)}")

        def work(session: Session) -> models.Snapshot:
            snapshot = get_snapshot(session, snapshot_id, project_id)
            if values:
                conditional_update(session, models.Snapshot, snapshot_id, values)
                session.expire(snapshot)
            return get_snapshot(session, snapshot_id)
        return self.run(work)

    def snapshot_change_metadata(self, snapshot_id: str, change: JsonChange, *,
                                 project_id: str | None = None) -> dict[str, Any]:
        def work(session: Session) -> dict[str, Any]:
            _lock_snapshot(session, snapshot_id)
            snapshot = get_snapshot(session, snapshot_id, project_id)
            new = change(dict(snapshot.metadata_ or {}))
            conditional_update(session, models.Snapshot, snapshot_id, {"metadata_": new})
            return new
        return self.run(work)

    def volume_cascade_delete_begin(self, volume_id: str, *,
                                    project_id: str | None = None,
                                    ) -> tuple[models.Volume, list[models.Snapshot]]:
        """Move a detached volume and every live snapshot of it to ``deleting`` in one
        transaction: all of them or none (a snapshot busy being made, or being used to
        make a volume, refuses the whole request)."""
        def work(session: Session) -> tuple[models.Volume, list[models.Snapshot]]:
            lock_volume(session, volume_id)
            snapshots = list(session.execute(sa.select(models.Snapshot).where(
                models.Snapshot.volume_id == volume_id,
                models.Snapshot.deleted == sa.false())).scalars())
            for snapshot in snapshots:
                if snapshot.status not in states.SNAP_CAN_DELETE_FROM:
                    raise exception.SnapshotStatusConflict(
                        snapshot_id=snapshot.id, status=snapshot.status,
                        expected=", ".join(states.SNAP_CAN_DELETE_FROM))
                being_made = session.execute(sa.select(sa.func.count()).select_from(
                    _volumes).where(_volumes.c.snapshot_id == snapshot.id,
                                    _volumes.c.deleted == sa.false(),
                                    _volumes.c.status == states.CREATING)).scalar_one()
                if being_made:
                    raise exception.SnapshotInUse(snapshot_id=snapshot.id)
            transition_or_raise(session, volume_id, states.CAN_DELETE_FROM,
                                {"status": states.DELETING, "status_reason": None,
                                 "recovery_attempts": 0},
                                project_id=project_id, where=(no_live_attachments(),))
            for snapshot in snapshots:
                conditional_update(session, models.Snapshot, snapshot.id,
                                   {"status": states.SNAP_DELETING, "status_reason": None,
                                    "recovery_attempts": 0})
                session.expire(snapshot)
            return get_volume(session, volume_id), [
                get_snapshot(session, s.id) for s in snapshots]
        return self.run(work)

    def volume_reset_status(self, volume_id: str, *, status: str | None,
                            attach_status: str | None = None,
                            migration_status: str | None = None,
                            reason: str = "status reset by an administrator",
                            ) -> models.Volume:
        """The admin's override: set the status (and close the attachments when
        ``attach_status`` is ``detached``) whatever it was. Leaving ``extending`` gives
        back what the extend reserved."""
        def work(session: Session) -> models.Volume:
            lock_volume(session, volume_id)
            volume = get_volume(session, volume_id)
            values: dict[str, Any] = {}
            if status is not None:
                values.update(status=status, recovery_attempts=0, target_size=None,
                              status_reason=reason if status.startswith("error") else None)
                if status != states.EXTENDING:
                    release_extend_reservation(session, volume)
            if migration_status is not None:
                values["migration_status"] = migration_status
            if values:
                conditional_update(session, models.Volume, volume_id, values)
            if attach_status == states.ATTACH_DETACHED:
                now = models.utcnow()
                session.execute(sa.update(_attachments).where(
                    _attachments.c.volume_id == volume_id,
                    _attachments.c.deleted == sa.false(),
                ).values(attach_status=states.ATTACH_DETACHED, detached_at=now,
                         deleted=True, deleted_at=now, updated_at=now))
            elif attach_status is not None:
                session.execute(sa.update(_attachments).where(
                    _attachments.c.volume_id == volume_id,
                    _attachments.c.deleted == sa.false(),
                ).values(attach_status=attach_status, updated_at=models.utcnow()))
            session.expire(volume)
            return get_volume(session, volume_id)
        return self.run(work)

    def snapshot_reset_status(self, snapshot_id: str, status: str,
                              reason: str = "status reset by an administrator",
                              ) -> models.Snapshot:
        def work(session: Session) -> models.Snapshot:
            snapshot = get_snapshot(session, snapshot_id)
            conditional_update(session, models.Snapshot, snapshot_id,
                               {"status": status, "recovery_attempts": 0,
                                "status_reason": reason if status.startswith("error")
                                else None})
            session.expire(snapshot)
            return get_snapshot(session, snapshot_id)
        return self.run(work)
