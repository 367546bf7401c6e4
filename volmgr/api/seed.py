"""The Compute API 1.1 "Volumes" extension face (``/v1.1/{project_id}``), the API volmgr
first served ("the seed face", docs/architecture.md): camelCase views, JSON or XML.

Controllers validate and translate; the state changes are ``ApiOperations``' job.
"""

from __future__ import annotations

import datetime
from typing import Any

from volmgr import exception, states
from volmgr.api import seed_xml
from volmgr.api import validation as v
from volmgr.api.operations import ApiOperations
from volmgr.api.wsgi import ApiRequest, ApiResponse, Face, Router
from volmgr.db import models

PREFIX = "/v1.1/{project_id}"

#: The extension document, exactly as the seed gives it.
VOLUMES_EXTENSION: dict[str, Any] = {
    "updated": "2011-03-25T00:00:00+00:00",
    "name": "Volumes",
    "links": [],
    "namespace": "http://docs.openstack.org/ext/volumes/api/v1.1",
    "alias": "os-volumes",
    "description": "Volumes support",
}

_CREATE_FIELDS = ("size", "display_name", "display_description", "metadata",
                  "volume_type", "availability_zone", "snapshot_id")
_ATTACH_FIELDS = ("volumeId", "device", "connector", "id", "serverId")


def timestamp(value: datetime.datetime | None) -> str | None:
    """``2011-08-16T12:00:00.000000``: the stored UTC time, without an offset."""
    if value is None:
        return None
    if value.tzinfo is None:  # isoformat is several times cheaper than strftime
        return value.isoformat(timespec="microseconds")
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")


def attachment_view(attachment: models.VolumeAttachment) -> dict[str, Any]:
    # The seed's attachment id is the volume id: attachments are addressed by volume.
    return {"id": attachment.volume_id, "volumeId": attachment.volume_id,
            "serverId": attachment.server_id, "device": attachment.device}


def volume_view(volume: models.Volume) -> dict[str, Any]:
    view = {
        "id": volume.id, "status": states.public_status(volume.status), "size": volume.size,
        "availabilityZone": volume.availability_zone,
        "createdAt": timestamp(volume.created_at),
        "displayName": volume.display_name,
        "displayDescription": volume.display_description,
        "volumeType": volume.volume_type, "snapshotId": volume.snapshot_id,
        "metadata": dict(volume.metadata_ or {}),
        "attachments": [attachment_view(a) for a in volume.attachments],
    }
    # volmgr's own field, as on the v3 face: why a volume in an error* status failed.
    if volume.status_reason and volume.status.startswith("error"):
        view["statusReason"] = volume.status_reason
    return view


class SeedController:
    """Handlers of the seed face."""

    def __init__(self, ops: ApiOperations, max_volume_size: int, max_limit: int) -> None:
        self.ops = ops
        self.max_volume_size = max_volume_size
        self.max_limit = max_limit

    # -- extensions ----------------------------------------------------------------

    def extensions(self, req: ApiRequest) -> ApiResponse:
        return ApiResponse(200, {"extensions": [dict(VOLUMES_EXTENSION)]})

    def extension(self, req: ApiRequest) -> ApiResponse:
        alias = req.params["alias"]
        if alias != VOLUMES_EXTENSION["alias"]:
            raise exception.ExtensionNotFound(alias=alias)
        return ApiResponse(200, {"extension": dict(VOLUMES_EXTENSION)})

    # -- volumes -------------------------------------------------------------------

    def list_volumes(self, req: ApiRequest) -> ApiResponse:
        limit = req.query("limit")
        offset = req.query("offset")
        all_tenants = req.ctx.is_admin and req.query("all_tenants") in ("1", "true", "True")
        volumes = self.ops.list_volumes(
            req.ctx, None if all_tenants else req.params["project_id"],
            limit=v.integer(limit, "limit", minimum=0, maximum=self.max_limit)
            if limit is not None else self.max_limit,
            offset=v.integer(offset, "offset", minimum=0) if offset is not None else 0)
        return ApiResponse(200, {"volumes": [volume_view(vol) for vol in volumes]})

    def show_volume(self, req: ApiRequest) -> ApiResponse:
        volume = self.ops.get_volume(req.ctx, req.params["volume_id"])
        return ApiResponse(200, {"volume": volume_view(volume)})

    def create_volume(self, req: ApiRequest) -> ApiResponse:
        body = v.member(req.body, "volume")
        v.only_fields(body, _CREATE_FIELDS, "volume")
        snapshot_id = body.get("snapshot_id")
        volume = self.ops.create_volume(
            req.ctx,
            size=v.size(body.get("size"), self.max_volume_size),
            name=v.text(body.get("display_name"), "display_name"),
            description=v.text(body.get("display_description"), "display_description",
                               v.MAX_DESCRIPTION),
            metadata=v.metadata(body.get("metadata")),
            availability_zone=v.text(body.get("availability_zone"), "availability_zone"),
            volume_type=v.text(body.get("volume_type"), "volume_type"),
            snapshot_id=v.uuid_like(snapshot_id, "snapshot_id") if snapshot_id else None)
        return ApiResponse(200, {"volume": volume_view(volume)})

    def delete_volume(self, req: ApiRequest) -> ApiResponse:
        self.ops.delete_volume(req.ctx, req.params["volume_id"])
        return ApiResponse(202)

    # -- attachments ---------------------------------------------------------------

    def list_attachments(self, req: ApiRequest) -> ApiResponse:
        found = self.ops.list_attachments(req.ctx, req.params["server_id"],
                                          req.params["project_id"])
        return ApiResponse(200, {"volumeAttachments": [attachment_view(a) for a in found]})

    def show_attachment(self, req: ApiRequest) -> ApiResponse:
        attachment = self.ops.get_attachment(req.ctx, req.params["server_id"],
                                             req.params["volume_id"])
        view = attachment_view(attachment)
        volume = self.ops.get_volume(req.ctx, attachment.volume_id)
        # connection_info carries the CHAP secret: only the owning project sees it,
        # and only once the export exists.
        if (volume.project_id == req.ctx.project_id and volume.status == states.IN_USE
                and attachment.attach_status == states.ATTACH_ATTACHED
                and attachment.connection_info):
            view["connection_info"] = attachment.connection_info
        return ApiResponse(200, {"volumeAttachment": view})

    def attach(self, req: ApiRequest) -> ApiResponse:
        body = v.member(req.body, "volumeAttachment")
        v.only_fields(body, _ATTACH_FIELDS, "volumeAttachment")
        server_id = req.params["server_id"]
        if body.get("serverId") not in (None, server_id):
            raise v.bad("'serverId' in the body differs from the server in the URL")
        volume_id = v.uuid_like(body.get("volumeId"), "volumeId")
        if body.get("id") not in (None, volume_id):
            raise v.bad("'id' in the body differs from 'volumeId'")
        device = v.text(body.get("device"), "device")
        if device is not None and not device.startswith("/dev/"):
            raise v.bad("'device' must be a path under /dev/")
        attachment = self.ops.attach(req.ctx, server_id, volume_id, device=device,
                                     connector=v.connector(body.get("connector")))
        return ApiResponse(202, {"volumeAttachment": attachment_view(attachment)})

    def detach(self, req: ApiRequest) -> ApiResponse:
        self.ops.detach(req.ctx, req.params["server_id"], req.params["volume_id"])
        return ApiResponse(202)


def add_routes(router: Router, ops: ApiOperations, max_volume_size: int,
               max_limit: int) -> None:
    c = SeedController(ops, max_volume_size, max_limit)
    xml = Face(seed_xml.serialize, seed_xml.deserialize, suffixes=True)
    servers = PREFIX + "/servers/{server_id}/os-volume_attachments"
    router.add("GET", PREFIX + "/extensions", c.extensions, face=xml)
    router.add("GET", PREFIX + "/extensions/{alias}", c.extension, face=xml)
    router.add("GET", PREFIX + "/os-volumes", c.list_volumes, face=xml)
    router.add("GET", PREFIX + "/os-volumes/detail", c.list_volumes, face=xml)
    router.add("POST", PREFIX + "/os-volumes", c.create_volume, face=xml)
    router.add("GET", PREFIX + "/os-volumes/{volume_id}", c.show_volume, face=xml)
    router.add("DELETE", PREFIX + "/os-volumes/{volume_id}", c.delete_volume, face=xml)
    router.add("GET", servers, c.list_attachments, face=xml)
    router.add("POST", servers, c.attach, face=xml)
    router.add("GET", servers + "/{volume_id}", c.show_attachment, face=xml)
    router.add("DELETE", servers + "/{volume_id}", c.detach, face=xml)
