"""Queries only the operator CLI (volmgr-manage) needs: listing with deleted rows, bulk
lookups by id for reconcile, and the force-delete transition.

These bypass the normal state machine on purpose (an operator override), but each is
still one transaction; nothing here is reachable from the API.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from volmgr import exception, states
from volmgr.db import models
from volmgr.db.core import DatabaseCore, conditional_update
from volmgr.db.volumes import get_volume, lock_volume, release_extend_reservation

_attachments = models.table(models.VolumeAttachment)

# Stay well under every backend's bound-parameter limit (SQLite: 32766, older: 999).
_ID_CHUNK = 500

FORCE_DELETE_REASON = "force-deleted by operator"


class AdminQueries(DatabaseCore):
    """Operator-only reads and overrides."""

    def volume_list_admin(self, *, include_deleted: bool = False, host: str | None = None,
                          status: str | None = None,
                          name: str | None = None) -> list[models.Volume]:
        """Volumes of every project, oldest first; soft-deleted rows too when asked;
        only those named ``name`` (display name) when given."""
        def work(session: Session) -> list[models.Volume]:
            query = sa.select(models.Volume)
            if not include_deleted:
                query = query.where(models.Volume.deleted == sa.false())
            if host is not None:
                query = query.where(models.Volume.host == host)
            if status is not None:
                query = query.where(models.Volume.status == status)
            if name is not None:
                query = query.where(models.Volume.display_name == name)
            query = query.order_by(models.Volume.created_at, models.Volume.id)
            return list(session.execute(query).scalars())
        return self.run(work)

    def volumes_by_ids(self, volume_ids: Iterable[str]) -> dict[str, models.Volume]:
        """Live volumes among ``volume_ids`` (any host), keyed by id."""
        ids = sorted(set(volume_ids))

        def work(session: Session) -> dict[str, models.Volume]:
            found: dict[str, models.Volume] = {}
            for start in range(0, len(ids), _ID_CHUNK):
                chunk = ids[start:start + _ID_CHUNK]
                query = sa.select(models.Volume).where(models.Volume.deleted == sa.false(),
                                                       models.Volume.id.in_(chunk))
                for volume in session.execute(query).scalars():
                    found[volume.id] = volume
            return found
        return self.run(work)

    def snapshots_by_ids(self, snapshot_ids: Iterable[str]) -> dict[str, models.Snapshot]:
        """Live snapshots among ``snapshot_ids`` (any host), keyed by id."""
        ids = sorted(set(snapshot_ids))

        def work(session: Session) -> dict[str, models.Snapshot]:
            found: dict[str, models.Snapshot] = {}
            for start in range(0, len(ids), _ID_CHUNK):
                query = sa.select(models.Snapshot).where(
                    models.Snapshot.deleted == sa.false(),
                    models.Snapshot.id.in_(ids[start:start + _ID_CHUNK]))
                for snapshot in session.execute(query).scalars():
                    found[snapshot.id] = snapshot
            return found
        return self.run(work)

    def volume_force_delete_begin(self, volume_id: str,
                                  reason: str = FORCE_DELETE_REASON) -> models.Volume:
        """Move a volume to ``deleting`` from any status and close its attachments, in
        one transaction. Refuses (VolumeHasSnapshots) while live snapshots depend on it,
        because the backend could not remove the volume anyway."""
        def work(session: Session) -> models.Volume:
            lock_volume(session, volume_id)
            volume = get_volume(session, volume_id)
            has_snapshots = session.execute(sa.select(sa.func.count()).select_from(
                models.Snapshot).where(models.Snapshot.volume_id == volume_id,
                                       models.Snapshot.deleted == sa.false())).scalar_one()
            if has_snapshots:
                raise exception.VolumeHasSnapshots(volume_id=volume_id)
            now = models.utcnow()
            session.execute(sa.update(_attachments).where(
                _attachments.c.volume_id == volume_id,
                _attachments.c.deleted == sa.false(),
            ).values(attach_status=states.ATTACH_DETACHED, detached_at=now,
                     deleted=True, deleted_at=now, updated_at=now))
            release_extend_reservation(session, volume)
            conditional_update(session, models.Volume, volume_id,
                               {"status": states.DELETING, "status_reason": reason,
                                "recovery_attempts": 0, "target_size": None})
            session.expire(volume)
            return get_volume(session, volume_id)
        return self.run(work)

    def volume_reset_state(self, volume_id: str, from_status: str, to_status: str,
                           reason: str) -> bool:
        """The operator's override: ``from_status`` → ``to_status`` with a reason, if the
        row has not moved meanwhile. Leaving ``extending`` gives back what the extend
        reserved, so quota does not leak."""
        def work(session: Session) -> bool:
            lock_volume(session, volume_id)
            volume = get_volume(session, volume_id)
            won = conditional_update(session, models.Volume, volume_id,
                                     {"status": to_status, "status_reason": reason,
                                      "recovery_attempts": 0, "target_size": None},
                                     expected_status=(from_status,))
            if won and to_status != states.EXTENDING:
                release_extend_reservation(session, volume)
            return won
        return self.run(work)
