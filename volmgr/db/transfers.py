"""Volume transfers between projects: offered (the volume waits in
``awaiting-transfer``), withdrawn, or accepted by another project in one transaction
that moves the volume, its snapshots and their quota usage.

Only a salted hash of the auth key is stored; the key itself is returned once, by
``transfer_create``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from volmgr import exception, states
from volmgr.db import models, quota
from volmgr.db.core import DatabaseCore, SortOrder, conditional_update, list_live
from volmgr.db.volumes import get_volume, lock_volume, transition_or_raise

LOG = logging.getLogger(__name__)

_snapshots = models.table(models.Snapshot)
_encryption = models.table(models.Encryption)
_transfers = models.table(models.Transfer)

#: Hex characters in a generated auth key (64 bits) and in its salt.
AUTH_KEY_LENGTH = 16
SALT_LENGTH = 16
#: Listing order below microversion 3.59 (and the default above it).
OLDEST_FIRST: SortOrder = (("created_at", "asc"),)


def auth_key_hash(salt: str, auth_key: str) -> str:
    """HMAC-SHA256 of the auth key under the transfer's salt."""
    return hmac.new(salt.encode(), auth_key.encode(), hashlib.sha256).hexdigest()


def get_transfer(session: Session, transfer_id: str,
                 project_id: str | None = None) -> models.Transfer:
    """A pending transfer, offered by ``project_id`` when given."""
    query = sa.select(models.Transfer).where(models.Transfer.id == transfer_id,
                                             models.Transfer.deleted == sa.false())
    if project_id is not None:
        query = query.where(models.Transfer.source_project_id == project_id)
    transfer = session.execute(query).scalar_one_or_none()
    if transfer is None:
        raise exception.TransferNotFound(transfer_id=transfer_id)
    return transfer


def _live_snapshots(session: Session, volume_id: str, *,
                    lock: bool = False) -> list[models.Snapshot]:
    query = sa.select(models.Snapshot).where(models.Snapshot.volume_id == volume_id,
                                             models.Snapshot.deleted == sa.false())
    if lock:
        query = query.with_for_update()
    return list(session.execute(query).scalars())


def _is_encrypted(session: Session, volume: models.Volume) -> bool:
    """Whether the volume's type carries an encryption record."""
    if volume.volume_type_id is None:
        return False
    return session.execute(sa.select(_encryption.c.encryption_id).where(
        _encryption.c.volume_type_id == volume.volume_type_id,
        _encryption.c.deleted == sa.false()).limit(1)).first() is not None


def _require_available_snapshots(snapshots: list[models.Snapshot]) -> None:
    for snapshot in snapshots:
        if snapshot.status != states.SNAP_AVAILABLE:
            raise exception.InvalidSnapshot(
                reason=f"snapshot {snapshot.id} is {snapshot.status}; a volume is "
                f"transferred with its snapshots only when they are all available")


class TransferQueries(DatabaseCore):
    """Create, read, withdraw and accept volume transfers."""

    def transfer_create(self, volume_id: str, *, project_id: str | None,
                        display_name: str | None = None,
                        no_snapshots: bool = False,
                        allow_encrypted: bool = False) -> tuple[models.Transfer, str]:
        """Offer an ``available`` volume (of ``project_id`` when given): it moves to
        ``awaiting-transfer`` in the same transaction. An encrypted volume is offered
        only with ``allow_encrypted`` (3.70) and with its snapshots. Returns the transfer
        and its auth key, which is not stored and cannot be read again."""
        auth_key = secrets.token_hex(AUTH_KEY_LENGTH // 2)

        def work(session: Session) -> models.Transfer:
            volume = get_volume(session, volume_id, project_id)
            if _is_encrypted(session, volume):
                if not allow_encrypted:
                    raise exception.InvalidVolume(
                        reason="transferring an encrypted volume is not supported "
                        "before microversion 3.70")
                if no_snapshots:
                    raise exception.InvalidVolume(
                        reason="an encrypted volume is transferred with its snapshots")
            transition_or_raise(session, volume_id, (states.AVAILABLE,),
                                {"status": states.AWAITING_TRANSFER}, project_id=project_id)
            if not no_snapshots:
                # The volume row is locked by the transition: no snapshot can start now.
                _require_available_snapshots(_live_snapshots(session, volume_id))
            salt = secrets.token_hex(SALT_LENGTH // 2)
            transfer = models.Transfer(
                volume_id=volume_id, display_name=display_name, salt=salt,
                crypt_hash=auth_key_hash(salt, auth_key),
                source_project_id=volume.project_id, destination_project_id=None,
                accepted=False, no_snapshots=no_snapshots)
            session.add(transfer)
            session.flush()
            session.refresh(transfer)
            return transfer
        return self.run(work), auth_key

    def transfer_get(self, transfer_id: str, project_id: str | None = None) -> models.Transfer:
        return self.run(lambda s: get_transfer(s, transfer_id, project_id))

    def transfer_list(self, project_id: str | None, *,
                      filters: Mapping[str, Any] | None = None,
                      limit: int | None = None, marker: str | None = None,
                      offset: int = 0, sort: SortOrder = OLDEST_FIRST,
                      ) -> list[models.Transfer]:
        """Pending transfers offered by ``project_id`` (every project when None);
        ``marker`` names the last transfer of the previous page."""
        scoped = dict(filters or {})
        if project_id is not None:
            scoped["source_project_id"] = project_id

        def work(session: Session) -> list[models.Transfer]:
            anchor = get_transfer(session, marker, project_id) if marker else None
            return list_live(session, models.Transfer, project_id=None, filters=scoped,
                             anchor=anchor, limit=limit, offset=offset, sort=sort)
        return self.run(work)

    def transfer_delete(self, transfer_id: str, project_id: str | None = None) -> None:
        """Withdraw a pending transfer: the volume is ``available`` again."""
        def work(session: Session) -> None:
            transfer = get_transfer(session, transfer_id, project_id)
            # The transfer row first, as accept takes it: a racing accept loses, or wins
            # and this withdrawal finds nothing.
            if not conditional_update(session, models.Transfer, transfer_id,
                                      {"deleted": True, "deleted_at": models.utcnow()}):
                raise exception.TransferNotFound(transfer_id=transfer_id)
            if not conditional_update(session, models.Volume, transfer.volume_id,
                                      {"status": states.AVAILABLE},
                                      expected_status=(states.AWAITING_TRANSFER,)):
                LOG.warning("Transfer %s: volume %s was no longer awaiting transfer",
                            transfer_id, transfer.volume_id)
        self.run(work)

    def transfer_accept(self, transfer_id: str, auth_key: str, *, project_id: str,
                        user_id: str) -> models.Transfer:
        """Give the volume (and, unless the offer excluded them, its snapshots) to
        ``project_id``/``user_id``, moving their quota usage from the donor, all in one
        transaction: a wrong key is InvalidAuthKey, a receiver without room
        QuotaExceeded, and either leaves everything as it was."""
        def work(session: Session) -> models.Transfer:
            transfer = get_transfer(session, transfer_id)
            if not hmac.compare_digest(auth_key_hash(transfer.salt, auth_key),
                                       transfer.crypt_hash):
                raise exception.InvalidAuthKey(
                    reason=f"the auth key does not open transfer {transfer_id}")
            # Claim the offer first: a concurrent accept or withdrawal then loses here.
            if not conditional_update(
                    session, models.Transfer, transfer_id,
                    {"deleted": True, "deleted_at": models.utcnow(), "accepted": True,
                     "destination_project_id": project_id}):
                raise exception.TransferNotFound(transfer_id=transfer_id)
            lock_volume(session, transfer.volume_id)
            volume = get_volume(session, transfer.volume_id)
            donor = volume.project_id
            if not conditional_update(
                    session, models.Volume, volume.id,
                    {"status": states.AVAILABLE, "project_id": project_id,
                     "user_id": user_id},
                    expected_status=(states.AWAITING_TRANSFER,)):
                raise exception.InvalidVolume(
                    reason=f"volume {volume.id} is {volume.status}, not awaiting transfer")
            deltas = {quota.VOLUMES: 0, quota.GIGABYTES: 0, quota.SNAPSHOTS: 0}
            if volume.quota_held:
                deltas[quota.VOLUMES] = 1
                deltas[quota.GIGABYTES] = volume.size
            if not transfer.no_snapshots:
                snapshots = _live_snapshots(session, volume.id, lock=True)
                _require_available_snapshots(snapshots)
                if snapshots:
                    session.execute(sa.update(_snapshots).where(
                        _snapshots.c.id.in_([snap.id for snap in snapshots]),
                    ).values(project_id=project_id, user_id=user_id,
                             updated_at=models.utcnow()))
                deltas[quota.SNAPSHOTS] = len(snapshots)
                deltas[quota.GIGABYTES] += sum(snap.size for snap in snapshots)
            if donor != project_id:
                self._move_usage(session, donor, project_id, deltas, volume.size)
            session.expire(transfer)
            return session.execute(sa.select(models.Transfer).where(
                models.Transfer.id == transfer_id)).scalar_one()
        return self.run(work)

    def _move_usage(self, session: Session, donor: str, receiver: str,
                    deltas: Mapping[str, int], volume_size: int) -> None:
        """Reserve ``deltas`` for the receiver (within its limits) and release them from
        the donor; the two projects' usage rows are locked in id order, so transfers
        crossing each other do not deadlock."""
        steps = [(receiver, True), (donor, False)]
        for project, receiving in sorted(steps):
            if receiving:
                quota.reserve(session, self.quota_limits, project, deltas,
                              volume_size=volume_size)
            else:
                quota.release(session, project, deltas)
