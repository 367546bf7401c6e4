"""Attachment rows, always changed together with their volume in one transaction.

One attachment model behind three doors (docs/rpc.md, "Attachments"): the Compute 1.1
``os-volume_attachments`` face (flow ``compute``: the manager connects and completes),
the v3 attachments API (flow ``v3``: reserve, connect, the client's ``os-complete``) and
the volume actions (flow ``legacy``: ``os-reserve``, ``os-initialize_connection``,
``os-attach`` …). Whatever the door, a detach goes through ``attachment_begin_delete``
(or ``detach_begin``) and the manager's ``detach_volume``; the volume's status is then
derived from the attachments that remain (``_settle``).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from volmgr import exception, states
from volmgr.db import models
from volmgr.db.core import DatabaseCore, conditional_update
from volmgr.db.volumes import (
    get_volume,
    lock_volume,
    no_live_attachments,
    transition_or_raise,
)

_attachments = models.table(models.VolumeAttachment)
_volumes = models.table(models.Volume)

_LIVE_ATTACHED = (states.ATTACH_ATTACHED, states.ATTACH_ERROR_DETACHING)
#: Attachment statuses in which the attachment holds (or may hold) an export.
_HOLDS_EXPORT = (states.ATTACH_ATTACHING, states.ATTACH_ATTACHED, states.ATTACH_DETACHING,
                 states.ATTACH_ERROR_DETACHING)


def _get(session: Session, attachment_id: str,
         project_id: str | None = None) -> models.VolumeAttachment:
    query = sa.select(models.VolumeAttachment).where(
        models.VolumeAttachment.id == attachment_id,
        models.VolumeAttachment.deleted == sa.false())
    if project_id is not None:
        query = query.join(models.Volume,
                           models.Volume.id == models.VolumeAttachment.volume_id).where(
            models.Volume.project_id == project_id)
    row = session.execute(query).scalar_one_or_none()
    if row is None:
        raise exception.NotFound(f"Attachment {attachment_id} could not be found.")
    return row


def _live(session: Session, volume_id: str) -> list[models.VolumeAttachment]:
    return list(session.execute(sa.select(models.VolumeAttachment).where(
        models.VolumeAttachment.volume_id == volume_id,
        models.VolumeAttachment.deleted == sa.false(),
    ).order_by(models.VolumeAttachment.created_at)).scalars())


def connected(attachment: models.VolumeAttachment) -> bool:
    """Whether the attachment's connector was admitted (its connection_info is set)."""
    return bool(attachment.connection_info)


def derived_status(current: str, live: list[models.VolumeAttachment]) -> str:
    """The volume status its live attachments imply (for the statuses attachments own):
    in use while any is attached (or being detached), reserved/attaching while any is
    pending, available when none is left."""
    if any(a.attach_status in (states.ATTACH_ATTACHED, states.ATTACH_DETACHING,
                               states.ATTACH_ERROR_DETACHING) for a in live):
        return states.IN_USE
    if live:
        return current if current in (states.RESERVED, states.ATTACHING) else \
            states.RESERVED
    return states.AVAILABLE


def _settle(session: Session, volume_id: str) -> None:
    """Re-derive the volume's status from its attachments (only from the statuses
    attachments own: never out of extending, deleting or an error)."""
    volume = get_volume(session, volume_id)
    if volume.status not in states.SETTLED_BY_ATTACHMENTS:
        return
    new = derived_status(volume.status, _live(session, volume_id))
    if new != volume.status:
        conditional_update(session, models.Volume, volume_id,
                           {"status": new, "status_reason": None,
                            "recovery_attempts": 0},
                           expected_status=(volume.status,))


def _close(session: Session, attachment_id: str, status: str) -> None:
    now = models.utcnow()
    conditional_update(session, models.VolumeAttachment, attachment_id,
                       {"attach_status": status, "detached_at": now,
                        "deleted": True, "deleted_at": now})


class _AttachmentMoved(Exception):
    """The attachment left ``attaching`` while its volume did not: roll back."""


class AttachmentQueries(DatabaseCore):
    """Attach and detach bookkeeping."""

    # -- the Compute 1.1 face (flow "compute") --------------------------------------

    def attachment_begin(self, volume_id: str, *, server_id: str, device: str | None,
                         connector: Mapping[str, Any] | None = None,
                         project_id: str | None = None) -> models.VolumeAttachment:
        """available → attaching and insert the attachment; a Conflict when not free."""
        def work(session: Session) -> models.VolumeAttachment:
            transition_or_raise(session, volume_id, states.CAN_ATTACH_FROM,
                                {"status": states.ATTACHING, "status_reason": None,
                                 "recovery_attempts": 0},
                                project_id=project_id, where=(no_live_attachments(),))
            attachment = models.VolumeAttachment(
                volume_id=volume_id, server_id=server_id, device=device,
                attach_status=states.ATTACH_ATTACHING, connector=dict(connector or {}),
                flow=states.FLOW_COMPUTE)
            session.add(attachment)
            session.flush()
            session.refresh(attachment)
            return attachment
        return self.run(work)

    # -- reads ------------------------------------------------------------------------

    def attachment_get(self, attachment_id: str,
                       project_id: str | None = None) -> models.VolumeAttachment:
        return self.run(lambda s: _get(s, attachment_id, project_id))

    def attachment_list(self, *, volume_id: str | None = None, server_id: str | None = None,
                        project_id: str | None = None, status: str | None = None,
                        limit: int | None = None, offset: int = 0,
                        marker: str | None = None,
                        newest_first: bool = False) -> list[models.VolumeAttachment]:
        """Live attachments, filtered by volume, server, status and the volume's project,
        oldest first (``newest_first`` reverses); ``marker`` is the last id of the
        previous page."""
        def work(session: Session) -> list[models.VolumeAttachment]:
            query = sa.select(models.VolumeAttachment).join(
                models.Volume, models.Volume.id == models.VolumeAttachment.volume_id,
            ).where(models.VolumeAttachment.deleted == sa.false(),
                    models.Volume.deleted == sa.false())
            if volume_id is not None:
                query = query.where(models.VolumeAttachment.volume_id == volume_id)
            if server_id is not None:
                query = query.where(models.VolumeAttachment.server_id == server_id)
            if project_id is not None:
                query = query.where(models.Volume.project_id == project_id)
            if status is not None:
                query = query.where(models.VolumeAttachment.attach_status == status)
            created, ident = models.VolumeAttachment.created_at, models.VolumeAttachment.id
            if marker is not None:
                mark = _get(session, marker, project_id)
                if newest_first:
                    query = query.where(sa.or_(created < mark.created_at, sa.and_(
                        created == mark.created_at, ident < mark.id)))
                else:
                    query = query.where(sa.or_(created > mark.created_at, sa.and_(
                        created == mark.created_at, ident > mark.id)))
            order = (created.desc(), ident.desc()) if newest_first else (created, ident)
            query = query.order_by(*order).offset(offset)
            if limit is not None:
                query = query.limit(limit)
            return list(session.execute(query).scalars())
        return self.run(work)

    def attachment_find(self, volume_id: str, server_id: str,
                        project_id: str | None = None) -> models.VolumeAttachment:
        """The live attachment of ``volume_id`` to ``server_id``, or AttachmentNotFound."""
        found = self.attachment_list(volume_id=volume_id, server_id=server_id,
                                     project_id=project_id)
        if not found:
            raise exception.AttachmentNotFound(volume_id=volume_id, server_id=server_id)
        return found[0]

    # -- reserve, connect, complete (v3 and legacy) ------------------------------------

    def attachment_reserve(self, volume_id: str, *, server_id: str | None,
                           project_id: str | None, flow: str,
                           mode: str = "rw") -> models.VolumeAttachment:
        """A new ``reserved`` attachment. An available volume becomes ``reserved`` (v3) or
        ``attaching`` (``os-reserve``); a multiattach volume may be reserved again while
        reserved or in use (its status stays). Anything else is a Conflict (an error
        status: InvalidVolume)."""
        def work(session: Session) -> models.VolumeAttachment:
            lock_volume(session, volume_id)
            volume = get_volume(session, volume_id, project_id)
            if volume.status.startswith("error"):
                raise exception.InvalidVolume(
                    reason=f"volume {volume_id} is {volume.status}; attachments cannot be "
                    f"created for a volume in an error status")
            live = _live(session, volume_id)
            allowed: tuple[str, ...] = (states.AVAILABLE,)
            if volume.multiattach:
                allowed = (states.AVAILABLE, states.RESERVED, states.IN_USE)
            elif live:
                raise exception.VolumeStatusConflict(
                    volume_id=volume_id, status=volume.status,
                    expected=f"{states.AVAILABLE} without attachments (the volume's type "
                    f"is not multiattach)")
            if volume.status not in allowed:
                raise exception.VolumeStatusConflict(
                    volume_id=volume_id, status=volume.status, expected=", ".join(allowed))
            if volume.status == states.AVAILABLE:
                new = states.ATTACHING if flow == states.FLOW_LEGACY else states.RESERVED
                conditional_update(session, models.Volume, volume_id,
                                   {"status": new, "status_reason": None,
                                    "recovery_attempts": 0},
                                   expected_status=(states.AVAILABLE,))
            attachment = models.VolumeAttachment(
                volume_id=volume_id, server_id=server_id or "", device=None,
                attach_status=states.ATTACH_RESERVED, connector={}, flow=flow,
                attach_mode=mode)
            session.add(attachment)
            session.flush()
            session.refresh(attachment)
            return attachment
        return self.run(work)

    def attachment_connect_begin(self, attachment_id: str,
                                 connector: Mapping[str, Any]) -> models.VolumeAttachment:
        """The manager is about to admit ``connector``: record it; a not yet attached
        attachment goes to ``attaching`` with no connection_info (so a crash from here on
        is visible to recovery). Conflict when the volume or attachment forbids it."""
        def work(session: Session) -> models.VolumeAttachment:
            attachment = _get(session, attachment_id)
            lock_volume(session, attachment.volume_id)
            volume = get_volume(session, attachment.volume_id)
            if volume.status not in (*states.ATTACHABLE_VOLUME, states.EXTENDING):
                raise exception.VolumeStatusConflict(
                    volume_id=volume.id, status=volume.status,
                    expected=", ".join(states.ATTACHABLE_VOLUME))
            if not volume.multiattach:
                hosts = {a.connector.get("host") for a in _live(session, volume.id)
                         if a.id != attachment_id and connected(a)}
                if hosts:
                    raise exception.Conflict(
                        f"Volume {volume.id} is already connected to another attachment "
                        f"and its type is not multiattach.")
            values: dict[str, Any] = {"connector": dict(connector)}
            if attachment.attach_status != states.ATTACH_ATTACHED:
                values.update(attach_status=states.ATTACH_ATTACHING, connection_info=None)
            if not conditional_update(session, models.VolumeAttachment, attachment_id,
                                      values,
                                      expected_status=states.ATTACH_CAN_CONNECT_FROM,
                                      status_column="attach_status"):
                raise exception.Conflict(
                    f"Attachment {attachment_id} is {attachment.attach_status}; a connector "
                    f"can be given only while it is "
                    f"{', '.join(states.ATTACH_CAN_CONNECT_FROM)}.")
            session.expire(attachment)
            return _get(session, attachment_id)
        return self.run(work)

    def attachment_connect_done(self, attachment_id: str,
                                connection_info: Mapping[str, Any]) -> bool:
        return self.run(lambda s: conditional_update(
            s, models.VolumeAttachment, attachment_id,
            {"connection_info": dict(connection_info)},
            expected_status=(states.ATTACH_ATTACHING, states.ATTACH_ATTACHED),
            status_column="attach_status"))

    def attachment_connect_failed(self, attachment_id: str) -> bool:
        """attaching → error_attaching, admitted nothing (the manager withdrew it)."""
        return self.run(lambda s: conditional_update(
            s, models.VolumeAttachment, attachment_id,
            {"attach_status": states.ATTACH_ERROR_ATTACHING, "connection_info": None},
            expected_status=(states.ATTACH_ATTACHING,), status_column="attach_status"))

    def attachment_connect_undo(self, attachment_id: str) -> bool:
        """A connect that never finished (recovery, after the manager withdrew what it
        may have admitted): attaching → reserved, as before the request."""
        return self.run(lambda s: conditional_update(
            s, models.VolumeAttachment, attachment_id,
            {"attach_status": states.ATTACH_RESERVED, "connection_info": None,
             "connector": {}},
            expected_status=(states.ATTACH_ATTACHING,), status_column="attach_status"))

    def attachment_clear_connection(self, attachment_id: str) -> bool:
        """The connector was withdrawn (``os-terminate_connection``)."""
        return self.run(lambda s: conditional_update(
            s, models.VolumeAttachment, attachment_id, {"connection_info": None}))

    def attachment_complete(self, attachment_id: str, *, project_id: str | None = None,
                            server_id: str | None = None, device: str | None = None,
                            mode: str | None = None) -> models.VolumeAttachment:
        """The client confirms the attach (``os-complete``, ``os-attach``): the
        attachment is attached and its volume in use. A connected attachment, or (for
        ``os-attach``, which needs no export) a reserved one, may complete; completing an
        attached one again only updates the server and device."""
        def work(session: Session) -> models.VolumeAttachment:
            attachment = _get(session, attachment_id, project_id)
            lock_volume(session, attachment.volume_id)
            volume = get_volume(session, attachment.volume_id)
            if volume.status not in states.ATTACHABLE_VOLUME:
                raise exception.VolumeStatusConflict(
                    volume_id=volume.id, status=volume.status,
                    expected=", ".join(states.ATTACHABLE_VOLUME))
            allowed = [states.ATTACH_ATTACHED]
            if connected(attachment):
                allowed.append(states.ATTACH_ATTACHING)
            if attachment.flow == states.FLOW_LEGACY:
                allowed.append(states.ATTACH_RESERVED)
            values: dict[str, Any] = {"attach_status": states.ATTACH_ATTACHED}
            if attachment.attach_status != states.ATTACH_ATTACHED:
                values["attached_at"] = models.utcnow()
            if server_id:
                values["server_id"] = server_id
            if device is not None:
                values["device"] = device
            if mode is not None:
                values["attach_mode"] = mode
            if not conditional_update(session, models.VolumeAttachment, attachment_id,
                                      values, expected_status=tuple(allowed),
                                      status_column="attach_status"):
                raise exception.Conflict(
                    f"Attachment {attachment_id} is {attachment.attach_status} and has "
                    f"{'a' if connected(attachment) else 'no'} connection; it can be "
                    f"completed only once its connector was admitted.")
            conditional_update(session, models.Volume, volume.id,
                               {"status": states.IN_USE, "status_reason": None,
                                "recovery_attempts": 0},
                               expected_status=states.ATTACHABLE_VOLUME)
            session.expire(attachment)
            return _get(session, attachment_id)
        return self.run(work)

    def attach_complete(self, volume_id: str, attachment_id: str,
                        connection_info: Mapping[str, Any]) -> bool:
        """(Compute 1.1) attaching → in-use, attachment → attached with its
        connection_info."""
        def work(session: Session) -> bool:
            if not conditional_update(session, models.Volume, volume_id,
                                      {"status": states.IN_USE, "status_reason": None},
                                      expected_status=(states.ATTACHING,)):
                return False
            if not conditional_update(
                    session, models.VolumeAttachment, attachment_id,
                    {"attach_status": states.ATTACH_ATTACHED,
                     "connection_info": dict(connection_info),
                     "attached_at": models.utcnow()},
                    expected_status=(states.ATTACH_ATTACHING,),
                    status_column="attach_status"):
                # Never an in-use volume without its attachment: undo the first UPDATE.
                raise _AttachmentMoved()
            return True
        try:
            return self.run(work)
        except _AttachmentMoved:
            return False

    def attach_failed(self, volume_id: str, attachment_id: str, reason: str) -> bool:
        """(Compute 1.1) attaching → error_attaching; the failed attachment is closed so
        a retry or a delete is possible."""
        def work(session: Session) -> bool:
            won = conditional_update(session, models.Volume, volume_id,
                                     {"status": states.ERROR_ATTACHING,
                                      "status_reason": reason},
                                     expected_status=(states.ATTACHING,))
            conditional_update(session, models.VolumeAttachment, attachment_id,
                               {"attach_status": states.ATTACH_ERROR_ATTACHING,
                                "deleted": True, "deleted_at": models.utcnow()})
            return won
        return self.run(work)

    # -- detach -------------------------------------------------------------------------

    def detach_begin(self, volume_id: str, server_id: str, *,
                     project_id: str | None = None) -> models.VolumeAttachment:
        """(Compute 1.1) the attachment to ``server_id`` → detaching; the volume goes
        ``detaching`` when no other attachment keeps it in use."""
        def work(session: Session) -> models.VolumeAttachment:
            get_volume(session, volume_id, project_id)
            attachment = session.execute(sa.select(models.VolumeAttachment).where(
                models.VolumeAttachment.volume_id == volume_id,
                models.VolumeAttachment.server_id == server_id,
                models.VolumeAttachment.deleted == sa.false(),
            )).scalars().first()
            if attachment is None:
                raise exception.AttachmentNotFound(volume_id=volume_id, server_id=server_id)
            return self._begin_delete(session, attachment, strict=True)
        return self.run(work)

    def attachment_begin_delete(
            self, attachment_id: str, *, project_id: str | None = None,
            force: bool = False) -> tuple[models.VolumeAttachment, bool]:
        """Start ending an attachment, whatever door made it. Returns the attachment and
        whether the manager must act (withdraw its connector, maybe remove the export):
        an attachment that never admitted a connector is closed here at once."""
        def work(session: Session) -> tuple[models.VolumeAttachment, bool]:
            attachment = _get(session, attachment_id, project_id)
            lock_volume(session, attachment.volume_id)
            if attachment.attach_status == states.ATTACH_DETACHING:
                return attachment, True  # already on its way: send the work again
            if (attachment.attach_status in (states.ATTACH_RESERVED,
                                             states.ATTACH_ERROR_ATTACHING)
                    and not connected(attachment)):
                _close(session, attachment_id, states.ATTACH_DETACHED)
                _settle(session, attachment.volume_id)
                return attachment, False
            return self._begin_delete(session, attachment, strict=False,
                                      force=force), True
        return self.run(work)

    @staticmethod
    def _begin_delete(session: Session, attachment: models.VolumeAttachment, *,
                      strict: bool, force: bool = False) -> models.VolumeAttachment:
        volume = get_volume(session, attachment.volume_id)
        others = [a for a in _live(session, volume.id) if a.id != attachment.id
                  and a.attach_status in (states.ATTACH_ATTACHED, states.ATTACH_ATTACHING,
                                          states.ATTACH_ERROR_DETACHING)]
        from_statuses: tuple[str, ...] = (*states.CAN_DETACH_FROM, states.DETACHING)
        if not strict:
            from_statuses = (*from_statuses, states.RESERVED, states.ATTACHING,
                             states.ERROR_ATTACHING)
        if force and volume.status not in (states.DELETING, states.EXTENDING,
                                           states.CREATING):
            from_statuses = (*from_statuses, volume.status)
        if volume.status not in from_statuses:
            raise exception.VolumeStatusConflict(volume_id=volume.id, status=volume.status,
                                                 expected=", ".join(from_statuses))
        if not others and volume.status != states.DETACHING:
            conditional_update(session, models.Volume, volume.id,
                               {"status": states.DETACHING, "status_reason": None,
                                "recovery_attempts": 0},
                               expected_status=(volume.status,))
        if not conditional_update(session, models.VolumeAttachment, attachment.id,
                                  {"attach_status": states.ATTACH_DETACHING},
                                  status_column="attach_status"):
            raise exception.NotFound(f"Attachment {attachment.id} could not be found.")
        session.refresh(attachment)
        return attachment

    def detach_complete(self, volume_id: str, attachment_id: str) -> bool:
        """Close the attachment; the volume's status follows what is left (available
        after the last one). False when the attachment was already closed."""
        def work(session: Session) -> bool:
            lock_volume(session, volume_id)
            now = models.utcnow()
            closed = conditional_update(session, models.VolumeAttachment, attachment_id,
                                        {"attach_status": states.ATTACH_DETACHED,
                                         "detached_at": now, "deleted": True,
                                         "deleted_at": now})
            _settle(session, volume_id)
            return closed or not attachment_id
        return self.run(work)

    def detach_failed(self, volume_id: str, attachment_id: str, reason: str) -> bool:
        """The attachment → error_detaching (detach may be retried); a detaching volume
        → error_detaching."""
        def work(session: Session) -> bool:
            won = conditional_update(session, models.Volume, volume_id,
                                     {"status": states.ERROR_DETACHING,
                                      "status_reason": reason},
                                     expected_status=(states.DETACHING,))
            moved = conditional_update(session, models.VolumeAttachment, attachment_id,
                                       {"attach_status": states.ATTACH_ERROR_DETACHING})
            return won or moved
        return self.run(work)

    def volume_begin_detaching(self, volume_id: str, *, project_id: str | None) -> None:
        """``os-begin_detaching``: in-use → detaching (a multiattach volume stays in use:
        which of its attachments ends is told by ``os-detach``)."""
        def work(session: Session) -> None:
            lock_volume(session, volume_id)
            volume = get_volume(session, volume_id, project_id)
            if volume.multiattach and volume.status == states.IN_USE:
                return
            transition_or_raise(session, volume_id, (states.IN_USE,),
                                {"status": states.DETACHING, "status_reason": None,
                                 "recovery_attempts": 0}, project_id=project_id)
        self.run(work)

    def volume_roll_detaching(self, volume_id: str, *, project_id: str | None) -> None:
        """``os-roll_detaching``: detaching → in-use, unless a detach is already under
        way for one of its attachments (then a no-op)."""
        def work(session: Session) -> None:
            lock_volume(session, volume_id)
            volume = get_volume(session, volume_id, project_id)
            live = _live(session, volume_id)
            if volume.status != states.DETACHING or any(
                    a.attach_status == states.ATTACH_DETACHING for a in live):
                return
            conditional_update(session, models.Volume, volume_id,
                               {"status": derived_status(states.DETACHING, live),
                                "status_reason": None}, expected_status=(states.DETACHING,))
        self.run(work)

    def volume_finish_extend_settled(self, volume_id: str) -> bool:
        """extending → size = target_size and the status its attachments imply
        (available, or in-use for an attached volume grown at 3.42)."""
        def work(session: Session) -> bool:
            lock_volume(session, volume_id)
            won = conditional_update(
                session, models.Volume, volume_id,
                {"status": states.AVAILABLE, "size": _volumes.c.target_size,
                 "target_size": None, "status_reason": None},
                expected_status=(states.EXTENDING,))
            if won:
                _settle(session, volume_id)
            return won
        return self.run(work)

    def volume_settle(self, volume_id: str) -> None:
        """Re-derive an attachment-owned volume status from the live attachments."""
        self.run(lambda s: _settle(s, volume_id))

    # -- recovery ----------------------------------------------------------------------

    def attachments_stuck(self, host: str,
                          older_than: datetime.datetime) -> list[models.VolumeAttachment]:
        """This host's attachments with manager work unfinished since before
        ``older_than``: a connect that never stored its connection_info, or a detach."""
        def work(session: Session) -> list[models.VolumeAttachment]:
            query = sa.select(models.VolumeAttachment).join(
                models.Volume, models.Volume.id == models.VolumeAttachment.volume_id,
            ).where(models.VolumeAttachment.deleted == sa.false(),
                    models.Volume.deleted == sa.false(), models.Volume.host == host,
                    models.VolumeAttachment.attach_status.in_(
                        (states.ATTACH_ATTACHING, states.ATTACH_DETACHING)),
                    models.VolumeAttachment.updated_at <= older_than,
                    ).order_by(models.VolumeAttachment.updated_at)
            return [a for a in session.execute(query).scalars()
                    if a.attach_status == states.ATTACH_DETACHING or not connected(a)]
        return self.run(work)

    def attachment_claim_recovery(self, attachment_id: str, status: str,
                                  older_than: datetime.datetime) -> bool:
        """Restamp a stuck attachment if nobody touched it since ``older_than``."""
        return self.run(lambda s: conditional_update(
            s, models.VolumeAttachment, attachment_id, {"updated_at": models.utcnow()},
            expected_status=(status,), status_column="attach_status",
            where=(_attachments.c.updated_at <= older_than,)))

    def volumes_with_exports(self, host: str) -> list[models.Volume]:
        """This host's volumes whose export must exist: in use, or with an attachment
        that admitted a connector."""
        def work(session: Session) -> list[models.Volume]:
            volumes = session.execute(sa.select(models.Volume).where(
                models.Volume.deleted == sa.false(), models.Volume.host == host,
                models.Volume.status.notin_((states.CREATING, states.DELETING,
                                             states.AVAILABLE, states.ERROR)),
            )).scalars()
            return [v for v in volumes
                    if v.status in (states.IN_USE, states.ERROR_DETACHING)
                    or any(connected(a) and a.attach_status in _HOLDS_EXPORT
                           for a in _live(session, v.id))]
        return self.run(work)

    def attachments_connected(self, volume_id: str,
                              but: str | None = None) -> list[models.VolumeAttachment]:
        """Live attachments of a volume that hold its export (other than ``but``)."""
        def work(session: Session) -> list[models.VolumeAttachment]:
            return [a for a in _live(session, volume_id) if a.id != but and (
                connected(a) or a.attach_status in (states.ATTACH_ATTACHING,
                                                    states.ATTACH_ATTACHED,
                                                    states.ATTACH_DETACHING))]
        return self.run(work)
