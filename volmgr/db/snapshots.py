"""Snapshot rows: created under quota while their volume is guarded, soft-deleted with
quota release, and the recovery queries."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from volmgr import exception, states
from volmgr.db import models, quota
from volmgr.db.core import (
    NEWEST_FIRST,
    DatabaseCore,
    SortOrder,
    conditional_update,
    list_live,
)
from volmgr.db.volumes import get_volume

_snapshots = models.table(models.Snapshot)
_volumes = models.table(models.Volume)


@functools.cache
def _snapshot_ids_statement() -> sa.Select[Any]:
    return (sa.select(_snapshots.c.id)
            .where(_snapshots.c.volume_id == sa.bindparam("volume_id"),
                   _snapshots.c.status == sa.bindparam("status"),
                   _snapshots.c.deleted == sa.false())
            .order_by(_snapshots.c.created_at, _snapshots.c.id))


def get_snapshot(session: Session, snapshot_id: str,
                 project_id: str | None = None) -> models.Snapshot:
    query = sa.select(models.Snapshot).where(models.Snapshot.id == snapshot_id,
                                             models.Snapshot.deleted == sa.false())
    if project_id is not None:
        query = query.where(models.Snapshot.project_id == project_id)
    snapshot = session.execute(query).scalar_one_or_none()
    if snapshot is None:
        raise exception.SnapshotNotFound(snapshot_id=snapshot_id)
    return snapshot


class SnapshotQueries(DatabaseCore):
    """Everything the API, the manager and the CLI do to snapshot rows."""

    def snapshot_create(self, volume_id: str, *, project_id: str, user_id: str,
                        display_name: str | None = None,
                        display_description: str | None = None,
                        metadata: Mapping[str, str] | None = None,
                        status: str = states.SNAP_CREATING,
                        size: int | None = None) -> models.Snapshot:
        """Insert a ``creating`` snapshot while the volume is in a snapshottable status
        (``managing`` with the ``size`` the storage reported, for an adopted one).

        The volume row is touched with a guarded UPDATE first: that locks it, so a
        concurrent delete (which requires "no snapshots") cannot slip in between.
        """
        def work(session: Session) -> models.Snapshot:
            volume = get_volume(session, volume_id, project_id)
            if not conditional_update(session, models.Volume, volume_id, {},
                                      expected_status=states.CAN_SNAPSHOT_FROM):
                raise exception.VolumeStatusConflict(
                    volume_id=volume_id, status=volume.status,
                    expected=", ".join(states.CAN_SNAPSHOT_FROM))
            snapshot_size = volume.size if size is None else size
            quota.reserve(session, self.quota_limits, project_id,
                          {quota.SNAPSHOTS: 1, quota.GIGABYTES: snapshot_size})
            snapshot = models.Snapshot(
                volume_id=volume_id, project_id=project_id, user_id=user_id,
                size=snapshot_size, status=status, host=volume.host,
                display_name=display_name, display_description=display_description,
                metadata_=dict(metadata or {}), recovery_attempts=0)
            session.add(snapshot)
            session.flush()
            session.refresh(snapshot)
            return snapshot
        return self.run(work)

    def snapshot_get(self, snapshot_id: str, project_id: str | None = None) -> models.Snapshot:
        return self.run(lambda s: get_snapshot(s, snapshot_id, project_id))

    def snapshot_list(self, project_id: str | None = None, *,
                      filters: Mapping[str, Any] | None = None,
                      limit: int | None = None, marker: str | None = None,
                      offset: int = 0, sort: SortOrder = NEWEST_FIRST,
                      row_filter: Callable[[models.Snapshot], bool] | None = None,
                      ) -> list[models.Snapshot]:
        """Live snapshots, newest first unless ``sort`` says otherwise; ``filters`` are
        column equalities; ``marker`` as for ``volume_list``."""
        def work(session: Session) -> list[models.Snapshot]:
            anchor = (get_snapshot(session, marker, project_id) if marker is not None
                      else None)
            return list_live(session, models.Snapshot, project_id=project_id,
                             filters=filters, anchor=anchor, limit=limit, offset=offset,
                             sort=sort, row_filter=row_filter)
        return self.run(work)

    def snapshot_ids_of(self, volume_id: str, status: str) -> list[str]:
        """Ids of the volume's live snapshots in ``status``, oldest first: one indexed
        SELECT of one column (a volume's delete asks it every time)."""
        return self.run(lambda session: list(session.execute(
            _snapshot_ids_statement(), {"volume_id": volume_id, "status": status}
        ).scalars()))

    def snapshot_transition(self, snapshot_id: str, expected: Sequence[str],
                            values: Mapping[str, Any]) -> bool:
        return self.run(lambda s: conditional_update(
            s, models.Snapshot, snapshot_id, values, expected_status=tuple(expected)))

    def snapshot_transition_or_raise(self, snapshot_id: str, expected: Sequence[str],
                                     values: Mapping[str, Any], *,
                                     project_id: str | None = None,
                                     no_volume_being_made: bool = False) -> None:
        """Guarded snapshot transition; a Conflict naming the current status when lost.
        ``no_volume_being_made`` also refuses while a volume is being created from the
        snapshot (its data would be read while the snapshot is removed)."""
        def work(session: Session) -> None:
            where: tuple[sa.ColumnElement[bool], ...] = ()
            if no_volume_being_made:
                # Lock first, so the guard below sees a volume inserted by a create that
                # held the snapshot until it committed (see volumes._hold_snapshot_source).
                session.execute(sa.select(_snapshots.c.id)
                                .where(_snapshots.c.id == snapshot_id).with_for_update())
                where = (~sa.exists().where(
                    _volumes.c.snapshot_id == _snapshots.c.id,
                    _volumes.c.status == states.CREATING,
                    _volumes.c.deleted == sa.false()),)
            snapshot = get_snapshot(session, snapshot_id, project_id)
            if conditional_update(session, models.Snapshot, snapshot_id, values,
                                  expected_status=tuple(expected), where=where):
                return
            if snapshot.status not in expected:
                raise exception.SnapshotStatusConflict(
                    snapshot_id=snapshot_id, status=snapshot.status,
                    expected=", ".join(expected))
            raise exception.SnapshotInUse(snapshot_id=snapshot_id)
        self.run(work)

    def snapshot_destroy(self, snapshot_id: str,
                         expected: Sequence[str] = (states.SNAP_DELETING,)) -> bool:
        """Soft-delete and release quota, if the snapshot is still in ``expected``."""
        def work(session: Session) -> bool:
            try:
                snapshot = get_snapshot(session, snapshot_id)
            except exception.SnapshotNotFound:
                return False
            won = conditional_update(session, models.Snapshot, snapshot_id,
                                     {"deleted": True, "deleted_at": models.utcnow()},
                                     expected_status=tuple(expected))
            if won:
                quota.release(session, snapshot.project_id,
                              {quota.SNAPSHOTS: 1, quota.GIGABYTES: snapshot.size})
            return won
        return self.run(work)

    def snapshots_stuck(self, host: str,
                        older_than: datetime.datetime) -> list[models.Snapshot]:
        def work(session: Session) -> list[models.Snapshot]:
            query = sa.select(models.Snapshot).where(
                models.Snapshot.deleted == sa.false(), models.Snapshot.host == host,
                models.Snapshot.status.in_(tuple(states.SNAPSHOT_TRANSITIONAL)),
                models.Snapshot.status_changed_at <= older_than,
            ).order_by(models.Snapshot.status_changed_at)
            return list(session.execute(query).scalars())
        return self.run(work)

    def snapshot_claim_recovery(self, snapshot_id: str, status: str,
                                older_than: datetime.datetime) -> int | None:
        """Like ``volume_claim_recovery``, for snapshots."""
        def work(session: Session) -> int | None:
            won = conditional_update(
                session, models.Snapshot, snapshot_id,
                {"recovery_attempts": _snapshots.c.recovery_attempts + 1,
                 "status_changed_at": models.utcnow()},
                expected_status=(status,),
                where=(_snapshots.c.status_changed_at <= older_than,))
            if not won:
                return None
            return get_snapshot(session, snapshot_id).recovery_attempts
        return self.run(work)
