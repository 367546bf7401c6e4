"""The Block Storage v3 subset (``/v3/{project_id}`` and ``/v3``) that python-cinderclient
and openstacksdk need: volumes, ``os-extend``, snapshots, Cinder-style faults.

Microversions are negotiated in ``microversion``; fields appear where the reference adds them.
Controllers validate and translate; the state changes are ``Operations``' job.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from volmgr import exception
from volmgr.api import microversion as mv
from volmgr.api import validation as v
from volmgr.api.operations import Operations
from volmgr.api.seed import timestamp
from volmgr.api.v3_base import PREFIXES, V3Deps
from volmgr.api.wsgi import ApiRequest, ApiResponse, Router
from volmgr.db import models

_CREATE_FIELDS = ("size", "name", "description", "display_name", "display_description",
                  "volume_type", "availability_zone", "metadata", "snapshot_id",
                  "source_volid", "imageRef", "image_id", "consistencygroup_id",
                  "group_id", "backup_id", "multiattach")
_UNSUPPORTED_CREATE = ("source_volid", "imageRef", "image_id", "consistencygroup_id",
                       "group_id", "backup_id", "multiattach")
_SNAPSHOT_FIELDS = ("volume_id", "force", "name", "description", "display_name",
                    "display_description", "metadata")


def version_document(host_url: str) -> dict[str, Any]:
    return {
        "id": "v3.0", "status": "CURRENT", "version": mv.text(mv.MAX_VERSION),
        "min_version": mv.text(mv.MIN_VERSION), "updated": "2024-01-01T00:00:00Z",
        "links": [{"rel": "describedby", "type": "text/html",
                   "href": "https://docs.openstack.org/"},
                  {"rel": "self", "href": f"{host_url}/v3/"}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.volume+json;version=3"}],
    }


def _links(req: ApiRequest, project_id: str, collection: str,
           item_id: str) -> list[dict[str, str]]:
    base = req.http.host_url
    return [{"rel": "self", "href": f"{base}/v3/{project_id}/{collection}/{item_id}"},
            {"rel": "bookmark", "href": f"{base}/{project_id}/{collection}/{item_id}"}]


def _attachment_view(attachment: models.VolumeAttachment) -> dict[str, Any]:
    return {"id": attachment.volume_id, "attachment_id": attachment.id,
            "volume_id": attachment.volume_id, "server_id": attachment.server_id,
            "host_name": (attachment.connector or {}).get("host"),
            "device": attachment.device, "attached_at": timestamp(attachment.attached_at)}


def volume_view(req: ApiRequest, volume: models.Volume) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": volume.id, "name": volume.display_name, "status": volume.status,
        "size": volume.size, "availability_zone": volume.availability_zone,
        "created_at": timestamp(volume.created_at),
        "updated_at": timestamp(volume.updated_at),
        "description": volume.display_description, "volume_type": volume.volume_type,
        "snapshot_id": volume.snapshot_id, "source_volid": volume.source_volid,
        "metadata": dict(volume.metadata_ or {}),
        "attachments": [_attachment_view(a) for a in volume.attachments],
        "bootable": "false", "encrypted": False, "multiattach": False,
        "replication_status": None, "consistencygroup_id": None,
        "user_id": volume.user_id, "os-vol-tenant-attr:tenant_id": volume.project_id,
        "links": _links(req, volume.project_id, "volumes", volume.id),
    }
    if req.ctx.is_admin:
        view["os-vol-host-attr:host"] = volume.host
    if volume.status_reason and volume.status.startswith("error"):
        view["status_reason"] = volume.status_reason
    return view


def snapshot_view(snapshot: models.Snapshot) -> dict[str, Any]:
    return {
        "id": snapshot.id, "name": snapshot.display_name,
        "description": snapshot.display_description, "status": snapshot.status,
        "size": snapshot.size, "volume_id": snapshot.volume_id,
        "created_at": timestamp(snapshot.created_at),
        "updated_at": timestamp(snapshot.updated_at),
        "metadata": dict(snapshot.metadata_ or {}),
        "os-extended-snapshot-attributes:project_id": snapshot.project_id,
        "os-extended-snapshot-attributes:progress":
            "100%" if snapshot.status == "available" else "0%",
    }


class V3Controller:
    """Handlers of the v3 face."""

    def __init__(self, ops: Operations, max_volume_size: int, max_limit: int) -> None:
        self.ops = ops
        self.max_volume_size = max_volume_size
        self.max_limit = max_limit

    # -- helpers -------------------------------------------------------------------

    def _project(self, req: ApiRequest) -> str:
        return req.params.get("project_id") or req.ctx.project_id

    def _page(self, req: ApiRequest) -> tuple[int, str | None, dict[str, Any], str | None]:
        """limit, marker, filters and the project to list (None: every project)."""
        limit_text = req.query("limit")
        limit = (v.integer(limit_text, "limit", minimum=1, maximum=self.max_limit)
                 if limit_text is not None else self.max_limit)
        marker = req.query("marker")
        filters: dict[str, Any] = {}
        name = req.query("name") or req.query("display_name")
        if name:
            filters["display_name"] = name
        status = req.query("status")
        if status:
            filters["status"] = status
        all_tenants = req.query("all_tenants") in ("1", "true", "True")
        project = None if (all_tenants and req.ctx.is_admin) else self._project(req)
        return limit, marker or None, filters, project

    @staticmethod
    def _next_link(req: ApiRequest, items: list[Any], limit: int) -> list[dict[str, str]]:
        if len(items) < limit or not items:
            return []
        query = {k: val for k, val in req.http.GET.items() if k != "marker"}
        query["marker"] = items[-1].id
        url = f"{req.http.host_url}{req.http.path}?{urllib.parse.urlencode(query)}"
        return [{"rel": "next", "href": url}]

    # -- volumes -------------------------------------------------------------------

    def list_volumes(self, req: ApiRequest, detail: bool) -> ApiResponse:
        limit, marker, filters, project = self._page(req)
        try:
            volumes = self.ops.list_volumes(req.ctx, project, filters=filters, limit=limit,
                                            marker=marker)
        except exception.NotFound:
            raise v.bad(f"marker {marker} does not name a volume of this listing") from None
        if detail:
            views = [volume_view(req, vol) for vol in volumes]
        else:
            views = [{"id": vol.id, "name": vol.display_name,
                      "links": _links(req, vol.project_id, "volumes", vol.id)}
                     for vol in volumes]
        body: dict[str, Any] = {"volumes": views}
        links = self._next_link(req, volumes, limit)
        if links:
            body["volumes_links"] = links
        return ApiResponse(200, body)

    def show_volume(self, req: ApiRequest) -> ApiResponse:
        volume = self.ops.get_volume(req.ctx, req.params["volume_id"])
        return ApiResponse(200, {"volume": volume_view(req, volume)})

    def create_volume(self, req: ApiRequest) -> ApiResponse:
        if isinstance(req.body, dict):
            hints = req.body.get("OS-SCH-HNT:scheduler_hints")
            if hints not in (None, {}):
                raise v.bad("'OS-SCH-HNT:scheduler_hints' is not supported")
            body = v.member({k: val for k, val in req.body.items()
                             if k != "OS-SCH-HNT:scheduler_hints"}, "volume")
        else:
            body = v.member(req.body, "volume")
        v.only_fields(body, _CREATE_FIELDS, "volume")
        v.unsupported_if_set(body, _UNSUPPORTED_CREATE)
        name = body.get("name", body.get("display_name"))
        description = body.get("description", body.get("display_description"))
        snapshot_id = body.get("snapshot_id")
        volume = self.ops.create_volume(
            req.ctx, size=v.size(body.get("size"), self.max_volume_size),
            name=v.text(name, "name"),
            description=v.text(description, "description", v.MAX_DESCRIPTION),
            metadata=v.metadata(body.get("metadata")),
            availability_zone=v.text(body.get("availability_zone"), "availability_zone"),
            volume_type=v.text(body.get("volume_type"), "volume_type"),
            snapshot_id=v.uuid_like(snapshot_id, "snapshot_id") if snapshot_id else None)
        return ApiResponse(202, {"volume": volume_view(req, volume)})

    def delete_volume(self, req: ApiRequest) -> ApiResponse:
        self.ops.delete_volume(req.ctx, req.params["volume_id"])
        return ApiResponse(202)

    def extend_action(self, req: ApiRequest, volume_id: str, args: Any) -> ApiResponse:
        if not isinstance(args, dict):
            raise v.bad("'os-extend' must be an object")
        v.only_fields(args, ("new_size",), "os-extend")
        new_size = v.size(args.get("new_size"), self.max_volume_size, "new_size")
        self.ops.extend_volume(req.ctx, volume_id, new_size)
        return ApiResponse(202)

    # -- snapshots -----------------------------------------------------------------

    def list_snapshots(self, req: ApiRequest, detail: bool) -> ApiResponse:
        limit, marker, filters, project = self._page(req)
        volume_id = req.query("volume_id")
        if volume_id:
            filters["volume_id"] = volume_id
        try:
            snapshots = self.ops.list_snapshots(req.ctx, project, filters=filters,
                                                limit=limit, marker=marker)
        except exception.NotFound:
            raise v.bad(f"marker {marker} does not name a snapshot of this listing") \
                from None
        views = [snapshot_view(s) if detail else
                 {"id": s.id, "name": s.display_name, "status": s.status,
                  "size": s.size, "volume_id": s.volume_id} for s in snapshots]
        body: dict[str, Any] = {"snapshots": views}
        links = self._next_link(req, snapshots, limit)
        if links:
            body["snapshots_links"] = links
        return ApiResponse(200, body)

    def show_snapshot(self, req: ApiRequest) -> ApiResponse:
        snapshot = self.ops.get_snapshot(req.ctx, req.params["snapshot_id"])
        return ApiResponse(200, {"snapshot": snapshot_view(snapshot)})

    def create_snapshot(self, req: ApiRequest) -> ApiResponse:
        body = v.member(req.body, "snapshot")
        v.only_fields(body, _SNAPSHOT_FIELDS, "snapshot")
        force = body.get("force")
        snapshot = self.ops.create_snapshot(
            req.ctx, v.uuid_like(body.get("volume_id"), "volume_id"),
            name=v.text(body.get("name", body.get("display_name")), "name"),
            description=v.text(body.get("description", body.get("display_description")),
                               "description", v.MAX_DESCRIPTION),
            metadata=v.metadata(body.get("metadata")),
            force=v.boolean(force, "force") if force is not None else False)
        return ApiResponse(202, {"snapshot": snapshot_view(snapshot)})

    def delete_snapshot(self, req: ApiRequest) -> ApiResponse:
        self.ops.delete_snapshot(req.ctx, req.params["snapshot_id"])
        return ApiResponse(202)


def add_routes(router: Router, deps: V3Deps) -> None:
    c = V3Controller(deps.ops, deps.conf.api.max_volume_size, deps.conf.api.osapi_max_limit)
    deps.volume_actions.add("os-extend", c.extend_action)
    for prefix in PREFIXES:
        router.add("GET", prefix + "/volumes", lambda r: c.list_volumes(r, False))
        router.add("GET", prefix + "/volumes/detail", lambda r: c.list_volumes(r, True))
        router.add("POST", prefix + "/volumes", c.create_volume)
        router.add("GET", prefix + "/volumes/{volume_id}", c.show_volume)
        router.add("DELETE", prefix + "/volumes/{volume_id}", c.delete_volume)
        router.add("POST", prefix + "/volumes/{volume_id}/action",
                   deps.volume_actions.dispatch)
        router.add("GET", prefix + "/snapshots", lambda r: c.list_snapshots(r, False))
        router.add("GET", prefix + "/snapshots/detail", lambda r: c.list_snapshots(r, True))
        router.add("POST", prefix + "/snapshots", c.create_snapshot)
        router.add("GET", prefix + "/snapshots/{snapshot_id}", c.show_snapshot)
        router.add("DELETE", prefix + "/snapshots/{snapshot_id}", c.delete_snapshot)
        router.add("POST", prefix + "/snapshots/{snapshot_id}/action",
                   deps.snapshot_actions.dispatch)
