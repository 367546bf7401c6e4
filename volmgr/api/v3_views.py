"""How volumes and snapshots look on the Block Storage v3 face, per microversion.

The fields follow the Block Storage API reference and the response schemas clients
validate: a field appears at the microversion that introduced it and not before, and
extension attributes (``os-vol-tenant-attr``, ``os-vol-host-attr``, …) appear on show
and detail listings only, never in the reply to a create or an update.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from volmgr import states
from volmgr.api.seed import timestamp
from volmgr.api.v3_base import links
from volmgr.api.wsgi import ApiRequest
from volmgr.db import models

#: Turns a manager host name into the ``host@backend#pool`` form admins see.
HostView = Callable[[str | None], str | None]


def attachment_summary(req: ApiRequest, attachment: Any) -> dict[str, Any]:
    """One entry of a volume's ``attachments`` (attached ones only), from a
    ``VolumeAttachment`` or a row with its columns; the compute host's name is shown to
    admins only."""
    return {"id": attachment.volume_id, "attachment_id": attachment.id,
            "volume_id": attachment.volume_id, "server_id": attachment.server_id,
            "host_name": (attachment.connector or {}).get("host")
            if req.ctx.is_admin else None,
            "device": attachment.device, "attached_at": timestamp(attachment.attached_at)}


def volume_view(req: ApiRequest, volume: models.Volume, host_view: HostView, *,
                extended: bool = True, encrypted: bool = False,
                attached: Sequence[Any] | None = None) -> dict[str, Any]:
    """The volume as show and detail give it (``extended``), or as create and update
    answer it (without the extension attributes); ``encrypted`` when its type has an
    encryption record. ``attached``: the volume's attached attachments when the caller
    read them itself (a detail listing), else the volume's own are shown."""
    admin = req.ctx.is_admin
    if attached is None:
        attached = [a for a in volume.attachments
                    if a.attach_status == states.ATTACH_ATTACHED]
    view: dict[str, Any] = {
        "id": volume.id, "name": volume.display_name,
        "status": states.public_status(volume.status),
        "size": volume.size, "availability_zone": volume.availability_zone,
        "created_at": timestamp(volume.created_at),
        "updated_at": timestamp(volume.updated_at),
        "description": volume.display_description, "volume_type": volume.volume_type,
        "snapshot_id": volume.snapshot_id, "source_volid": volume.source_volid,
        "metadata": _volume_metadata(volume),
        "links": links(req, "volumes", volume.id, volume.project_id),
        "user_id": volume.user_id, "bootable": "true" if volume.bootable else "false",
        "encrypted": encrypted, "replication_status": None, "consistencygroup_id": None,
        "multiattach": bool(volume.multiattach),
        "attachments": [attachment_summary(req, a) for a in attached],
    }
    if admin:
        view["migration_status"] = volume.migration_status
    if req.at_least("3.13"):
        view["group_id"] = None
    if admin and req.at_least("3.21"):
        view["provider_id"] = None
    if req.at_least("3.48"):
        # One target per volume: a compute host never shares a target between volumes.
        view["shared_targets"] = False
        view["service_uuid"] = None
    if admin and req.at_least("3.61"):
        view["cluster_name"] = None
    if req.at_least("3.63"):
        view["volume_type_id"] = volume.volume_type_id
    if req.at_least("3.65"):
        view["consumes_quota"] = True
    if extended:
        view["os-vol-tenant-attr:tenant_id"] = volume.project_id
        if admin:
            view["os-vol-host-attr:host"] = host_view(volume.host)
            view["os-vol-mig-status-attr:migstat"] = volume.migration_status
            view["os-vol-mig-status-attr:name_id"] = None
        if volume.image_metadata:
            view["volume_image_metadata"] = dict(volume.image_metadata)
    return view


def _volume_metadata(volume: models.Volume) -> dict[str, Any]:
    """The owner's metadata, plus the service-owned ``readonly`` flag once it was set
    (shown there, read-only, as the reference service does)."""
    metadata = dict(volume.metadata_ or {})
    readonly = (volume.admin_metadata or {}).get("readonly")
    if readonly is not None:
        metadata["readonly"] = readonly
    return metadata


def volume_summary_view(req: ApiRequest, volume: models.Volume) -> dict[str, Any]:
    return {"id": volume.id, "name": volume.display_name,
            "links": links(req, "volumes", volume.id, volume.project_id)}


def snapshot_view(req: ApiRequest, snapshot: models.Snapshot, *,
                  extended: bool = True) -> dict[str, Any]:
    """The snapshot as show and detail give it (``extended``), or as create, update and
    the summary list give it."""
    view: dict[str, Any] = {
        "id": snapshot.id, "name": snapshot.display_name,
        "description": snapshot.display_description,
        "status": states.public_status(snapshot.status),
        "size": snapshot.size, "volume_id": snapshot.volume_id,
        "created_at": timestamp(snapshot.created_at),
        "updated_at": timestamp(snapshot.updated_at),
        "metadata": dict(snapshot.metadata_ or {}),
    }
    if req.at_least("3.14"):
        view["group_snapshot_id"] = None
    if req.at_least("3.41"):
        view["user_id"] = snapshot.user_id
    if req.at_least("3.65"):
        view["consumes_quota"] = True
    if extended:
        view["os-extended-snapshot-attributes:project_id"] = snapshot.project_id
        view["os-extended-snapshot-attributes:progress"] = snapshot.progress or (
            "100%" if snapshot.status == states.SNAP_AVAILABLE else "0%")
    return view
