"""SQLAlchemy 2.0 typed models: volumes, attachments, snapshots, services, quota usage.

Rows are soft-deleted (``deleted``/``deleted_at``) so history is kept; timestamps are
naive UTC. Constraint names follow ``NAMING_CONVENTION`` so migrations stay portable
across SQLite, PostgreSQL and MySQL.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime.datetime:
    """Naive UTC now; every timestamp column stores naive UTC."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def new_uuid() -> str:
    return str(uuid.uuid4())


UUID = Annotated[str, mapped_column(sa.String(36))]
UUIDKey = Annotated[str, mapped_column(sa.String(36), primary_key=True, default=new_uuid)]
ProjectId = Annotated[str, mapped_column(sa.String(255), index=True)]
Status = Annotated[str, mapped_column(sa.String(32), index=True)]
#: Microsecond timestamps everywhere. MySQL/MariaDB's plain DATETIME keeps whole seconds,
#: which breaks "newest first" paging and lets recovery claim the same row twice within
#: one second; PostgreSQL and SQLite keep microseconds anyway.
PRECISE_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

Timestamp = Annotated[datetime.datetime, mapped_column(PRECISE_DATETIME, default=utcnow)]
OptionalTimestamp = Annotated[datetime.datetime | None, mapped_column(PRECISE_DATETIME)]
ShortText = Annotated[str | None, mapped_column(sa.String(255))]
JSONDict = Annotated[dict[str, Any], mapped_column(sa.JSON, default=dict)]


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    created_at: Mapped[Timestamp]
    updated_at: Mapped[datetime.datetime | None] = mapped_column(
        PRECISE_DATETIME, default=utcnow, onupdate=utcnow)


class SoftDeleteMixin:
    deleted: Mapped[bool] = mapped_column(sa.Boolean, default=False, index=True)
    deleted_at: Mapped[OptionalTimestamp]


class StatusMixin:
    """What volumes and snapshots share: a status with its reason, when it was asked for
    and how often recovery re-drove it, and the owner's name and description."""

    status: Mapped[Status]
    status_reason: Mapped[str | None] = mapped_column(sa.Text)
    status_changed_at: Mapped[Timestamp]
    recovery_attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    display_name: Mapped[ShortText]
    display_description: Mapped[str | None] = mapped_column(sa.Text)


class Volume(StatusMixin, TimestampMixin, SoftDeleteMixin, Base):
    """A block volume. ``status_changed_at`` is when the current status was asked for:
    recovery re-drives transitional rows that have not moved since then."""

    __tablename__ = "volumes"
    # Every filter and sort key of the v3 listing has an index, with id after it for
    # the sort's tie-break (docs/scaling.md); the two listing indexes serve the default
    # order (newest first) with keyset paging for one project and for an admin's
    # all_tenants. Added by migration 0004.
    __table_args__ = (
        sa.Index("ix_volumes_project_listing", "project_id", "deleted", "created_at", "id"),
        sa.Index("ix_volumes_listing", "deleted", "created_at", "id"),
        sa.Index("ix_volumes_display_name", "display_name", "id"),
        sa.Index("ix_volumes_size", "size", "id"),
        sa.Index("ix_volumes_user_id", "user_id", "id"),
        sa.Index("ix_volumes_availability_zone", "availability_zone", "id"),
        sa.Index("ix_volumes_bootable", "bootable", "id"),
        sa.Index("ix_volumes_migration_status", "migration_status", "id"),
        sa.Index("ix_volumes_updated_at", "updated_at", "id"),
    )

    id: Mapped[UUIDKey]
    project_id: Mapped[ProjectId]
    user_id: Mapped[str] = mapped_column(sa.String(255))
    host: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    size: Mapped[int] = mapped_column(sa.Integer)
    availability_zone: Mapped[str] = mapped_column(sa.String(255), default="nova")
    volume_type: Mapped[ShortText]
    snapshot_id: Mapped[str | None] = mapped_column(sa.String(36))
    source_volid: Mapped[str | None] = mapped_column(sa.String(36))
    metadata_: Mapped[JSONDict] = mapped_column("metadata", sa.JSON, default=dict)
    provider_location: Mapped[ShortText]
    provider_auth: Mapped[ShortText]
    target_size: Mapped[int | None] = mapped_column(sa.Integer)
    """Size asked for by an extend that is in progress."""
    quota_held: Mapped[bool] = mapped_column(sa.Boolean, default=True,
                                             server_default=sa.true())
    """Whether the row still holds its volumes/gigabytes reservation (a volume no host
    could take gives it back at once, and its later delete must not give it twice)."""
    # -- Block Storage v3 (migration 0004) --
    volume_type_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    bootable: Mapped[bool] = mapped_column(sa.Boolean, default=False,
                                           server_default=sa.false())
    multiattach: Mapped[bool] = mapped_column(sa.Boolean, default=False,
                                              server_default=sa.false())
    admin_metadata: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, default=dict)
    """Service-owned flags such as ``readonly`` (never writable through metadata)."""
    image_metadata: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, default=dict)
    """``volume_image_metadata``: plain key/value data about the image, if any."""
    migration_status: Mapped[ShortText]

    attachments: Mapped[list[VolumeAttachment]] = relationship(
        back_populates="volume",
        primaryjoin="and_(Volume.id == VolumeAttachment.volume_id, "
        "VolumeAttachment.deleted == False)",
        lazy="selectin",
        viewonly=True,
    )


class VolumeAttachment(TimestampMixin, SoftDeleteMixin, Base):
    """One volume attached to one server; ``connection_info`` is the os-brick shape."""

    __tablename__ = "volume_attachments"
    # The v3 attachment listing's order (migration 0004).
    __table_args__ = (
        sa.Index("ix_volume_attachments_listing", "deleted", "created_at", "id"),
    )

    id: Mapped[UUIDKey]
    volume_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("volumes.id"), index=True)
    server_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    device: Mapped[ShortText]
    attach_status: Mapped[Status]
    connector: Mapped[JSONDict]
    connection_info: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    attached_at: Mapped[OptionalTimestamp]
    detached_at: Mapped[OptionalTimestamp]
    attach_mode: Mapped[str] = mapped_column(sa.String(2), default="rw",
                                             server_default="rw")
    """``rw`` or ``ro`` (migration 0004)."""
    flow: Mapped[str] = mapped_column(sa.String(16), default="v3", server_default="compute")
    """Which protocol drives the attachment (migration 0004): ``compute`` (the Compute
    1.1 face: the manager completes it), ``v3`` (attachments API: the client completes)
    or ``legacy`` (volume actions: the client's ``os-attach`` completes). Recovery
    finishes a stuck ``compute`` attach and undoes a stuck client-driven connect."""

    volume: Mapped[Volume] = relationship(back_populates="attachments", viewonly=True)


class Snapshot(StatusMixin, TimestampMixin, SoftDeleteMixin, Base):
    """A point-in-time copy of a volume."""

    __tablename__ = "snapshots"
    # As for volumes: every filter and sort key of the v3 listing (migration 0004).
    __table_args__ = (
        sa.Index("ix_snapshots_project_listing", "project_id", "deleted", "created_at",
                 "id"),
        sa.Index("ix_snapshots_listing", "deleted", "created_at", "id"),
        sa.Index("ix_snapshots_display_name", "display_name", "id"),
        sa.Index("ix_snapshots_size", "size", "id"),
        sa.Index("ix_snapshots_user_id", "user_id", "id"),
        sa.Index("ix_snapshots_updated_at", "updated_at", "id"),
    )

    id: Mapped[UUIDKey]
    volume_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("volumes.id"), index=True)
    project_id: Mapped[ProjectId]
    user_id: Mapped[str] = mapped_column(sa.String(255))
    size: Mapped[int] = mapped_column(sa.Integer)
    host: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    metadata_: Mapped[JSONDict] = mapped_column("metadata", sa.JSON, default=dict)
    progress: Mapped[str | None] = mapped_column(sa.String(255))
    """What a compute host last reported while it made the snapshot (migration 0004)."""


class Service(TimestampMixin, Base):
    """A running volmgr process: heartbeat and the capacity its driver last reported."""

    __tablename__ = "services"
    __table_args__ = (sa.UniqueConstraint("host", "binary", name="uq_services_host_binary"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(sa.String(255))
    binary: Mapped[str] = mapped_column(sa.String(255))
    topic: Mapped[str] = mapped_column(sa.String(255))
    disabled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    disabled_reason: Mapped[ShortText]
    last_heartbeat: Mapped[OptionalTimestamp]
    report_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    capabilities: Mapped[JSONDict]


class QuotaUsage(TimestampMixin, Base):
    """How much of one resource a project uses; changed only by guarded UPDATEs."""

    __tablename__ = "quota_usages"
    __table_args__ = (
        sa.UniqueConstraint("project_id", "resource", name="uq_quota_usages_project_resource"),
        sa.CheckConstraint("in_use >= 0", name="in_use_not_negative"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(sa.String(255))
    resource: Mapped[str] = mapped_column(sa.String(64))
    in_use: Mapped[int] = mapped_column(sa.Integer, default=0)


# -- Block Storage v3 resources (migration 0004) -----------------------------------------


class VolumeType(TimestampMixin, SoftDeleteMixin, Base):
    """A volume type: a name, extra specs (``multiattach``, ``volume_backend_name`` …),
    public or private with an access list, optionally tied to QoS specs."""

    __tablename__ = "volume_types"

    id: Mapped[UUIDKey]
    name: Mapped[str] = mapped_column(sa.String(255), index=True)
    description: Mapped[ShortText]
    is_public: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    qos_specs_id: Mapped[str | None] = mapped_column(sa.String(36))
    extra_specs: Mapped[JSONDict]

    qos_specs: Mapped[QualityOfServiceSpecs | None] = relationship(
        primaryjoin="and_(foreign(VolumeType.qos_specs_id) == QualityOfServiceSpecs.id, "
        "QualityOfServiceSpecs.deleted == False)",
        lazy="selectin",
        viewonly=True,
    )
    """The associated QoS specs, loaded with the type (``db.types.qos_specs_for``)."""


class VolumeTypeProject(Base):
    """One project allowed to use a private volume type."""

    __tablename__ = "volume_type_projects"
    __table_args__ = (sa.UniqueConstraint("volume_type_id", "project_id",
                                          name="uq_volume_type_projects_type_project"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    volume_type_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("volume_types.id"), index=True)
    project_id: Mapped[str] = mapped_column(sa.String(255))


class DefaultVolumeType(TimestampMixin, Base):
    """A project's own default volume type (``/default-types``, microversion 3.62)."""

    __tablename__ = "default_volume_types"

    project_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    volume_type_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("volume_types.id"), index=True)


class Encryption(TimestampMixin, SoftDeleteMixin, Base):
    """The encryption record of a volume type (the compute host does the encrypting)."""

    __tablename__ = "encryption"

    encryption_id: Mapped[UUIDKey]
    volume_type_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("volume_types.id"), index=True)
    provider: Mapped[str] = mapped_column(sa.String(255))
    cipher: Mapped[ShortText]
    key_size: Mapped[int | None] = mapped_column(sa.Integer)
    control_location: Mapped[str] = mapped_column(sa.String(255), default="front-end")


class QualityOfServiceSpecs(TimestampMixin, SoftDeleteMixin, Base):
    """Named QoS specs (``consumer`` plus key/value specs), associated with types."""

    __tablename__ = "quality_of_service_specs"

    id: Mapped[UUIDKey]
    name: Mapped[str] = mapped_column(sa.String(255), index=True)
    consumer: Mapped[str] = mapped_column(sa.String(255), default="back-end")
    specs: Mapped[JSONDict]


class Quota(TimestampMixin, Base):
    """A project's own hard limit for one resource (absent: the class default)."""

    __tablename__ = "quotas"
    __table_args__ = (sa.UniqueConstraint("project_id", "resource",
                                          name="uq_quotas_project_resource"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    resource: Mapped[str] = mapped_column(sa.String(255))
    hard_limit: Mapped[int] = mapped_column(sa.Integer)


class QuotaClass(TimestampMixin, Base):
    """A quota class's hard limit for one resource (class ``default`` is the default)."""

    __tablename__ = "quota_classes"
    __table_args__ = (sa.UniqueConstraint("class_name", "resource",
                                          name="uq_quota_classes_class_resource"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    class_name: Mapped[str] = mapped_column(sa.String(255), index=True)
    resource: Mapped[str] = mapped_column(sa.String(255))
    hard_limit: Mapped[int] = mapped_column(sa.Integer)


class Transfer(TimestampMixin, SoftDeleteMixin, Base):
    """A volume transfer offer: the volume, a salted hash of the auth key, and who
    accepted it."""

    __tablename__ = "transfers"

    id: Mapped[UUIDKey]
    volume_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("volumes.id"), index=True)
    display_name: Mapped[ShortText]
    salt: Mapped[str] = mapped_column(sa.String(255))
    crypt_hash: Mapped[str] = mapped_column(sa.String(255))
    source_project_id: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    destination_project_id: Mapped[str | None] = mapped_column(sa.String(255))
    accepted: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    no_snapshots: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class Message(Base):
    """A user message (``/messages``): why a request of a project ended in error."""

    __tablename__ = "messages"

    id: Mapped[UUIDKey]
    project_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    request_id: Mapped[str | None] = mapped_column(sa.String(255))
    resource_type: Mapped[str | None] = mapped_column(sa.String(255))
    resource_uuid: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    event_id: Mapped[str] = mapped_column(sa.String(255))
    #: What was being done and what went wrong, as codes (``volmgr/db/messages.py``
    #: holds their texts); the API builds ``user_message`` from them.
    action_id: Mapped[str] = mapped_column(sa.String(10))
    detail_id: Mapped[str] = mapped_column(sa.String(10))
    message_level: Mapped[str] = mapped_column(sa.String(255), default="ERROR")
    #: A message lives ``[DEFAULT] message_ttl`` seconds from here (see the API).
    created_at: Mapped[Timestamp]
    deleted: Mapped[bool] = mapped_column(sa.Boolean, default=False, index=True)
    deleted_at: Mapped[OptionalTimestamp]


def table(model: type[Base]) -> sa.Table:
    """The Core table behind ``model``, typed for ``sa.update``/``sa.insert``."""
    return cast(sa.Table, model.__table__)
