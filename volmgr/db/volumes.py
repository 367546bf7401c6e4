"""Volume rows: create with quota, read with project scoping, guarded transitions,
soft delete with quota release, and the queries recovery needs."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from volmgr import exception, states
from volmgr.db import messages, models, quota
from volmgr.db.core import (
    NEWEST_FIRST,
    DatabaseCore,
    SortOrder,
    conditional_update,
    insert_new,
    list_live,
)

_volumes = models.table(models.Volume)
_attachments = models.table(models.VolumeAttachment)
_snapshots = models.table(models.Snapshot)


@functools.cache
def no_live_attachments() -> sa.ColumnElement[bool]:
    return ~sa.exists().where(_attachments.c.volume_id == _volumes.c.id,
                              _attachments.c.deleted == sa.false())


@functools.cache
def no_live_snapshots() -> sa.ColumnElement[bool]:
    return ~sa.exists().where(_snapshots.c.volume_id == _volumes.c.id,
                              _snapshots.c.deleted == sa.false())


def lock_volume(session: Session, volume_id: str) -> None:
    """Take the volume row's write lock before reading what a guard depends on.

    Under READ COMMITTED a blocked ``UPDATE ... WHERE NOT EXISTS (...)`` re-checks only
    its own row once the lock frees, with the subquery still seeing the old data; locking
    first and then running the guarded statement gives that statement a fresh view.
    (SQLite serializes writers with BEGIN IMMEDIATE and needs no row lock.)
    """
    session.execute(sa.select(_volumes.c.id).where(_volumes.c.id == volume_id)
                    .with_for_update())


def release_extend_reservation(session: Session, volume: models.Volume) -> None:
    """Give back the GiB an unfinished extend reserved (``target_size - size``); every
    way out of ``extending`` other than success goes through here."""
    if volume.status == states.EXTENDING and volume.target_size \
            and volume.target_size > volume.size:
        quota.release(session, volume.project_id,
                      {quota.GIGABYTES: volume.target_size - volume.size})


def get_volume(session: Session, volume_id: str, project_id: str | None = None, *,
               attachments: bool = True) -> models.Volume:
    volume = session.execute(_volume_statement(attachments, project_id is not None),
                             {"volume_id": volume_id, "project_id": project_id}
                             ).scalar_one_or_none()
    if volume is None:
        raise exception.VolumeNotFound(volume_id=volume_id)
    return volume


@functools.cache
def _volume_statement(attachments: bool, scoped: bool) -> sa.Select[Any]:
    """A live volume by id (parameter ``volume_id``), of the project in parameter
    ``project_id`` when ``scoped``; its attachments raise-loaded unless
    ``attachments``. Built once per shape."""
    query = sa.select(models.Volume).where(models.Volume.id == sa.bindparam("volume_id"),
                                           models.Volume.deleted == sa.false())
    if not attachments:
        query = query.options(sa.orm.raiseload(models.Volume.attachments))
    if scoped:
        query = query.where(models.Volume.project_id == sa.bindparam("project_id"))
    return query


#: What a volume's entry in a listing shows of each of its attachments.
_ATTACHED_COLUMNS = ("id", "volume_id", "server_id", "connector", "device", "attached_at")


@functools.cache
def _attached_statement(postgresql_ids: bool) -> sa.Select[Any]:
    table = models.table(models.VolumeAttachment)
    query = sa.select(*(table.c[name] for name in _ATTACHED_COLUMNS)).where(
        table.c.deleted == sa.false(), table.c.attach_status == states.ATTACH_ATTACHED
    ).order_by(table.c.created_at, table.c.id)
    if postgresql_ids:
        # The ids travel as one text parameter, split by the server: an IN list of 1,000
        # placeholders, or an array parameter of 1,000 elements, cost the API more CPU
        # to build and send than the rest of the query.
        return query.where(table.c.volume_id == sa.any_(sa.func.string_to_array(
            sa.bindparam("volume_ids", type_=sa.Text), ",")))
    return query.where(table.c.volume_id.in_(sa.bindparam("volume_ids", expanding=True)))


def attached_by_volume(session: Session,
                       volume_ids: Sequence[str]) -> dict[str, list[sa.Row[Any]]]:
    """The live, attached attachments of ``volume_ids`` as rows of _ATTACHED_COLUMNS,
    by volume id, oldest first; one query on PostgreSQL (the ids joined by commas,
    which no volume id holds), elsewhere ``IN`` in batches of 500."""
    if not volume_ids:
        return {}
    connection = session.connection()
    batches: list[tuple[sa.Select[Any], str | list[str]]]
    if connection.dialect.name == "postgresql" and not any("," in i for i in volume_ids):
        batches = [(_attached_statement(True), ",".join(volume_ids))]
    else:
        batches = [(_attached_statement(False), list(volume_ids[start:start + 500]))
                   for start in range(0, len(volume_ids), 500)]
    found: dict[str, list[sa.Row[Any]]] = {}
    for statement, ids in batches:
        for row in connection.execute(statement, {"volume_ids": ids}):
            found.setdefault(row.volume_id, []).append(row)
    return found


@functools.cache
def _encrypted_statement() -> sa.Select[Any]:
    encryption = models.table(models.Encryption)
    return sa.select(encryption.c.volume_type_id).where(
        encryption.c.volume_type_id.in_(sa.bindparam("type_ids", expanding=True)),
        encryption.c.deleted == sa.false())


def encrypted_types(session: Session, type_ids: Iterable[str | None]) -> set[str]:
    """Which of ``type_ids`` have a live encryption record (a volume view's
    ``encrypted``); one query, none when no id is given."""
    wanted = sorted({type_id for type_id in type_ids if type_id})
    if not wanted:
        return set()
    return set(session.execute(_encrypted_statement(), {"type_ids": wanted}).scalars())


class DetailPage(NamedTuple):
    """What a detail listing shows: the page's volumes (read-only rows), each one's
    attached attachments by volume id, and which of their types are encrypted."""

    volumes: list[models.Volume]
    attached: dict[str, list[sa.Row[Any]]]
    encrypted_types: set[str]


def transition_or_raise(session: Session, volume_id: str, expected: Sequence[str],
                        values: Mapping[str, Any], *, project_id: str | None = None,
                        where: tuple[sa.ColumnElement[bool], ...] = ()) -> None:
    """Guarded transition that raises a Conflict naming the current status when lost."""
    if where:
        lock_volume(session, volume_id)
    conditions = list(where)
    if project_id is not None:
        conditions.append(_volumes.c.project_id == project_id)
    if conditional_update(session, models.Volume, volume_id, values,
                          expected_status=tuple(expected), where=tuple(conditions)):
        return
    volume = get_volume(session, volume_id, project_id)
    if volume.status not in expected:
        raise exception.VolumeStatusConflict(volume_id=volume_id, status=volume.status,
                                             expected=", ".join(expected))
    if volume.attachments:
        raise exception.VolumeIsAttached(volume_id=volume_id)
    snapshots = session.execute(sa.select(sa.func.count()).select_from(_snapshots).where(
        _snapshots.c.volume_id == volume_id, _snapshots.c.deleted == sa.false())).scalar()
    if snapshots:
        raise exception.VolumeHasSnapshots(volume_id=volume_id)
    raise exception.InvalidVolume(reason=f"volume {volume_id} is being cloned; try again "
                                  f"when the new volume is available")


def _hold_snapshot_source(session: Session, snapshot_id: str) -> None:
    """Lock the source snapshot and check it is available, in the transaction that
    inserts the volume made from it; a snapshot delete then waits for us, and sees the
    new volume (snapshot_no_volume_being_made guard)."""
    snapshots = models.table(models.Snapshot)
    result = session.execute(sa.update(snapshots).where(
        snapshots.c.id == snapshot_id, snapshots.c.deleted == sa.false(),
        snapshots.c.status == states.SNAP_AVAILABLE).values(updated_at=models.utcnow()))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        status = session.execute(sa.select(snapshots.c.status).where(
            snapshots.c.id == snapshot_id, snapshots.c.deleted == sa.false())).scalar()
        if status is None:
            raise exception.SnapshotNotFound(snapshot_id=snapshot_id)
        raise exception.SnapshotStatusConflict(snapshot_id=snapshot_id, status=status,
                                               expected=states.SNAP_AVAILABLE)


def _hold_source_volume(session: Session, volume_id: str) -> None:
    """Lock the volume being cloned and check it can be read from, in the transaction
    that inserts the clone; its delete then waits for us and sees the clone
    (``no_clone_being_made`` guard)."""
    lock_volume(session, volume_id)
    status = session.execute(sa.select(_volumes.c.status).where(
        _volumes.c.id == volume_id, _volumes.c.deleted == sa.false())).scalar()
    if status is None:
        raise exception.VolumeNotFound(volume_id=volume_id)
    if status not in states.CAN_CLONE_FROM:
        raise exception.VolumeStatusConflict(volume_id=volume_id, status=status,
                                             expected=", ".join(states.CAN_CLONE_FROM))


@functools.cache
def no_clone_being_made() -> sa.ColumnElement[bool]:
    """No volume is being created from this one (its delete must wait)."""
    clones = _volumes.alias("clones")
    return ~sa.exists().where(clones.c.source_volid == _volumes.c.id,
                              clones.c.deleted == sa.false(),
                              clones.c.status == states.CREATING)


class VolumeQueries(DatabaseCore):
    """Everything the API, the manager and the CLI do to volume rows."""

    def volume_create(self, *, project_id: str, user_id: str, size: int,
                      display_name: str | None = None,
                      display_description: str | None = None,
                      metadata: Mapping[str, str] | None = None,
                      availability_zone: str = "nova",
                      volume_type: str | None = None,
                      snapshot_id: str | None = None,
                      host: str | None = None,
                      status: str = states.CREATING,
                      status_reason: str | None = None,
                      hold_quota: bool = True,
                      volume_type_id: str | None = None,
                      source_volid: str | None = None,
                      multiattach: bool = False) -> models.Volume:
        """Reserve quota and insert the row in one transaction; QuotaExceeded reserves
        nothing. ``hold_quota=False`` (a volume born in ``error``, e.g. no host could
        take it) checks the limits the same way but keeps nothing reserved."""
        def work(session: Session) -> models.Volume:
            if snapshot_id is not None:
                _hold_snapshot_source(session, snapshot_id)
            if source_volid is not None:
                _hold_source_volume(session, source_volid)
            deltas = {quota.VOLUMES: 1, quota.GIGABYTES: size}
            quota.reserve(session, self.quota_limits, project_id, deltas, volume_size=size)
            if not hold_quota:
                quota.release(session, project_id, deltas)
            volume = insert_new(
                session, models.Volume,
                project_id=project_id, user_id=user_id, size=size, status=status,
                status_reason=status_reason, quota_held=hold_quota,
                display_name=display_name, display_description=display_description,
                metadata_=dict(metadata or {}), availability_zone=availability_zone,
                volume_type=volume_type, snapshot_id=snapshot_id, host=host,
                recovery_attempts=0, volume_type_id=volume_type_id,
                source_volid=source_volid, multiattach=multiattach)
            # A new volume has no attachments.
            set_committed_value(volume, "attachments", [])
            if status == states.ERROR:
                messages.record_unscheduled(session, volume)
            return volume
        return self.run(work)

    def volume_get(self, volume_id: str, project_id: str | None = None, *,
                   attachments: bool = True) -> models.Volume:
        """The live volume, scoped to ``project_id`` when given; VolumeNotFound otherwise.
        ``attachments=False`` skips loading them (a second SELECT; reading them then
        raises): for callers that need only the row, like the manager's create/delete."""
        return self.run(lambda s: get_volume(s, volume_id, project_id,
                                             attachments=attachments))

    def volume_list(self, project_id: str | None = None, *,
                    filters: Mapping[str, Any] | None = None,
                    limit: int | None = None, marker: str | None = None,
                    offset: int = 0, sort: SortOrder = NEWEST_FIRST,
                    row_filter: Callable[[models.Volume], bool] | None = None,
                    attachments: bool = True) -> list[models.Volume]:
        """Live volumes, newest first unless ``sort`` says otherwise. ``filters`` are
        column equalities (a list value means "one of"); ``marker`` is the id of the last
        volume of the previous page (VolumeNotFound when it names none).
        ``attachments=False`` returns read-only rows with the volume's columns, without
        attachments, which cost far less than ORM objects."""
        return self.run(lambda session: self._volume_page(
            session, project_id, filters=filters, limit=limit, marker=marker,
            offset=offset, sort=sort, row_filter=row_filter, attachments=attachments))

    def volume_list_attached(
            self, project_id: str | None = None, *,
            filters: Mapping[str, Any] | None = None, limit: int | None = None,
            marker: str | None = None, offset: int = 0, sort: SortOrder = NEWEST_FIRST,
            row_filter: Callable[[models.Volume], bool] | None = None,
    ) -> DetailPage:
        """``volume_list(attachments=False)`` (read-only rows), plus each listed volume's
        attached attachments (``attach_status`` = attached) as plain rows and which of
        their types are encrypted, read in the same transaction: what a detail listing
        shows. Loading every volume's attachments through the relationship cost about a
        third of the CPU of a detail listing of 1,000 volumes (docs/performance.md)."""
        def work(session: Session) -> DetailPage:
            volumes = self._volume_page(
                session, project_id, filters=filters, limit=limit, marker=marker,
                offset=offset, sort=sort, row_filter=row_filter, attachments=False)
            return DetailPage(volumes, attached_by_volume(session, [v.id for v in volumes]),
                              encrypted_types(session, (v.volume_type_id for v in volumes)))
        return self.run(work)

    @staticmethod
    def _volume_page(session: Session, project_id: str | None, *,
                     filters: Mapping[str, Any] | None, limit: int | None,
                     marker: str | None, offset: int, sort: SortOrder,
                     row_filter: Callable[[models.Volume], bool] | None,
                     attachments: bool) -> list[models.Volume]:
        anchor = get_volume(session, marker, project_id) if marker is not None else None
        return list_live(session, models.Volume, project_id=project_id, filters=filters,
                         anchor=anchor, limit=limit, offset=offset, sort=sort,
                         row_filter=row_filter, as_rows=not attachments)

    def volume_transition(self, volume_id: str, expected: Sequence[str],
                          values: Mapping[str, Any], *, project_id: str | None = None,
                          no_attachments: bool = False, no_snapshots: bool = False) -> bool:
        """One guarded UPDATE; True when this caller won. See ``volume_transition_or_raise``
        for the variant that explains a loss."""
        where = self._guards(no_attachments, no_snapshots, project_id)

        def work(session: Session) -> bool:
            if no_attachments or no_snapshots:
                lock_volume(session, volume_id)
            return conditional_update(session, models.Volume, volume_id, values,
                                      expected_status=tuple(expected), where=where)
        return self.run(work)

    def volume_transition_or_raise(self, volume_id: str, expected: Sequence[str],
                                   values: Mapping[str, Any], *,
                                   project_id: str | None = None,
                                   no_attachments: bool = False,
                                   no_snapshots: bool = False) -> None:
        """Guarded UPDATE; raises VolumeNotFound or a Conflict with the current status."""
        where = self._guards(no_attachments, no_snapshots, None)
        self.run(lambda s: transition_or_raise(s, volume_id, expected, values,
                                               project_id=project_id, where=where))

    @staticmethod
    def _guards(no_attachments: bool, no_snapshots: bool,
                project_id: str | None) -> tuple[sa.ColumnElement[bool], ...]:
        where: list[sa.ColumnElement[bool]] = []
        if no_attachments:
            where.append(no_live_attachments())
        if no_snapshots:
            where.append(no_live_snapshots())
            where.append(no_clone_being_made())
        if project_id is not None:
            where.append(_volumes.c.project_id == project_id)
        return tuple(where)

    def volume_update(self, volume_id: str, values: Mapping[str, Any]) -> bool:
        """Unguarded update of non-status fields (provider_location, provider_auth...)."""
        return self.run(lambda s: conditional_update(s, models.Volume, volume_id, values))

    def volume_begin_extend(self, volume_id: str, new_size: int, *,
                            project_id: str | None = None,
                            from_statuses: Sequence[str] = states.CAN_EXTEND_FROM,
                            ) -> models.Volume:
        """Reserve the extra GiB and move available → extending in one transaction."""
        def work(session: Session) -> models.Volume:
            # Read the size under the row lock: a concurrent extend finishing between the
            # read and the guarded UPDATE would otherwise be measured against a stale size.
            lock_volume(session, volume_id)
            volume = get_volume(session, volume_id, project_id)
            if new_size <= volume.size:
                raise exception.InvalidInput(
                    reason=f"new size {new_size} GiB must be larger than the current "
                    f"size {volume.size} GiB")
            transition_or_raise(session, volume_id, from_statuses,
                                {"status": states.EXTENDING, "target_size": new_size,
                                 "status_reason": None, "recovery_attempts": 0},
                                project_id=project_id)
            quota.reserve(session, self.quota_limits, volume.project_id,
                          {quota.GIGABYTES: new_size - volume.size}, volume_size=new_size)
            session.expire(volume)
            return get_volume(session, volume_id)
        return self.run(work)

    def volume_fail_extend(self, volume_id: str, reason: str) -> bool:
        """extending → error_extending, giving the reserved GiB back."""
        def work(session: Session) -> bool:
            lock_volume(session, volume_id)
            volume = get_volume(session, volume_id)
            won = conditional_update(
                session, models.Volume, volume_id,
                {"status": states.ERROR_EXTENDING, "status_reason": reason,
                 "target_size": None},
                expected_status=(states.EXTENDING,))
            if won:
                release_extend_reservation(session, volume)
            return won
        return self.run(work)

    def volume_destroy(self, volume_id: str,
                       expected: Sequence[str] = (states.DELETING,)) -> bool:
        """Soft-delete the row and release its quota, if it is still in ``expected``."""
        def work(session: Session) -> bool:
            try:
                volume = get_volume(session, volume_id, attachments=False)
            except exception.VolumeNotFound:
                return False
            won = conditional_update(
                session, models.Volume, volume_id,
                {"deleted": True, "deleted_at": models.utcnow()},
                expected_status=tuple(expected))
            if won and volume.quota_held:
                quota.release(session, volume.project_id,
                              {quota.VOLUMES: 1, quota.GIGABYTES: volume.size})
            return won
        return self.run(work)

    def volumes_stuck(self, host: str, older_than: datetime.datetime) -> list[models.Volume]:
        """This host's volumes in a transitional status since before ``older_than``
        (without their attachments: recovery re-drives by id and status, and loading
        them doubled the scan's time)."""
        def work(session: Session) -> list[models.Volume]:
            query = sa.select(models.Volume).where(
                models.Volume.deleted == sa.false(), models.Volume.host == host,
                models.Volume.status.in_(tuple(states.VOLUME_TRANSITIONAL)),
                models.Volume.status_changed_at <= older_than,
            ).order_by(models.Volume.status_changed_at).options(
                sa.orm.raiseload(models.Volume.attachments))
            return list(session.execute(query).scalars())
        return self.run(work)

    def volume_claim_recovery(self, volume_id: str, status: str,
                              older_than: datetime.datetime) -> int | None:
        """Count one recovery attempt, if nobody touched the row since ``older_than``.

        Returns the attempt number this caller won, or None when another process (or
        the original request) moved the row first.
        """
        def work(session: Session) -> int | None:
            won = conditional_update(
                session, models.Volume, volume_id,
                {"recovery_attempts": _volumes.c.recovery_attempts + 1,
                 "status_changed_at": models.utcnow()},
                expected_status=(status,),
                where=(_volumes.c.status_changed_at <= older_than,))
            if not won:
                return None
            return get_volume(session, volume_id).recovery_attempts
        return self.run(work)

    def volumes_by_host(self, host: str,
                        statuses: Sequence[str] | None = None) -> list[models.Volume]:
        """Live volumes placed on ``host``, optionally only in ``statuses``."""
        def work(session: Session) -> list[models.Volume]:
            query = sa.select(models.Volume).where(models.Volume.deleted == sa.false(),
                                                   models.Volume.host == host)
            if statuses is not None:
                query = query.where(models.Volume.status.in_(tuple(statuses)))
            return list(session.execute(query).scalars())
        return self.run(work)
