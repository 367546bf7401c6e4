"""Attachment rows, always changed together with their volume in one transaction.

Attach: volume available → attaching plus a new attachment row; the manager then
completes (attached + in-use) or fails (error_attaching). Detach mirrors it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from volmgr import exception, states
from volmgr.db import models
from volmgr.db.core import DatabaseCore, conditional_update
from volmgr.db.volumes import get_volume, no_live_attachments, transition_or_raise

_attachments = models.table(models.VolumeAttachment)

_LIVE_ATTACHED = (states.ATTACH_ATTACHED, states.ATTACH_ERROR_DETACHING)


def _get(session: Session, attachment_id: str) -> models.VolumeAttachment:
    row = session.execute(sa.select(models.VolumeAttachment).where(
        models.VolumeAttachment.id == attachment_id,
        models.VolumeAttachment.deleted == sa.false())).scalar_one_or_none()
    if row is None:
        raise exception.NotFound(f"Attachment {attachment_id} could not be found.")
    return row


class _AttachmentMoved(Exception):
    """The attachment left ``attaching`` while its volume did not: roll back."""


class AttachmentQueries(DatabaseCore):
    """Attach and detach bookkeeping."""

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
                attach_status=states.ATTACH_ATTACHING, connector=dict(connector or {}))
            session.add(attachment)
            session.flush()
            session.refresh(attachment)
            return attachment
        return self.run(work)

    def attachment_get(self, attachment_id: str) -> models.VolumeAttachment:
        return self.run(lambda s: _get(s, attachment_id))

    def attachment_list(self, *, volume_id: str | None = None, server_id: str | None = None,
                        project_id: str | None = None) -> list[models.VolumeAttachment]:
        """Live attachments, filtered by volume, server and the volume's project."""
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
            query = query.order_by(models.VolumeAttachment.created_at)
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

    def attachment_update(self, attachment_id: str, values: Mapping[str, Any]) -> bool:
        return self.run(lambda s: conditional_update(
            s, models.VolumeAttachment, attachment_id, values))

    def attach_complete(self, volume_id: str, attachment_id: str,
                        connection_info: Mapping[str, Any]) -> bool:
        """attaching → in-use, attachment → attached with its connection_info."""
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
        """attaching → error_attaching; the failed attachment is closed so a retry or a
        delete is possible."""
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

    def detach_begin(self, volume_id: str, server_id: str, *,
                     project_id: str | None = None) -> models.VolumeAttachment:
        """in-use → detaching for the attachment to ``server_id``."""
        def work(session: Session) -> models.VolumeAttachment:
            get_volume(session, volume_id, project_id)
            attachment = session.execute(sa.select(models.VolumeAttachment).where(
                models.VolumeAttachment.volume_id == volume_id,
                models.VolumeAttachment.server_id == server_id,
                models.VolumeAttachment.deleted == sa.false(),
            )).scalars().first()
            if attachment is None:
                raise exception.AttachmentNotFound(volume_id=volume_id, server_id=server_id)
            transition_or_raise(session, volume_id, states.CAN_DETACH_FROM,
                                {"status": states.DETACHING, "status_reason": None,
                                 "recovery_attempts": 0})
            conditional_update(session, models.VolumeAttachment, attachment.id,
                               {"attach_status": states.ATTACH_DETACHING},
                               expected_status=_LIVE_ATTACHED,
                               status_column="attach_status")
            session.refresh(attachment)
            return attachment
        return self.run(work)

    def detach_complete(self, volume_id: str, attachment_id: str) -> bool:
        """Close the attachment; detaching → available."""
        def work(session: Session) -> bool:
            if not conditional_update(session, models.Volume, volume_id,
                                      {"status": states.AVAILABLE, "status_reason": None},
                                      expected_status=(states.DETACHING,)):
                return False
            conditional_update(session, models.VolumeAttachment, attachment_id,
                               {"attach_status": states.ATTACH_DETACHED,
                                "detached_at": models.utcnow(),
                                "deleted": True, "deleted_at": models.utcnow()})
            return True
        return self.run(work)

    def detach_failed(self, volume_id: str, attachment_id: str, reason: str) -> bool:
        """detaching → error_detaching; the attachment stays so detach can be retried."""
        def work(session: Session) -> bool:
            won = conditional_update(session, models.Volume, volume_id,
                                     {"status": states.ERROR_DETACHING,
                                      "status_reason": reason},
                                     expected_status=(states.DETACHING,))
            conditional_update(session, models.VolumeAttachment, attachment_id,
                               {"attach_status": states.ATTACH_ERROR_DETACHING})
            return won
        return self.run(work)

    def attachment_for_volume(self, volume_id: str) -> models.VolumeAttachment | None:
        """The live attachment of a volume (volumes attach to one server at a time)."""
        def work(session: Session) -> models.VolumeAttachment | None:
            return session.execute(sa.select(models.VolumeAttachment).where(
                models.VolumeAttachment.volume_id == volume_id,
                models.VolumeAttachment.deleted == sa.false(),
            ).order_by(models.VolumeAttachment.created_at.desc())).scalars().first()
        return self.run(work)
