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
from volmgr.api.v3_base import link_pair, links, project_of
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


class VolumeShape:
    """What a volume looks like to one request: the caller's role and microversion
    decide which fields appear, and that is worked out once per request, not once per
    volume (a detail listing shows up to 1,000 with one shape). Show, create, update and
    the detail listing all use it, so a listing shows exactly what show shows.

    ``extended``: with the extension attributes (show and detail), or without them
    (the reply to a create or an update)."""

    def __init__(self, req: ApiRequest, host_view: HostView, *,
                 extended: bool = True) -> None:
        self.req = req
        self.host_view = host_view
        self.extended = extended
        self.admin = req.ctx.is_admin
        self._host_url = req.http.host_url
        self._default_project = project_of(req)
        # (field, value) pairs fixed for this request, in the order they appear.
        fixed: list[tuple[str, Any]] = []
        if req.at_least("3.13"):
            fixed.append(("group_id", None))
        if self.admin and req.at_least("3.21"):
            fixed.append(("provider_id", None))
        if req.at_least("3.48"):
            # One target per volume: a compute host never shares a target between volumes.
            fixed += [("shared_targets", False), ("service_uuid", None)]
        if self.admin and req.at_least("3.61"):
            fixed.append(("cluster_name", None))
        self._fixed = tuple(fixed)
        self._type_id = req.at_least("3.63")
        self._consumes_quota = req.at_least("3.65")

    def view(self, volume: models.Volume, *, encrypted: bool = False,
             attached: Sequence[Any] | None = None) -> dict[str, Any]:
        """``volume`` (an ORM object or a row with its columns) as this request sees it;
        ``encrypted`` when its type has an encryption record. ``attached``: the volume's
        attached attachments when the caller read them itself (a detail listing), else
        the volume's own are shown."""
        if attached is None:
            attached = [a for a in volume.attachments
                        if a.attach_status == states.ATTACH_ATTACHED]
        volume_id = volume.id
        project = volume.project_id or self._default_project
        view: dict[str, Any] = {
            "id": volume_id, "name": volume.display_name,
            "status": states.public_status(volume.status),
            "size": volume.size, "availability_zone": volume.availability_zone,
            "created_at": timestamp(volume.created_at),
            "updated_at": timestamp(volume.updated_at),
            "description": volume.display_description, "volume_type": volume.volume_type,
            "snapshot_id": volume.snapshot_id, "source_volid": volume.source_volid,
            "metadata": _volume_metadata(volume),
            "links": link_pair(self._host_url, project, "volumes", volume_id),
            "user_id": volume.user_id, "bootable": "true" if volume.bootable else "false",
            "encrypted": encrypted, "replication_status": None,
            "consistencygroup_id": None, "multiattach": bool(volume.multiattach),
            "attachments": [attachment_summary(self.req, a) for a in attached]
            if attached else [],
        }
        if self.admin:
            view["migration_status"] = volume.migration_status
        view.update(self._fixed)
        if self._type_id:
            view["volume_type_id"] = volume.volume_type_id
        if self._consumes_quota:
            view["consumes_quota"] = True
        if self.extended:
            view["os-vol-tenant-attr:tenant_id"] = volume.project_id
            if self.admin:
                view["os-vol-host-attr:host"] = self.host_view(volume.host)
                view["os-vol-mig-status-attr:migstat"] = volume.migration_status
                view["os-vol-mig-status-attr:name_id"] = None
            if volume.image_metadata:
                view["volume_image_metadata"] = dict(volume.image_metadata)
        return view


def volume_view(req: ApiRequest, volume: models.Volume, host_view: HostView, *,
                extended: bool = True, encrypted: bool = False,
                attached: Sequence[Any] | None = None) -> dict[str, Any]:
    """One volume as ``req`` sees it (see ``VolumeShape``)."""
    return VolumeShape(req, host_view, extended=extended).view(
        volume, encrypted=encrypted, attached=attached)


def _volume_metadata(volume: models.Volume) -> dict[str, Any]:
    """The owner's metadata, plus the service-owned ``readonly`` flag once it was set
    (shown there, read-only, as the reference service does)."""
    metadata = dict(volume.metadata_) if volume.metadata_ else {}
    admin_metadata = volume.admin_metadata
    if admin_metadata:
        readonly = admin_metadata.get("readonly")
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
