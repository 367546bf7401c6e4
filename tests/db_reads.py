"""Reads the tests make to see what volmgr wrote, which volmgr itself never needs.

They stay out of ``volmgr.db`` so that the database API holds only what the product
calls; each is one plain SELECT through the same ``Database``.
"""

from __future__ import annotations

import sqlalchemy as sa

from volmgr.db import Database, models


def quota_usage(db: Database, project_id: str) -> dict[str, int]:
    """The project's reserved counters, resource → in use (its ``quota_usages`` rows)."""
    usage = models.table(models.QuotaUsage)
    rows = db.run(lambda session: session.execute(
        sa.select(usage.c.resource, usage.c.in_use).where(
            usage.c.project_id == project_id)).all())
    return {resource: in_use for resource, in_use in rows}


def newest_attachment(db: Database, volume_id: str) -> models.VolumeAttachment | None:
    """The volume's newest live attachment, if it has any."""
    live = db.attachment_list(volume_id=volume_id, newest_first=True)
    return live[0] if live else None
