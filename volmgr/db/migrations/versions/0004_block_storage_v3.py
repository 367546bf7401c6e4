"""Block Storage v3: volume types, encryption, QoS specs, quotas, quota classes,
transfers, user messages; volume flags and attachment mode

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 19:38:24.530992
"""

from __future__ import annotations

import datetime
import uuid

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('messages',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('request_id', sa.String(length=255), nullable=True),
    sa.Column('resource_type', sa.String(length=255), nullable=True),
    sa.Column('resource_uuid', sa.String(length=36), nullable=True),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('action_id', sa.String(length=10), nullable=False),
    sa.Column('detail_id', sa.String(length=10), nullable=False),
    sa.Column('message_level', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('deleted_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages'))
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_messages_deleted'), ['deleted'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_resource_uuid'), ['resource_uuid'], unique=False)

    op.create_table('quality_of_service_specs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('consumer', sa.String(length=255), nullable=False),
    sa.Column('specs', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('deleted_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quality_of_service_specs'))
    )
    with op.batch_alter_table('quality_of_service_specs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quality_of_service_specs_deleted'), ['deleted'], unique=False)
        batch_op.create_index(batch_op.f('ix_quality_of_service_specs_name'), ['name'], unique=False)

    op.create_table('quota_classes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('class_name', sa.String(length=255), nullable=False),
    sa.Column('resource', sa.String(length=255), nullable=False),
    sa.Column('hard_limit', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quota_classes')),
    sa.UniqueConstraint('class_name', 'resource', name='uq_quota_classes_class_resource')
    )
    with op.batch_alter_table('quota_classes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quota_classes_class_name'), ['class_name'], unique=False)

    op.create_table('quotas',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('resource', sa.String(length=255), nullable=False),
    sa.Column('hard_limit', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quotas')),
    sa.UniqueConstraint('project_id', 'resource', name='uq_quotas_project_resource')
    )
    with op.batch_alter_table('quotas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quotas_project_id'), ['project_id'], unique=False)

    volume_types = op.create_table('volume_types',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=True),
    sa.Column('is_public', sa.Boolean(), nullable=False),
    sa.Column('qos_specs_id', sa.String(length=36), nullable=True),
    sa.Column('extra_specs', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('deleted_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volume_types'))
    )
    with op.batch_alter_table('volume_types', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volume_types_deleted'), ['deleted'], unique=False)
        batch_op.create_index(batch_op.f('ix_volume_types_name'), ['name'], unique=False)

    # Data: the default volume type every deployment has (as in the reference service).
    op.bulk_insert(volume_types, [{
        'id': str(uuid.uuid4()), 'name': '__DEFAULT__',
        'description': 'Default Volume Type', 'is_public': True, 'qos_specs_id': None,
        'extra_specs': {}, 'created_at': datetime.datetime.now(datetime.UTC).replace(tzinfo=None),
        'updated_at': None, 'deleted': False, 'deleted_at': None}])

    op.create_table('default_volume_types',
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.Column('volume_type_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.ForeignKeyConstraint(['volume_type_id'], ['volume_types.id'], name=op.f('fk_default_volume_types_volume_type_id_volume_types')),
    sa.PrimaryKeyConstraint('project_id', name=op.f('pk_default_volume_types'))
    )
    with op.batch_alter_table('default_volume_types', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_default_volume_types_volume_type_id'), ['volume_type_id'], unique=False)

    op.create_table('encryption',
    sa.Column('encryption_id', sa.String(length=36), nullable=False),
    sa.Column('volume_type_id', sa.String(length=36), nullable=False),
    sa.Column('provider', sa.String(length=255), nullable=False),
    sa.Column('cipher', sa.String(length=255), nullable=True),
    sa.Column('key_size', sa.Integer(), nullable=True),
    sa.Column('control_location', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('deleted_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.ForeignKeyConstraint(['volume_type_id'], ['volume_types.id'], name=op.f('fk_encryption_volume_type_id_volume_types')),
    sa.PrimaryKeyConstraint('encryption_id', name=op.f('pk_encryption'))
    )
    with op.batch_alter_table('encryption', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_encryption_deleted'), ['deleted'], unique=False)
        batch_op.create_index(batch_op.f('ix_encryption_volume_type_id'), ['volume_type_id'], unique=False)

    op.create_table('transfers',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('volume_id', sa.String(length=36), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=True),
    sa.Column('salt', sa.String(length=255), nullable=False),
    sa.Column('crypt_hash', sa.String(length=255), nullable=False),
    sa.Column('source_project_id', sa.String(length=255), nullable=True),
    sa.Column('destination_project_id', sa.String(length=255), nullable=True),
    sa.Column('accepted', sa.Boolean(), nullable=False),
    sa.Column('no_snapshots', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('deleted_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.ForeignKeyConstraint(['volume_id'], ['volumes.id'], name=op.f('fk_transfers_volume_id_volumes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfers'))
    )
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transfers_deleted'), ['deleted'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfers_source_project_id'), ['source_project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfers_volume_id'), ['volume_id'], unique=False)

    op.create_table('volume_type_projects',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('volume_type_id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['volume_type_id'], ['volume_types.id'], name=op.f('fk_volume_type_projects_volume_type_id_volume_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_volume_type_projects')),
    sa.UniqueConstraint('volume_type_id', 'project_id', name='uq_volume_type_projects_type_project')
    )
    with op.batch_alter_table('volume_type_projects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volume_type_projects_volume_type_id'), ['volume_type_id'], unique=False)

    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('progress', sa.String(length=255), nullable=True))

    with op.batch_alter_table('volume_attachments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attach_mode', sa.String(length=2), server_default='rw', nullable=False))
        batch_op.add_column(sa.Column('flow', sa.String(length=16), server_default='compute', nullable=False))

    with op.batch_alter_table('volumes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('volume_type_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('bootable', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('multiattach', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('admin_metadata', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('image_metadata', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('migration_status', sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f('ix_volumes_volume_type_id'), ['volume_type_id'], unique=False)

    # Listing indexes: every filter and sort key the v3 API offers (docs/scaling.md).
    for table, name, columns in _LISTING_INDEXES:
        op.create_index(name, table, columns, unique=False)


_LISTING_INDEXES = (
    ('volumes', 'ix_volumes_project_listing', ['project_id', 'deleted', 'created_at', 'id']),
    ('volumes', 'ix_volumes_listing', ['deleted', 'created_at', 'id']),
    ('volumes', 'ix_volumes_display_name', ['display_name', 'id']),
    ('volumes', 'ix_volumes_size', ['size', 'id']),
    ('volumes', 'ix_volumes_user_id', ['user_id', 'id']),
    ('volumes', 'ix_volumes_availability_zone', ['availability_zone', 'id']),
    ('volumes', 'ix_volumes_bootable', ['bootable', 'id']),
    ('volumes', 'ix_volumes_migration_status', ['migration_status', 'id']),
    ('volumes', 'ix_volumes_updated_at', ['updated_at', 'id']),
    ('snapshots', 'ix_snapshots_project_listing', ['project_id', 'deleted', 'created_at', 'id']),
    ('snapshots', 'ix_snapshots_listing', ['deleted', 'created_at', 'id']),
    ('snapshots', 'ix_snapshots_display_name', ['display_name', 'id']),
    ('snapshots', 'ix_snapshots_size', ['size', 'id']),
    ('snapshots', 'ix_snapshots_user_id', ['user_id', 'id']),
    ('snapshots', 'ix_snapshots_updated_at', ['updated_at', 'id']),
    ('volume_attachments', 'ix_volume_attachments_listing', ['deleted', 'created_at', 'id']),
)


def downgrade() -> None:
    for table, name, _columns in reversed(_LISTING_INDEXES):
        op.drop_index(name, table_name=table)

    with op.batch_alter_table('volumes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_volumes_volume_type_id'))
        batch_op.drop_column('migration_status')
        batch_op.drop_column('image_metadata')
        batch_op.drop_column('admin_metadata')
        batch_op.drop_column('multiattach')
        batch_op.drop_column('bootable')
        batch_op.drop_column('volume_type_id')

    with op.batch_alter_table('volume_attachments', schema=None) as batch_op:
        batch_op.drop_column('flow')
        batch_op.drop_column('attach_mode')

    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.drop_column('progress')

    # Dropping a table drops its indexes; MySQL refuses to drop on its own an index that
    # a foreign key uses, so every new table goes whole, referencing tables first.
    for table in ('volume_type_projects', 'transfers', 'encryption', 'default_volume_types',
                  'volume_types', 'quotas', 'quota_classes', 'quality_of_service_specs'):
        op.drop_table(table)
    op.drop_table('messages')
