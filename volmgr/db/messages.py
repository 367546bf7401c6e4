"""User messages (Block Storage v3 ``/messages``, 3.3): why a project's request ended
in error, in the reference service's format.

A message is written by the data layer itself, in the same transaction as the guarded
UPDATE that moves a volume or snapshot from a transitional status to the error status
that ends it (``creating → error``, ``extending → error_extending``, …; see
``record_failure``), and when a new volume is born in ``error`` because no host could
take it. So every path that ends a request in ``error_*`` (the manager's failure paths,
recovery giving up, the API's scheduling) leaves one message, and no path can forget to.

A message carries codes, never free text: ``action_id`` (what was being done) and
``detail_id`` (what kind of failure). The readable ``user_message`` is built from them
(``user_message``), so it can never contain a host name, a volume group, a device path
or a command line. The request id comes from the context of the request that failed
(``request_scope``), bound by the API per request and by the manager per operation.

Lifetime: a message is shown for ``[DEFAULT] message_ttl`` seconds after it was
written; the API filters older ones out and purges them (``message_purge``).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from volmgr import exception, states
from volmgr.context import new_request_id
from volmgr.db import models
from volmgr.db.core import DatabaseCore, SortOrder, list_live

LOG = logging.getLogger(__name__)
T = TypeVar("T")

_messages = models.table(models.Message)

RESOURCE_VOLUME = "VOLUME"
RESOURCE_SNAPSHOT = "VOLUME_SNAPSHOT"
LEVEL_ERROR = "ERROR"

#: Action codes (the reference service's numbering where it has one; volmgr's own from
#: 901) and what they say.
ACTION_SCHEDULE_VOLUME = "001"
ACTION_ATTACH_VOLUME = "002"
ACTION_EXTEND_VOLUME = "007"
ACTION_CREATE_VOLUME = "008"
ACTION_CREATE_SNAPSHOT = "009"
ACTION_DELETE_SNAPSHOT = "010"
ACTION_DELETE_VOLUME = "901"
ACTION_DETACH_VOLUME = "902"
ACTIONS: Mapping[str, str] = {
    ACTION_SCHEDULE_VOLUME: "schedule allocate volume",
    ACTION_ATTACH_VOLUME: "attach volume",
    ACTION_EXTEND_VOLUME: "extend volume",
    ACTION_CREATE_VOLUME: "create volume from backend storage",
    ACTION_CREATE_SNAPSHOT: "create snapshot",
    ACTION_DELETE_SNAPSHOT: "delete snapshot",
    ACTION_DELETE_VOLUME: "delete volume",
    ACTION_DETACH_VOLUME: "detach volume",
}

#: Detail codes: the kind of failure, in words an owner may read.
DETAIL_UNKNOWN = "001"
DETAIL_NO_HOST = "003"
DETAIL_EXTEND_FAILED = "010"
DETAIL_CREATE_FAILED = "012"
DETAIL_SNAPSHOT_CREATE_FAILED = "013"
DETAIL_SNAPSHOT_DELETE_FAILED = "016"
DETAIL_ATTACH_FAILED = "021"
DETAIL_DETACH_FAILED = "022"
DETAIL_DELETE_FAILED = "901"
DETAILS: Mapping[str, str] = {
    DETAIL_UNKNOWN: "An unexpected error occurred.",
    DETAIL_NO_HOST: "No storage host with enough free capacity and the requested "
                    "capabilities is available.",
    DETAIL_EXTEND_FAILED: "The storage host could not extend the volume.",
    DETAIL_CREATE_FAILED: "The storage host could not create the volume.",
    DETAIL_SNAPSHOT_CREATE_FAILED: "The storage host could not create the snapshot.",
    DETAIL_SNAPSHOT_DELETE_FAILED: "The storage host could not delete the snapshot.",
    DETAIL_ATTACH_FAILED: "The volume could not be exported to the server.",
    DETAIL_DETACH_FAILED: "The volume's export could not be removed.",
    DETAIL_DELETE_FAILED: "The storage host could not delete the volume.",
}

#: Failure edges: (resource, transitional status it left) -> (action, detail).
_VOLUME_FAILURES: Mapping[str, tuple[str, str]] = {
    states.CREATING: (ACTION_CREATE_VOLUME, DETAIL_CREATE_FAILED),
    states.EXTENDING: (ACTION_EXTEND_VOLUME, DETAIL_EXTEND_FAILED),
    states.ATTACHING: (ACTION_ATTACH_VOLUME, DETAIL_ATTACH_FAILED),
    states.DETACHING: (ACTION_DETACH_VOLUME, DETAIL_DETACH_FAILED),
    states.DELETING: (ACTION_DELETE_VOLUME, DETAIL_DELETE_FAILED),
}
_SNAPSHOT_FAILURES: Mapping[str, tuple[str, str]] = {
    states.SNAP_CREATING: (ACTION_CREATE_SNAPSHOT, DETAIL_SNAPSHOT_CREATE_FAILED),
    states.SNAP_DELETING: (ACTION_DELETE_SNAPSHOT, DETAIL_SNAPSHOT_DELETE_FAILED),
}
#: An operator's reset-state names no failure of the owner's request (api/edits.py).
_OPERATOR_RESET = "status reset by"

#: Columns a message list may be sorted and filtered by (API name -> column).
COLUMNS: Mapping[str, str] = {
    "id": "id", "event_id": "event_id", "message_level": "message_level",
    "resource_type": "resource_type", "resource_uuid": "resource_uuid",
    "request_id": "request_id", "created_at": "created_at", "project_id": "project_id",
}

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "volmgr_message_request_id", default=None)


@contextlib.contextmanager
def request_scope(request_id: str | None) -> Iterator[None]:
    """Messages written inside carry ``request_id`` (the request that failed)."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


def in_request_scope(request_id: str | None, func: Callable[[], T]) -> Callable[[], T]:
    """``func`` wrapped to run inside ``request_scope`` (for work run on another thread,
    where context variables do not follow)."""
    def run() -> T:
        with request_scope(request_id):
            return func()
    return run


def event_id(resource_type: str, action_id: str, detail_id: str) -> str:
    """The event code of a message, as the reference service composes it."""
    return f"VOLUME_{resource_type}_{action_id}_{detail_id}"


def user_message(message: models.Message) -> str:
    """The readable ``action:detail`` text of a message."""
    action = ACTIONS.get(message.action_id, "unknown action")
    return f"{action}:{DETAILS.get(message.detail_id, DETAILS[DETAIL_UNKNOWN])}"


def add_message(session: Session, *, project_id: str, resource_type: str,
                resource_uuid: str, action_id: str, detail_id: str) -> None:
    """Insert one message in the caller's transaction."""
    session.execute(sa.insert(_messages).values(
        id=models.new_uuid(), project_id=project_id,
        request_id=_request_id.get() or new_request_id(),
        resource_type=resource_type, resource_uuid=resource_uuid,
        event_id=event_id(resource_type, action_id, detail_id), action_id=action_id,
        detail_id=detail_id, message_level=LEVEL_ERROR, created_at=models.utcnow(),
        deleted=False))


def record_failure(session: Session, model: type[models.Base], row_id: Any,
                   values: Mapping[str, Any], expected_status: tuple[str, ...] | None) -> None:
    """After a won guarded UPDATE: if it moved a volume or snapshot from one transitional
    status to the error status that ends it, tell the owner (same transaction)."""
    if expected_status is None or len(expected_status) != 1 or "status" not in values:
        return
    left = expected_status[0]
    if model is models.Volume:
        resource, endings, failures = (RESOURCE_VOLUME, states.VOLUME_TRANSITIONAL,
                                       _VOLUME_FAILURES)
    elif model is models.Snapshot:
        resource, endings, failures = (RESOURCE_SNAPSHOT, states.SNAPSHOT_TRANSITIONAL,
                                       _SNAPSHOT_FAILURES)
    else:
        return
    if endings.get(left) != values["status"]:
        return
    if str(values.get("status_reason") or "").startswith(_OPERATOR_RESET):
        return
    table = models.table(model)
    row = session.execute(sa.select(table.c.project_id, table.c.host).where(
        table.c.id == row_id)).one_or_none()
    if row is None:
        return
    project_id, host = row
    action_id, detail_id = failures.get(left, (ACTION_CREATE_VOLUME, DETAIL_UNKNOWN))
    if model is models.Volume and left == states.CREATING and host is None:
        action_id, detail_id = ACTION_SCHEDULE_VOLUME, DETAIL_NO_HOST
    add_message(session, project_id=project_id, resource_type=resource,
                resource_uuid=str(row_id), action_id=action_id, detail_id=detail_id)


def record_unscheduled(session: Session, volume: models.Volume) -> None:
    """A volume born in ``error`` because no host could take it."""
    add_message(session, project_id=volume.project_id, resource_type=RESOURCE_VOLUME,
                resource_uuid=volume.id, action_id=ACTION_SCHEDULE_VOLUME,
                detail_id=DETAIL_NO_HOST)


class MessageQueries(DatabaseCore):
    """Reading, deleting and purging user messages."""

    def message_get(self, message_id: str, project_id: str | None = None, *,
                    newer_than: datetime.datetime | None = None) -> models.Message:
        """A live message (of ``project_id`` when given, written after ``newer_than``
        when given); NotFound otherwise."""
        def work(session: Session) -> models.Message:
            return _get(session, message_id, project_id, newer_than)
        return self.run(work)

    def message_list(self, project_id: str | None = None, *,
                     filters: Mapping[str, Any] | None = None,
                     newer_than: datetime.datetime | None = None,
                     marker: str | None = None, limit: int | None = None, offset: int = 0,
                     sort: SortOrder = (("created_at", "desc"),)) -> list[models.Message]:
        """Live messages in ``sort`` order, paged after the ``marker`` message."""
        wanted = dict(filters or {})

        def work(session: Session) -> list[models.Message]:
            anchor = (_get(session, marker, project_id, newer_than)
                      if marker is not None else None)
            row_filter = (None if newer_than is None
                          else lambda row: bool(row.created_at > newer_than))
            return list_live(session, models.Message, project_id=project_id,
                             filters=wanted, anchor=anchor, limit=limit, offset=offset,
                             sort=sort, row_filter=row_filter)
        return self.run(work)

    def message_delete(self, message_id: str, project_id: str | None = None) -> None:
        """Soft-delete a live message; NotFound when there is none."""
        def work(session: Session) -> None:
            conditions = [_messages.c.id == message_id, _messages.c.deleted == sa.false()]
            if project_id is not None:
                conditions.append(_messages.c.project_id == project_id)
            result = session.execute(sa.update(_messages).where(*conditions).values(
                deleted=True, deleted_at=models.utcnow()))
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise _not_found(message_id)
        self.run(work)

    def message_purge(self, older_than: datetime.datetime) -> int:
        """Remove messages (live or deleted) written before ``older_than``."""
        def work(session: Session) -> int:
            result = session.execute(sa.delete(_messages).where(
                _messages.c.created_at < older_than))
            return int(result.rowcount)  # type: ignore[attr-defined]
        return self.run(work)


def _not_found(message_id: str) -> exception.NotFound:
    return exception.NotFound(f"Message {message_id} could not be found.")


def _get(session: Session, message_id: str, project_id: str | None,
         newer_than: datetime.datetime | None) -> models.Message:
    query = sa.select(models.Message).where(models.Message.id == message_id,
                                            models.Message.deleted == sa.false())
    if project_id is not None:
        query = query.where(models.Message.project_id == project_id)
    if newer_than is not None:
        query = query.where(models.Message.created_at > newer_than)
    row = session.execute(query).scalar_one_or_none()
    if row is None:
        raise _not_found(message_id)
    return row
