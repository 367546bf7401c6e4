"""MySQL/MariaDB: microsecond timestamps (DATETIME(6)); other databases already have them

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 20:20:00
"""

from __future__ import annotations

from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = {
    "volumes": ("created_at", "updated_at", "deleted_at", "status_changed_at"),
    "snapshots": ("created_at", "updated_at", "deleted_at", "status_changed_at"),
    "volume_attachments": ("created_at", "updated_at", "deleted_at", "attached_at",
                           "detached_at"),
    "services": ("created_at", "updated_at", "last_heartbeat"),
    "quota_usages": ("created_at", "updated_at"),
}
NOT_NULL = {"created_at", "status_changed_at"}


def _alter(precise: bool) -> None:
    if op.get_bind().dialect.name not in ("mysql", "mariadb"):
        return
    new_type = mysql.DATETIME(fsp=6) if precise else mysql.DATETIME()
    old_type = mysql.DATETIME() if precise else mysql.DATETIME(fsp=6)
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch_op:
            for column in columns:
                batch_op.alter_column(column, type_=new_type, existing_type=old_type,
                                      existing_nullable=column not in NOT_NULL)


def upgrade() -> None:
    _alter(precise=True)


def downgrade() -> None:
    _alter(precise=False)


