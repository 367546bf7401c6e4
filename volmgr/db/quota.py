"""Per-project quota usage, reserved and released only by guarded UPDATEs.

A reservation is ``UPDATE quota_usages SET in_use = in_use + n WHERE ... AND
in_use + n <= limit``: two racing requests can never both take the last unit, and a
release never takes usage below zero.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from volmgr import exception
from volmgr.db import models
from volmgr.db.core import DatabaseCore

VOLUMES = "volumes"
GIGABYTES = "gigabytes"
SNAPSHOTS = "snapshots"

_usage = models.table(models.QuotaUsage)


def _ensure_usage_row(session: Session, project_id: str, resource: str) -> None:
    exists = session.execute(
        sa.select(_usage.c.id).where(_usage.c.project_id == project_id,
                                     _usage.c.resource == resource)).first()
    if exists:
        return
    try:
        with session.begin_nested():
            session.execute(sa.insert(_usage).values(
                project_id=project_id, resource=resource, in_use=0,
                created_at=models.utcnow(), updated_at=models.utcnow()))
    except sa_exc.IntegrityError:
        pass  # a concurrent request created it first; that row serves us too


def reserve(session: Session, limits: Mapping[str, int], project_id: str,
            deltas: Mapping[str, int]) -> None:
    """Add ``deltas`` to the project's usage inside ``session``'s transaction, or raise
    ``QuotaExceeded`` (the caller's rollback then undoes any partial reservation)."""
    for resource, delta in sorted(deltas.items()):
        if delta <= 0:
            continue
        _ensure_usage_row(session, project_id, resource)
        limit = limits.get(resource, -1)
        conditions = [_usage.c.project_id == project_id, _usage.c.resource == resource]
        if limit >= 0:
            conditions.append(_usage.c.in_use + delta <= limit)
        result = session.execute(sa.update(_usage).where(*conditions).values(
            in_use=_usage.c.in_use + delta, updated_at=models.utcnow()))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            in_use = session.execute(sa.select(_usage.c.in_use).where(
                _usage.c.project_id == project_id,
                _usage.c.resource == resource)).scalar_one()
            raise exception.QuotaExceeded(resource=resource, requested=delta,
                                          in_use=in_use, limit=limit)


def release(session: Session, project_id: str, deltas: Mapping[str, int]) -> None:
    """Subtract ``deltas`` from the project's usage, never going below zero."""
    for resource, delta in sorted(deltas.items()):
        if delta <= 0:
            continue
        session.execute(sa.update(_usage).where(
            _usage.c.project_id == project_id, _usage.c.resource == resource,
        ).values(
            in_use=sa.case((_usage.c.in_use >= delta, _usage.c.in_use - delta), else_=0),
            updated_at=models.utcnow()))


class QuotaQueries(DatabaseCore):
    """Quota operations as their own transactions (the other queries call the module
    functions inside theirs)."""

    def quota_reserve(self, project_id: str, deltas: Mapping[str, int]) -> None:
        self.run(lambda s: reserve(s, self.quota_limits, project_id, deltas))

    def quota_release(self, project_id: str, deltas: Mapping[str, int]) -> None:
        self.run(lambda s: release(s, project_id, deltas))

    def quota_usage(self, project_id: str) -> dict[str, int]:
        def work(session: Session) -> dict[str, int]:
            rows = session.execute(sa.select(_usage.c.resource, _usage.c.in_use).where(
                _usage.c.project_id == project_id)).all()
            return {resource: in_use for resource, in_use in rows}
        return self.run(work)

    def quota_limits_for(self, project_id: str) -> dict[str, int]:
        """Limits that apply to ``project_id`` (today: the configured defaults)."""
        return dict(self.quota_limits)
